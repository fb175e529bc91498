"""E-mail: the built-in SMTP server, the inbound webhook and IMAP polling bring mail in;
replies leave through the SMTP relay with our own Message-ID and threading headers.

Every inbound path ends in ``EmailChannel.receive(raw)``; parsing is pure (``parse``),
loop protection is in ``loops``, the outbound message is built in ``send``.

Web chat → e-mail: an address a web chat customer types becomes an unverified identity of
theirs (hub/given.py), so a reply reaches them by mail after they left (hub/follow_up.py);
their reply to that mail proves the address (``receive``).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from channels.base import Capabilities, Outbound, SendResult
from channels.email.imap import ImapPoller, ImapSettings
from channels.email.loops import OwnIds, domain_of
from channels.email.parse import MailPart
from channels.email.receive import MAX_MESSAGE_BYTES, MailReceiver, Received, undeliverable
from channels.email.send import (
    MailDraft,
    RelayConfig,
    build_message,
    relay,
    reply_subject,
    split_host_port,
)
from channels.email.smtp import SmtpListener
from hub.identity import InvalidIdentity, normalize_email
from hub.models import Direction, TimelineItem
from hub.services import Services
from hub.settings import Settings

log = logging.getLogger(__name__)
MAX_REFERENCES = 20

__all__ = ["EmailChannel", "Received", "email_configured", "support_addresses"]


def support_addresses(settings: Settings) -> list[str]:
    """OMOHUB_SUPPORT_ADDRESS may list several, comma-separated; the first is the From."""
    return [a.strip().lower() for a in settings.support_address.split(",") if a.strip()]


def email_configured(settings: Settings) -> bool:
    return bool(settings.smtp_listen or settings.smtp_relay or settings.email_webhook_token
                or settings.imap_url)


class EmailChannel:
    """The e-mail channel adapter."""

    name = "email"
    capabilities = Capabilities(text_limit=100_000, identity_kind="email",
                                media_types=("*/*",))

    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        self.addresses = support_addresses(settings)
        self.own = OwnIds(settings.secret_key or "", self.addresses[0])
        self.receiver = MailReceiver(services, self.own, self.addresses)
        self.smtp: SmtpListener | None = None
        self.imap: ImapPoller | None = None

    async def receive(self, raw: bytes, envelope_sender: str | None = None) -> Received:
        return await self.receiver.receive(raw, envelope_sender)

    # --- listeners -------------------------------------------------------------------

    async def start(self) -> None:
        settings = self.services.settings
        if settings.smtp_listen:
            host, port = split_host_port(settings.smtp_listen)
            self.smtp = SmtpListener(host, port, self.addresses, self.receive,
                                     hostname=domain_of(self.addresses[0]),
                                     max_bytes=MAX_MESSAGE_BYTES)
            await self.smtp.start()
        if settings.imap_url:
            self.imap = ImapPoller(ImapSettings.from_settings(settings), self.receive)
            self.imap.start()

    async def stop(self) -> None:
        if self.imap is not None:
            await self.imap.stop()
        if self.smtp is not None:
            await self.smtp.stop()

    # --- outbound --------------------------------------------------------------------

    async def send(self, outbound: Outbound) -> SendResult:
        settings = self.services.settings
        if not settings.smtp_relay:
            return SendResult(False, error="no SMTP relay configured (OMOHUB_SMTP_RELAY)")
        try:
            recipient = normalize_email(outbound.recipient)
        except InvalidIdentity as exc:
            return SendResult(False, error=str(exc)[:480])
        if undeliverable(recipient):
            return SendResult(False, error=f"{recipient} cannot receive mail (unknown sender)")
        draft = await self._draft(outbound, recipient)
        return await relay(build_message(draft), RelayConfig.from_settings(settings),
                           self.addresses[0], recipient)

    async def _draft(self, outbound: Outbound, recipient: str) -> MailDraft:
        thread = await self._thread(outbound)
        customer_subject = thread["subject"]
        agent_subject = outbound.data.get("subject")
        return MailDraft(
            sender=self.addresses[0], sender_name=str(outbound.data.get("from_name") or ""),
            recipient=recipient, text=outbound.text,
            subject=reply_subject(outbound.conversation_id, customer_subject,
                                  agent_subject if isinstance(agent_subject, str) else None),
            message_id=self.own.make(outbound.item_id), in_reply_to=thread["in_reply_to"],
            references=tuple(thread["references"]), files=tuple(self._files(outbound)),
            automatic=bool(outbound.data.get("auto_ack")),
            charset=self.services.settings.email_charset)

    async def _thread(self, outbound: Outbound) -> dict[str, Any]:
        """In-Reply-To, References and subject from the ticket's earlier e-mails."""
        async with self.services.sessions() as session:
            items = list((await session.execute(select(TimelineItem).where(
                TimelineItem.conversation_id == outbound.conversation_id,
                TimelineItem.channel == "email", TimelineItem.id < outbound.item_id,
                TimelineItem.external_id.is_not(None))
                .order_by(TimelineItem.id.desc()).limit(MAX_REFERENCES))).scalars())
        items.reverse()
        inbound = [i for i in items if i.direction == Direction.INBOUND]
        root_refs = list(inbound[0].data.get("references") or []) if inbound else []
        references = list(dict.fromkeys([*root_refs, *(i.external_id for i in items)]))
        parent = inbound[-1] if inbound else (items[-1] if items else None)
        return {"subject": inbound[-1].data.get("subject") if inbound else None,
                "in_reply_to": parent.external_id if parent else None,
                "references": [r for r in references if r][-MAX_REFERENCES:]}

    def _files(self, outbound: Outbound) -> list[MailPart]:
        files = []
        for attachment in outbound.attachments:
            path = self.services.files.path_for(str(attachment.get("id", "")),
                                                str(attachment.get("name", "")))
            if path is not None:
                files.append(MailPart(path.name, str(attachment.get("content_type")
                                                       or "application/octet-stream"),
                                        path.read_bytes()))
        return files
