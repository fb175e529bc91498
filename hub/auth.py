"""Agent authentication: bearer tokens for API clients, a session cookie (plus a CSRF
header on writes) for the web inbox. Both carry the same signed, expiring token."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.models import Agent, Role
from hub.security import BadToken, Signer, hash_password, verify_password

SESSION_COOKIE = "omohub_session"
CSRF_HEADER = "x-csrf-token"
AGENT_TOKEN = "agent"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def issue_token(signer: Signer, agent: Agent, hours: float) -> str:
    return signer.sign(AGENT_TOKEN, {"agent": agent.id}, ttl_seconds=hours * 3600)


def csrf_token(signer: Signer, session_token: str) -> str:
    return signer.digest("csrf", session_token)


async def agent_from_token(session: AsyncSession, signer: Signer, token: str) -> Agent | None:
    try:
        payload = signer.unsign(AGENT_TOKEN, token)
    except BadToken:
        return None
    agent = await session.get(Agent, payload.get("agent"))
    return agent if agent is not None and agent.active else None


async def authenticate(session: AsyncSession, email: str, password: str) -> Agent | None:
    agent = (await session.execute(
        select(Agent).where(Agent.email == email.strip().lower()))).scalar_one_or_none()
    if agent is None:
        verify_password(_DUMMY_HASH, password)  # same cost for unknown e-mails
        return None
    return agent if agent.active and verify_password(agent.password_hash, password) else None


_DUMMY_HASH = hash_password("omohub-timing-equaliser")


def bearer_or_cookie(connection: ASGIConnection[Any, Any, Any, Any]) -> tuple[str | None, bool]:
    """The token and whether it came from the cookie (which needs CSRF on writes)."""
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), False
    cookie = connection.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


class AgentAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
            self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        services = connection.app.state.services
        token, from_cookie = bearer_or_cookie(connection)
        if not token:
            raise NotAuthorizedException("authentication required")
        async with services.sessions() as session:
            agent = await agent_from_token(session, services.signer, token)
        if agent is None:
            raise NotAuthorizedException("invalid or expired token")
        if from_cookie and connection.scope.get("method", "GET") not in SAFE_METHODS:
            sent = connection.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent, csrf_token(services.signer, token)):
                raise PermissionDeniedException("missing or wrong CSRF token")
        return AuthenticationResult(user=agent, auth=token)


def require_role(agent: Agent, *roles: str) -> None:
    if agent.role not in roles:
        raise PermissionDeniedException("this needs a supervisor or admin")


SUPERVISORS = (Role.SUPERVISOR, Role.ADMIN)
