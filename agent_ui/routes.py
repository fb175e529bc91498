"""The agent's pages: login, inbox, dashboard, knowledge base. Data comes from /api; these
only render."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Redirect, Template

from hub.api.deps import ServicesDep
from hub.auth import (
    SESSION_COOKIE,
    SUPERVISORS,
    TooManyFailures,
    agent_from_token,
    csrf_token,
    issue_token,
)
from hub.models import Agent
from hub.pages import pick_locale, remember_locale, secure_headers
from hub.serialize import agent_json

LOGIN_CSRF_COOKIE = "omohub_login_csrf"


async def _current_agent(request: Request[Any, Any, Any],
                         services: ServicesDep) -> tuple[Agent | None, str | None]:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None, None
    async with services.sessions() as session:
        return await agent_from_token(session, services.signer, token), token


def _page(request: Request[Any, Any, Any], name: str, context: dict[str, Any]) -> Response[Any]:
    page = Template(template_name=name, context=context)
    return remember_locale(request, secure_headers(page))  # type: ignore[arg-type]


@get("/login", include_in_schema=False)
async def login_page(request: Request[Any, Any, Any],
                     error: FromQuery[str | None] = None) -> Response[Any]:
    csrf = secrets.token_urlsafe(24)
    response = _page(request, "login.html", {"locale": pick_locale(request), "csrf": csrf,
                                             "failed": bool(error),
                                             "throttled": error == "throttled"})
    response.set_cookie(Cookie(key=LOGIN_CSRF_COOKIE, value=csrf, httponly=True,
                               samesite="strict", path="/login"))
    return response


@post("/login", include_in_schema=False, status_code=303)
async def login_submit(
    request: Request[Any, Any, Any], services: ServicesDep,
    data: URLEncodedBody[dict[str, str]],
) -> Response[Any]:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, data.get("csrf", "")):
        return Redirect("/login?error=1", status_code=303)
    client = request.client.host if request.client else "unknown"
    try:
        agent = await services.logins.sign_in(services.sessions, data.get("email", ""),
                                              data.get("password", ""), client)
    except TooManyFailures:
        return Redirect("/login?error=throttled", status_code=303)
    if agent is None:
        return Redirect("/login?error=1", status_code=303)
    token = issue_token(services.signer, agent, services.settings.agent_session_hours)
    response = Redirect("/", status_code=303)
    secure = services.settings.public_url.startswith("https://")
    response.set_cookie(Cookie(key=SESSION_COOKIE, value=token, httponly=True, secure=secure,
                               samesite="lax", path="/",
                               max_age=int(services.settings.agent_session_hours * 3600)))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@post("/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any], services: ServicesDep) -> Response[Any]:
    response = Redirect("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def _app_page(request: Request[Any, Any, Any], services: ServicesDep, template: str,
                    supervisors_only: bool = False) -> Response[Any]:
    agent, token = await _current_agent(request, services)
    if agent is None or token is None:
        return Redirect("/login", status_code=303)
    if supervisors_only and agent.role not in SUPERVISORS:
        return Redirect("/", status_code=303)
    # The agent's profile language decides only where the browser has not (Zendesk-like).
    return _page(request, template, {
        "locale": pick_locale(request, default=agent.locale), "agent": agent_json(agent),
        "csrf": csrf_token(services.signer, token),
        "socket_token": issue_token(services.signer, agent, 12),
        "is_supervisor": agent.role in SUPERVISORS,
        "channels": sorted(services.adapters),  # e.g. the dashboard's LINE quota card
    })


@get("/", include_in_schema=False)
async def inbox_page(request: Request[Any, Any, Any], services: ServicesDep) -> Response[Any]:
    return await _app_page(request, services, "inbox.html")


@get("/dashboard", include_in_schema=False)
async def dashboard_page(request: Request[Any, Any, Any], services: ServicesDep) -> Response[Any]:
    return await _app_page(request, services, "dashboard.html", supervisors_only=True)


@get("/kb", include_in_schema=False)
async def kb_page(request: Request[Any, Any, Any], services: ServicesDep) -> Response[Any]:
    return await _app_page(request, services, "kb.html", supervisors_only=True)


def agent_pages() -> list[Any]:
    return [login_page, login_submit, logout, inbox_page, dashboard_page, kb_page]
