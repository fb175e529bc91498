"""Agent authentication: bearer tokens for API clients, a session cookie (plus a CSRF
header on writes) for the web inbox. Both carry the same signed, expiring token."""

from __future__ import annotations

import hmac
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.models import Agent, Role
from hub.security import BadToken, Signer, hash_password, verify_password

SESSION_COOKIE = "omohub_session"
CSRF_HEADER = "x-csrf-token"
AGENT_TOKEN = "agent"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class TooManyFailures(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


class LoginThrottle:
    """Failed sign-ins per e-mail address and per client address in a sliding window: past
    the limit, further attempts are refused (429) until the oldest failure leaves the
    window, even with the right password, so guessing stays slow. Kept in the process
    (each hub process counts its own; a shared store would be Redis)."""

    WINDOW_SECONDS = 15 * 60
    MAX_PER_EMAIL = 5
    MAX_PER_CLIENT = 20
    MAX_KEYS = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    async def sign_in(self, sessions: async_sessionmaker[AsyncSession], email: str,
                      password: str, client: str) -> Agent | None:
        """The agent these credentials prove, None for wrong ones; raises TooManyFailures
        (without checking the password) while this e-mail or client is held back."""
        wait = self.retry_after(email, client)
        if wait:
            raise TooManyFailures(wait)
        async with sessions() as session:
            agent = await authenticate(session, email, password)
        if agent is None:
            self.failed(email, client)
        else:
            self.succeeded(email)
        return agent

    def retry_after(self, email: str, client: str) -> int:
        """Seconds until this e-mail may try again from this client; 0 when it may now."""
        waits = [self._wait(_email_key(email), self.MAX_PER_EMAIL),
                 self._wait(f"client:{client}", self.MAX_PER_CLIENT)]
        return max(waits)

    def failed(self, email: str, client: str) -> None:
        if len(self._failures) >= self.MAX_KEYS:
            self._failures.clear()  # a flood of distinct keys: forget rather than grow
        for key in (_email_key(email), f"client:{client}"):
            self._failures.setdefault(key, deque()).append(self._clock())

    def succeeded(self, email: str) -> None:
        self._failures.pop(_email_key(email), None)

    def _wait(self, key: str, limit: int) -> int:
        failures = self._failures.get(key)
        if not failures:
            return 0
        now = self._clock()
        while failures and now - failures[0] >= self.WINDOW_SECONDS:
            failures.popleft()
        if len(failures) < limit:
            return 0
        return max(1, int(failures[-limit] + self.WINDOW_SECONDS - now + 0.999))


def _email_key(email: str) -> str:
    return f"email:{email.strip().lower()[:320]}"


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
