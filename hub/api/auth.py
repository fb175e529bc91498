"""POST /api/auth/login → a bearer token; GET /api/auth/me; POST /api/auth/logout."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.exceptions import NotAuthorizedException
from litestar.params import JSONBody

from hub.api.deps import ServicesDep
from hub.api.errors import error_response
from hub.auth import TooManyFailures, issue_token
from hub.models import Agent
from hub.serialize import agent_json


class LoginBody(msgspec.Struct):
    email: str
    password: str


@post("/auth/login", exclude_from_auth=True, status_code=200, tags=["auth"])
async def login(data: JSONBody[LoginBody], request: Request[Any, Any, Any],
                services: ServicesDep) -> Any:
    client = request.client.host if request.client else "unknown"
    try:
        agent = await services.logins.sign_in(services.sessions, data.email, data.password,
                                              client)
    except TooManyFailures as exc:
        return error_response(429, "rate_limited", str(exc),
                              headers={"Retry-After": str(exc.retry_after)})
    if agent is None:
        raise NotAuthorizedException("wrong e-mail or password")
    token = issue_token(services.signer, agent, services.settings.agent_session_hours)
    return {"token": token, "agent": agent_json(agent)}


@get("/auth/me", tags=["auth"])
async def me(request: Request[Agent, str, Any]) -> dict[str, Any]:
    return {"agent": agent_json(request.user)}
