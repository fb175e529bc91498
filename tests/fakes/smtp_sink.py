"""A loopback SMTP sink (aiosmtpd) on the test's event loop: it keeps every message it
accepts, and can be told to answer chosen recipients with an error code."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class SunkMail:
    sender: str
    recipients: tuple[str, ...]
    raw: bytes


@dataclass
class SmtpSink:
    host: str = "127.0.0.1"
    port: int = 0
    refuse: dict[str, str] = field(default_factory=dict)  # recipient → "550 5.1.1 no user"
    received: asyncio.Queue[SunkMail] = field(default_factory=asyncio.Queue)
    _server: asyncio.base_events.Server | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.lower() in self.refuse:
            return self.refuse[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        await self.received.put(SunkMail(envelope.mail_from or "", tuple(envelope.rcpt_tos),
                                         raw if isinstance(raw, bytes) else raw.encode()))
        return "250 OK"

    async def start(self) -> SmtpSink:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="sink.test", enable_SMTPUTF8=True), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def next(self, within: float = 10.0) -> SunkMail:
        return await asyncio.wait_for(self.received.get(), within)


@contextlib.asynccontextmanager
async def running_sink() -> AsyncIterator[SmtpSink]:
    sink = await SmtpSink().start()
    try:
        yield sink
    finally:
        await sink.stop()


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    """A loopback SMTP server that keeps what it receives (a pytest fixture)."""
    async with running_sink() as started:
        yield started
