"""The built-in inbound SMTP server (aiosmtpd) running on the hub's own event loop.

Only the support address(es) are accepted as recipients (550 otherwise); a message over
25 MB is refused with 552 by aiosmtpd itself; 250 is answered only once the message is
committed, and 451 (try again later) when storing it failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a listener starts, so the hub runs without aiosmtpd
    from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)

Deliver = Callable[[bytes, str | None], Awaitable[Any]]


class _Handler:
    def __init__(self, recipients: list[str], deliver: Deliver) -> None:
        self.recipients = {r.lower() for r in recipients}
        self.deliver = deliver

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.strip().lower() not in self.recipients:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode("utf-8")
        try:
            await self.deliver(raw, envelope.mail_from or None)
        except Exception:
            log.exception("could not store an inbound mail")
            return "451 4.3.0 could not store the message; try again later"
        return "250 2.0.0 OK: stored"


class SmtpListener:
    """Start/stop a loopback-or-public SMTP listener; ``port`` is the bound port."""

    def __init__(self, host: str, port: int, recipients: list[str], deliver: Deliver,
                 hostname: str, max_bytes: int) -> None:
        self.host = host
        self.port = port
        self._handler = _Handler(recipients, deliver)
        self._hostname = hostname
        self._max_bytes = max_bytes
        self._server: asyncio.base_events.Server | None = None

    def _protocol(self) -> SMTP:
        from aiosmtpd.smtp import SMTP

        return SMTP(self._handler, data_size_limit=self._max_bytes, enable_SMTPUTF8=True,
                    decode_data=False, hostname=self._hostname, ident="omohub ESMTP",
                    timeout=120)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("SMTP listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
