"""HTTP side of video sessions: an agent starts one from a ticket (API), and each peer opens
the session page with their single-use link."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Template

from channels.video import VideoChannel, VideoRefused
from hub.api.deps import ServicesDep
from hub.auth import AgentAuthMiddleware
from hub.models import Agent
from hub.pages import pick_locale, secure_headers
from hub.serialize import iso, item_json
from hub.services import Services

STATIC = Path(__file__).parent / "static"
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
TEMPLATES = Path(__file__).parent / "templates"


def _video(services: Services) -> VideoChannel:
    return services.extras["video"]  # type: ignore[no-any-return]


@post("/conversations/{conversation_id:int}/video", status_code=201, tags=["video"])
async def start_video(conversation_id: FromPath[int], request: Request[Agent, str, Any],
                      services: ServicesDep) -> dict[str, Any]:
    """Starts a video session in this ticket: `agent_url` and `customer_url` each carry
    their own token, valid for 30 minutes and for one join."""
    started = await _video(services).start_session(conversation_id, request.user.id)
    return {"id": started.item.id, "agent_url": started.agent_url,
            "customer_url": started.customer_url, "expires_at": iso(started.expires_at),
            "item": item_json(started.item)}


@get("/video/{session_id:int}", include_in_schema=False)
async def video_page(session_id: FromPath[int], request: Request[Any, Any, Any],
                     services: ServicesDep, t: FromQuery[str] = "") -> Template:
    """The session page. It only checks the link; its script spends it (``join``), so
    fetching the URL for a preview leaves the link usable."""
    context: dict[str, Any] = {"locale": pick_locale(request), "session_id": session_id,
                               "error": None}
    status = 200
    try:
        peer = await _video(services).check_link(session_id, t)
        context.update(role=peer.role, link=t)
    except VideoRefused as exc:
        context["error"], status = exc.code, exc.status
    response = secure_headers(Template(template_name="video.html", context=context,
                                       status_code=status))
    # The URL and the page carry credentials: never cached, never sent on as a referrer.
    response.headers.update(PRIVATE)
    return response  # type: ignore[return-value]


class JoinBody(msgspec.Struct):
    t: str


@post("/video/{session_id:int}/join", status_code=200, tags=["video"],
      summary="Spend a video link (single use) for the page's socket credential")
async def join_video(session_id: FromPath[int], data: JSONBody[JoinBody],
                     services: ServicesDep) -> Response[dict[str, Any]]:
    peer, credential = await _video(services).join(session_id, data.t)  # refusals: 4xx JSON
    return Response({"role": peer.role, "credential": credential}, headers=PRIVATE)


def video_routes() -> list[Any]:
    api = Router(path="/api", route_handlers=[start_video],
                 middleware=[DefineMiddleware(AgentAuthMiddleware)])
    return [api, video_page, join_video]
