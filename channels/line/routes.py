"""HTTP side of LINE: the webhook, the push quota, and the account-link steps."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import MediaType, Request, Response, Router, get, post
from litestar.exceptions import NotFoundException
from litestar.middleware import DefineMiddleware
from litestar.params import JSONBody

from channels.line import LineChannel
from channels.line.client import LineApiError
from channels.line.parse import BadBody, BadSignature
from hub.api.deps import ServicesDep
from hub.api.errors import error_response
from hub.auth import SUPERVISORS, AgentAuthMiddleware, require_role
from hub.models import Agent
from hub.services import Services

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
ACCOUNT_LINK_URL = "https://access.line.me/dialog/bot/accountLink"


def _channel(services: Services) -> LineChannel:
    channel = services.adapters.get("line")
    if not isinstance(channel, LineChannel):
        raise NotFoundException("the LINE channel is not enabled")
    return channel


@post("/webhooks/line", request_max_body_size=MAX_BODY, status_code=200, tags=["webhooks"],
      summary="LINE Messaging API webhook",
      description="Verified by X-Line-Signature; answers 200 once every event is committed, "
                  "401 for a bad signature, 400 for a signed body that is not a webhook, "
                  "413 over 1 MB.")
async def line_webhook(request: Request[Any, Any, Any]) -> Response[Any]:
    # The hub's busiest public path takes only the request: the services come from the app
    # state and the answer is encoded here, which skips Litestar's per-call dependency and
    # serialisation machinery (a third of this handler's cost otherwise).
    channel = _channel(request.app.state.services)
    body = await request.body()
    try:
        handled = await channel.receive(body, request.headers.get("x-line-signature"))
    except BadSignature as exc:
        log.warning("LINE webhook refused: %s", exc)
        return error_response(401, "invalid_signature", str(exc))
    except BadBody as exc:
        log.warning("LINE webhook with a bad body: %s", exc)
        return error_response(400, "bad_body", str(exc))
    return Response(b'{"ok":true,"events":%d}' % handled, media_type=MediaType.JSON)


@get("/quota", tags=["line"], summary="This month's push quota and usage (supervisors)")
async def line_quota(request: Request[Agent, Any, Any],
                     services: ServicesDep) -> Response[dict[str, Any]]:
    require_role(request.user, *SUPERVISORS)
    try:
        return Response(await _channel(services).api.quota())
    except LineApiError as exc:
        return error_response(502, "line_error", str(exc))


class LinkTokenBody(msgspec.Struct):
    user_id: str


class NonceBody(msgspec.Struct):
    customer_id: int
    link_token: str


@post("/account-link/token", tags=["line"], status_code=201,
      summary="Issue a LINE link token for a user (account link, step 1)")
async def issue_link_token(data: JSONBody[LinkTokenBody],
                           services: ServicesDep) -> Response[dict[str, Any]]:
    try:
        token = await _channel(services).api.link_token(data.user_id)
    except LineApiError as exc:
        return error_response(502, "line_error", str(exc))
    return Response({"link_token": token}, status_code=201)


@post("/account-link/nonce", tags=["line"], status_code=201,
      summary="A nonce for the customer who logged in, and LINE's redirect (steps 3-4)")
async def account_link_nonce(data: JSONBody[NonceBody],
                             services: ServicesDep) -> Response[dict[str, Any]]:
    nonce = _channel(services).account_link_nonce(data.customer_id)
    query = urlencode({"linkToken": data.link_token, "nonce": nonce})
    return Response({"nonce": nonce, "redirect_url": f"{ACCOUNT_LINK_URL}?{query}"},
                    status_code=201)


def line_routes() -> list[Any]:
    """The webhook (public, signed) and /api/line (agents)."""
    api = Router(path="/api/line",
                 route_handlers=[line_quota, issue_link_token, account_link_nonce],
                 middleware=[DefineMiddleware(AgentAuthMiddleware)])
    return [line_webhook, api]
