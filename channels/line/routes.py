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
from litestar.types import ASGIApp, Receive, Scope, Send

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


async def _answer(services: Services, body: bytes,
                  signature: str | None) -> tuple[int, bytes]:
    """The webhook's status and JSON body, once every event is committed."""
    channel = _channel(services)
    try:
        handled = await channel.receive(body, signature)
    except BadSignature as exc:
        log.warning("LINE webhook refused: %s", exc)
        return 401, _error_json(401, "invalid_signature", str(exc))
    except BadBody as exc:
        log.warning("LINE webhook with a bad body: %s", exc)
        return 400, _error_json(400, "bad_body", str(exc))
    return 200, b'{"ok":true,"events":%d}' % handled


def _error_json(status: int, code: str, message: str) -> bytes:
    return msgspec.json.encode(error_response(status, code, message).content)


Message = dict[str, Any]
# What Litestar sends for this route: the app's after_request hook adds nosniff.
RESPONSE_HEADERS = [(b"x-content-type-options", b"nosniff"),
                    (b"content-type", b"application/json")]


class ServeFromAsgi:
    """Route middleware that answers the webhook straight from the ASGI messages.

    The webhook is the hub's busiest public path, and Litestar's per-request machinery
    (Request, signature model, handler call, Response, the after_request hook) cost more
    than verifying and mapping the events. Routing, the exception handlers and the OpenAPI
    entry stay Litestar's. A body that is too large, or a client gone mid-body, goes on to
    the handler, whose Request answers exactly as before (413, or an error)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        signature, length = _signature_and_length(scope)
        messages: list[Message] = []
        complete = False
        if length is not None and length <= MAX_BODY:
            messages, complete = await _read(receive)
        if not complete:
            await self.app(scope, _replay(messages, receive), send)
            return
        body = b"".join(message.get("body", b"") for message in messages)
        status, content = await _answer(scope["app"].state.services, body, signature)
        await send({"type": "http.response.start", "status": status, "headers": [
            *RESPONSE_HEADERS, (b"content-length", b"%d" % len(content))]})
        await send({"type": "http.response.body", "body": content, "more_body": False})


def _signature_and_length(scope: Scope) -> tuple[str | None, int | None]:
    """``X-Line-Signature`` (the first one) and ``Content-Length`` (``None`` unless a valid
    one was sent: such a request is left to Litestar)."""
    signature = length = None
    for name, value in scope["headers"]:
        if name == b"x-line-signature" and signature is None:
            signature = value.decode("latin-1")
        elif name == b"content-length":
            length = int(value) if value.isdigit() else None
    return signature, length


async def _read(receive: Receive) -> tuple[list[Message], bool]:
    """The request's messages up to the end of the body, or until it is cut short or passes
    MAX_BODY; and whether the whole body, within MAX_BODY, is there."""
    messages: list[Message] = []
    size = 0
    while True:
        message: Message = await receive()  # type: ignore[assignment]
        messages.append(message)
        size += len(message.get("body", b""))
        if message["type"] != "http.request" or size > MAX_BODY:
            return messages, False
        if not message.get("more_body", False):
            return messages, True


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Any:
        return pending.pop(0) if pending else await receive()

    return replayed


@post("/webhooks/line", request_max_body_size=MAX_BODY, status_code=200, tags=["webhooks"],
      middleware=[ServeFromAsgi], summary="LINE Messaging API webhook",
      description="Verified by X-Line-Signature; answers 200 once every event is committed, "
                  "401 for a bad signature, 400 for a signed body that is not a webhook, "
                  "413 over 1 MB.")
async def line_webhook(request: Request[Any, Any, Any]) -> Response[Any]:
    # Served by ServeFromAsgi; this runs for what it leaves to Litestar, whose Request
    # refuses an oversized body before the handler runs.
    body = await request.body()
    status, content = await _answer(request.app.state.services, body,
                                    request.headers.get("x-line-signature"))
    return Response(content, status_code=status, media_type=MediaType.JSON)


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
