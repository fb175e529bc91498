"""One raw message in, one outcome out — the same path for SMTP, the webhook and IMAP.

parse → our own mail coming back? (dropped) → a bounce of ours? (status) → duplicate? →
threading hint → the sender's address proven or only claimed? → store raw + attachments →
ingest (committed) → maybe acknowledge.

Mail without a usable sender gets an address of its own in the ``.invalid`` domain, marked
unreachable: it is kept and shown, but no reply or acknowledgement can go to it.

An address joins mail to a customer automatically only when it is verified for them, or
is their own (mail came from it before). An address a customer only *gave* (in chat, or to
an agent) is proven by a reply to one of our own Message-IDs in that customer's ticket,
which verifies it; any other mail from it goes to a customer of its own, and the inbox
suggests the merge ("same e-mail address as …").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Attachment, Inbound, StatusUpdate
from channels.email.loops import OwnIds, ack_allowed, automatic_reason, domain_of, is_own_mail
from channels.email.parse import ParsedMail, parse_message, synthetic_message_id
from hub.files import FileStore
from hub.identity import (
    InvalidIdentity,
    find_identity,
    normalize_email,
    release_claim,
    set_reachable,
    set_verified,
    unproven_claim,
)
from hub.models import Conversation, Direction, Identity, SenderType, TimelineItem, utcnow
from hub.services import Services
from hub.status import apply_status

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 25 * 1024 * 1024
MAX_ATTACHMENTS = 50
MAX_ADDRESS = 320
UNKNOWN_SENDER_DOMAIN = "omohub.invalid"
_SUBJECT_TAG = re.compile(r"\[#(\d{1,12})\]")
_DAEMON_LOCALS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"}
_SMTP_REASON = re.compile(r"^.*\b([45]\d\d[ \-]|[45]\.\d{1,3}\.\d{1,3}\b).*$", re.MULTILINE)


@dataclass(frozen=True)
class Received:
    """What became of one raw message."""

    outcome: str  # stored, duplicate, bounce, ignored
    message_id: str
    item_id: int | None = None
    conversation_id: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "message_id": self.message_id,
                "item_id": self.item_id, "conversation_id": self.conversation_id,
                "reason": self.reason}


def external_id_for(mail: ParsedMail, raw: bytes) -> str:
    message_id = mail.message_id
    if not message_id or len(message_id) > 250:
        return synthetic_message_id(raw)
    return message_id


def sender_identity(mail: ParsedMail, envelope_sender: str | None,
                    message_id: str) -> tuple[str, list[str]]:
    """The customer's address: the header From; the envelope only when From is missing;
    a mail with neither gets an unreachable address of its own."""
    for candidate, flag in ((mail.from_address, None), (envelope_sender, "sender_from_envelope")):
        if not candidate:
            continue
        try:
            address = normalize_email(candidate)
        except InvalidIdentity:
            continue
        if len(address) <= MAX_ADDRESS:  # the identity column's width
            return address, [flag] if flag else []
    return unknown_sender(message_id), ["unknown_sender"]


def unknown_sender(message_id: str) -> str:
    """The address of a mail that names no usable sender: one per Message-ID, so unrelated
    senders never share a customer and a redelivery finds the same one again."""
    digest = hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return f"unknown-sender-{digest}@{UNKNOWN_SENDER_DOMAIN}"


def undeliverable(address: str) -> bool:
    """No mail can reach it: the ``.invalid`` top-level domain is reserved for that
    (RFC 2606), and an unknown sender's address is in it."""
    return domain_of(address).rpartition(".")[2] == "invalid"


def bounce_reason(mail: ParsedMail) -> str:
    failed = [r for r in mail.reports if r.failed]
    if failed:
        return failed[0].reason()
    match = _SMTP_REASON.search(mail.full_text)
    return (match.group(0).strip() if match else mail.subject or "delivery failed")[:480]


def _looks_like_bounce(mail: ParsedMail) -> bool:
    local = (mail.from_address or "").rpartition("@")[0].lower()
    return bool(mail.reports) or local in _DAEMON_LOCALS or mail.from_address is None


class _Raced(Exception):
    """Another message moved the claim first; this transaction is rolled back."""


class MailReceiver:
    def __init__(self, services: Services, own: OwnIds, support_addresses: list[str]) -> None:
        self.services = services
        self.own = own
        self.support_addresses = support_addresses
        self._ack_lock = asyncio.Lock()

    async def receive(self, raw: bytes, envelope_sender: str | None = None) -> Received:
        mail = await self._parse(raw)
        message_id = external_id_for(mail, raw)
        if is_own_mail(mail, self.own, self.support_addresses):
            log.info("ignored our own mail coming back: %s", message_id)
            return Received("ignored", message_id, reason="own mail")
        if _looks_like_bounce(mail):
            bounced = await self._apply_bounce(mail, raw, message_id)
            if bounced is not None:
                return bounced
        sender, sender_flags = sender_identity(mail, envelope_sender, message_id)
        async with self.services.sessions() as session:  # one read-only look-up for both
            existing = await _existing(session, message_id)
            hint, refused = ((None, None) if existing is not None
                             else await self.thread_hint(session, mail, sender))
        if existing is not None:
            await self._settle_unreachable(sender)  # a crash may have come between the two
            return Received("duplicate", message_id, existing.id, existing.conversation_id)
        if await self.settle_claim(mail, sender) == "released" and hint is not None:
            hint, refused = None, hint  # the giver's ticket is not the sender's to join
        for flag in sender_flags:
            mail.flag(flag)
        return await self._store(mail, raw, message_id, sender, (hint, refused))

    async def _parse(self, raw: bytes) -> ParsedMail:
        if len(raw) > 256 * 1024:
            return await asyncio.to_thread(parse_message, raw)
        return parse_message(raw)

    async def _apply_bounce(self, mail: ParsedMail, raw: bytes,
                            message_id: str) -> Received | None:
        ours = [i for i in mail.original_ids if self.own.item_of(i) is not None]
        ours = list(dict.fromkeys([*ours, *self.own.find_in(raw)]))
        if not ours:
            return None
        if mail.reports and not any(r.failed for r in mail.reports):
            return Received("ignored", message_id, reason="delivery report: not a failure")
        reason = bounce_reason(mail)
        for original in ours:
            await apply_status(self.services.sessions, self.services.bus,
                               StatusUpdate("email", original, "failed", reason))
        return Received("bounce", message_id, reason=reason)

    async def _store(self, mail: ParsedMail, raw: bytes, message_id: str, sender: str,
                     thread: tuple[int | None, int | None]) -> Received:
        raw_file = self.services.files.save("message.eml", raw, "message/rfc822")
        files, skipped = save_attachments(self.services.files, mail,
                                          self.services.settings.max_upload_bytes)
        inbound = build_inbound(mail, sender, message_id, raw_file, files, skipped, *thread)
        result = await self.services.ingestor.ingest(inbound)
        await self._settle_unreachable(sender)
        if result.created and not undeliverable(sender):
            await self._maybe_acknowledge(mail, result.customer.id,  # type: ignore[arg-type]
                                          result.conversation.id)  # type: ignore[arg-type]
        outcome = "stored" if result.created else "duplicate"
        return Received(outcome, message_id, result.item.id, result.conversation.id)

    async def _settle_unreachable(self, sender: str) -> None:
        """Mark an address no reply can reach (an unknown sender's) unreachable, as LINE
        marks a user who blocked the account. After the ingest: a message from an identity
        marks it reachable."""
        if undeliverable(sender):
            async with self.services.sessions() as session, session.begin():
                await set_reachable(session, "email", sender, False)

    async def thread_hint(self, session: AsyncSession, mail: ParsedMail,
                          sender: str) -> tuple[int | None, int | None]:
        """The ticket the mail's threading names, and one it named but may not join (the
        sender is not an identity of that ticket's customer: a forged In-Reply-To)."""
        conversation = await self._named_conversation(session, mail)
        if conversation is None:
            return None, None
        identity = await find_identity(session, "email", sender)
        if identity is not None and identity.customer_id == conversation.customer_id:
            return conversation.id, None
        return None, conversation.id

    async def settle_claim(self, mail: ParsedMail, sender: str) -> str | None:
        """The sender's address, when a customer only gave it: ``verified`` when this mail
        replies to our own mail in that customer's ticket (only the mailbox's owner has our
        Message-ID), ``released`` to a customer of its own otherwise; None when the address
        is verified, the sender's own, or new."""
        try:
            async with self.services.sessions() as session, session.begin():
                identity = await unproven_claim(session, "email", sender)
                if identity is None:
                    return None
                if await self._replies_to_us(session, mail, identity):
                    await set_verified(session, identity.customer_id, "email", sender,
                                       actor_type="channel", reason="replied_to_our_mail")
                    return "verified"
                name = (mail.from_name or "").strip()
                if await release_claim(session, identity, name or sender, not name) is None:
                    raise _Raced
                log.info("mail from an address customer %s gave but never proved: released",
                         identity.customer_id)
                return "released"
        except _Raced:
            return None

    async def _replies_to_us(self, session: AsyncSession, mail: ParsedMail,
                             identity: Identity) -> bool:
        ours = [item_id for item_id in (self.own.item_of(i) for i in
                                        [mail.in_reply_to, *mail.references]) if item_id]
        for item_id in ours[:20]:
            item = await session.get(TimelineItem, item_id)
            if item is None or item.channel != "email" or item.direction != Direction.OUTBOUND:
                continue
            conversation = await _follow_merges(session, item.conversation_id)
            if conversation is not None and conversation.customer_id == identity.customer_id:
                return True
        return False

    async def _named_conversation(self, session: AsyncSession,
                                  mail: ParsedMail) -> Conversation | None:
        ids = [i for i in [mail.in_reply_to, *reversed(mail.references)] if i]
        conversation_id = None
        if ids:
            rows = (await session.execute(select(TimelineItem).where(
                TimelineItem.channel == "email", TimelineItem.external_id.in_(ids)))).scalars()
            by_id = {item.external_id: item.conversation_id for item in rows}
            ordered = sorted(ids, key=lambda i: self.own.item_of(i) is None)  # ours first
            conversation_id = next((by_id[i] for i in ordered if i in by_id), None)
        if conversation_id is None:
            tag = _SUBJECT_TAG.search(mail.subject)
            conversation_id = int(tag.group(1)) if tag else None
        return await _follow_merges(session, conversation_id)

    async def _maybe_acknowledge(self, mail: ParsedMail, customer_id: int,
                                 conversation_id: int) -> None:
        text = self.services.settings.email_auto_ack
        if not text or automatic_reason(mail) or mail.unparseable:
            return
        async with self._ack_lock:
            async with self.services.sessions() as session:
                if not await ack_allowed(session, customer_id, utcnow()):
                    return
            await self.services.tickets.reply(
                conversation_id, text, agent_id=None, channel="email",
                sender_type=SenderType.SYSTEM, data={"auto_ack": True})


async def _existing(session: AsyncSession, message_id: str) -> TimelineItem | None:
    return (await session.execute(select(TimelineItem).where(
        TimelineItem.channel == "email",
        TimelineItem.external_id == message_id))).scalar_one_or_none()


async def _follow_merges(session: AsyncSession,
                         conversation_id: int | None) -> Conversation | None:
    seen: set[int] = set()
    while conversation_id is not None and conversation_id not in seen:
        seen.add(conversation_id)
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None or conversation.merged_into_id is None:
            return conversation
        conversation_id = conversation.merged_into_id
    return None


def save_attachments(files: FileStore, mail: ParsedMail,
                     max_bytes: int) -> tuple[list[Attachment], list[dict[str, Any]]]:
    saved: list[Attachment] = []
    skipped: list[dict[str, Any]] = []
    for part in mail.attachments:
        if len(part.data) > max_bytes or len(saved) >= MAX_ATTACHMENTS:
            skipped.append({"name": part.name, "size": len(part.data),
                            "reason": "too_large" if len(part.data) > max_bytes else "too_many"})
            continue
        saved.append(files.save(part.name, part.data, part.content_type))
    return saved, skipped


def build_inbound(mail: ParsedMail, sender: str, message_id: str, raw_file: Attachment,
                  files: list[Attachment], skipped: list[dict[str, Any]], hint: int | None,
                  refused: int | None) -> Inbound:
    data: dict[str, Any] = {
        "subject": mail.subject, "message_id": message_id, "in_reply_to": mail.in_reply_to,
        "references": mail.references, "raw": raw_file.as_dict(), "to": mail.to[:20],
        "folded": mail.folded, "html_only": mail.html_only, "flags": list(mail.flags),
    }
    optional = {"full_text": mail.full_text if mail.folded else None,
                "automatic": automatic_reason(mail), "defects": mail.defects or None,
                "skipped_attachments": skipped or None, "thread_refused": refused}
    data.update({key: value for key, value in optional.items() if value})
    attachments = (*files, raw_file) if mail.unparseable else tuple(files)
    return Inbound(
        channel="email", identity_kind="email", identity_value=sender,
        text=mail.text or mail.subject, external_id=message_id,
        display_name=mail.from_name or None, attachments=attachments,
        occurred_at=mail.date, data=data, conversation_hint=hint)
