"""E-mail: the built-in SMTP server, the inbound webhook and IMAP polling bring mail in;
replies leave through the SMTP relay with our own Message-ID and threading headers.

Every inbound path ends in ``EmailChannel.receive(raw)``; parsing is pure (``parse``),
loop protection is in ``loops``, the outbound message is built in ``send``.

Web chat → e-mail: an address a web chat customer types ("reply to me at …") becomes an
unverified ``email`` identity of theirs (``given``), so a reply reaches them by mail after
they left (hub/follow_up.py); their reply to that mail proves the address (``receive``).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

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
from hub import events
from hub.identity import InvalidIdentity, give_identity, normalize_email
from hub.models import (
    Conversation,
    Direction,
    ItemKind,
    SenderType,
    TimelineItem,
)
from hub.serialize import item_json
from hub.services import Services
from hub.settings import Settings

log = logging.getLogger(__name__)
MAX_REFERENCES = 20
MAX_GIVEN_PER_MESSAGE = 3
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
                      r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

__all__ = ["EmailChannel", "Received", "email_configured", "support_addresses"]


def support_addresses(settings: Settings) -> list[str]:
    """OMOHUB_SUPPORT_ADDRESS may list several, comma-separated; the first is the From."""
    return [a.strip().lower() for a in settings.support_address.split(",") if a.strip()]


def addresses_in(text: str) -> list[str]:
    """E-mail addresses written in a chat message (full-width ＠ and letters too),
    normalised, in order, without repeats."""
    found: list[str] = []
    for match in _ADDRESS.finditer(unicodedata.normalize("NFKC", text)):
        try:
            address = normalize_email(match.group(0).strip(".'"))
        except InvalidIdentity:
            continue
        if address not in found:
            found.append(address)
    return found


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

    # --- addresses given in web chat ---------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        """A web chat customer wrote an e-mail address: it becomes theirs, unverified."""
        payload = event.payload
        if (event.name != events.MESSAGE_CREATED or event.conversation_id is None
                or payload.get("channel") != "web" or payload.get("type") != ItemKind.MESSAGE
                or payload.get("sender_type") != SenderType.CUSTOMER
                or "@" not in unicodedata.normalize("NFKC", str(payload.get("text") or ""))):
            return
        own = set(self.addresses)
        for address in [a for a in addresses_in(str(payload["text"])) if a not in own][
                :MAX_GIVEN_PER_MESSAGE]:
            await self.given(event.conversation_id, address)

    async def given(self, conversation_id: int, address: str) -> TimelineItem | None:
        """Store ``address`` as the ticket's customer's (unverified) and note it in the
        timeline for the agent; None when it was theirs already."""
        for _attempt in range(2):  # a race on the unique (kind, value): look again
            try:
                return await self._give(conversation_id, address)
            except IntegrityError:
                continue
        return None

    async def _give(self, conversation_id: int, address: str) -> TimelineItem | None:
        async with self.services.sessions() as session, session.begin():
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                return None
            given = await give_identity(session, conversation.customer_id, "email", address,
                                        actor_type="customer", source="web_chat")
            if not given.created and given.holder_id is None:
                return None
            note = TimelineItem(
                conversation_id=conversation_id, kind=ItemKind.SYSTEM, channel="web",
                direction=Direction.INTERNAL, sender_type=SenderType.SYSTEM, text="",
                data={"event": "identity_given", "kind": "email", "value": address,
                      "holder_id": given.holder_id})
            session.add(note)
            await session.flush()
        await self.services.bus.publish(events.Event(events.MESSAGE_CREATED, item_json(note),
                                                     conversation_id))
        return note

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
