"""No mail loops: which mail is machine-written, which is our own coming back, and the
one-acknowledgement-per-customer-per-hour budget.

Machine-written mail (auto-replies, lists, bounces) is still stored in the ticket, but it
is never answered automatically; our own mail coming back is not stored at all.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.email.parse import ParsedMail
from hub.models import Conversation, Direction, TimelineItem

ACK_INTERVAL = timedelta(hours=1)
_DAEMONS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "noreply",
            "no-reply", "do-not-reply", "donotreply", "bounce", "bounces"}
_BULK = {"bulk", "junk", "list", "auto_reply", "auto-reply"}


def install_token(secret_key: str) -> str:
    """Ten characters, stable per install and unguessable, that mark our Message-IDs."""
    digest = hmac.new(secret_key.encode(), b"omohub-email-message-id", hashlib.sha256)
    return digest.hexdigest()[:10]


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower() or "localhost"


class OwnIds:
    """Makes and recognises the Message-IDs of mail the hub sends."""

    def __init__(self, secret_key: str, support_address: str) -> None:
        self.token = install_token(secret_key)
        self.domain = domain_of(support_address)
        self._pattern = re.compile(
            rf"<item-(\d+)\.{self.token}@{re.escape(self.domain)}>", re.IGNORECASE)

    def make(self, item_id: int) -> str:
        return f"<item-{item_id}.{self.token}@{self.domain}>"

    def item_of(self, message_id: str | None) -> int | None:
        match = self._pattern.fullmatch(message_id or "")
        return int(match.group(1)) if match else None

    def find_in(self, data: bytes | str) -> list[str]:
        """Every one of our Message-IDs quoted anywhere in ``data`` (a bounce's text)."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        return list(dict.fromkeys(m.group(0) for m in self._pattern.finditer(text)))


def automatic_reason(mail: ParsedMail) -> str | None:
    """Why ``mail`` must never be auto-answered, or None for a person's mail."""
    headers = mail.headers
    auto = headers.get("auto-submitted", "").split(";")[0].strip().lower()
    if auto and auto != "no":
        return f"auto-submitted: {auto}"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in _BULK:
        return f"precedence: {precedence}"
    if "list-id" in headers or "list-unsubscribe" in headers:
        return "mailing list"
    if any(name in headers for name in ("x-autoreply", "x-autorespond", "x-omohub-loop")):
        return "auto-responder"
    if headers.get("x-auto-response-suppress", "").strip().lower() in {"all", "oof"}:
        return "auto-response-suppress"
    if headers.get("return-path", "").strip() == "<>":
        return "null return path"
    local = (mail.from_address or "").rpartition("@")[0].lower()
    if local in _DAEMONS or mail.from_address is None:
        return f"daemon sender: {local or 'none'}"
    if mail.reports:
        return "delivery report"
    return None


def is_own_mail(mail: ParsedMail, own: OwnIds, support_addresses: list[str]) -> bool:
    """Our own outbound mail (or the support mailbox writing to itself) come back in."""
    if own.item_of(mail.message_id) is not None:
        return True
    return (mail.from_address or "").lower() in support_addresses


async def ack_allowed(session: AsyncSession, customer_id: int, now: datetime) -> bool:
    """At most one automatic acknowledgement per customer per hour."""
    rows = await session.execute(
        select(TimelineItem.data).join(
            Conversation, Conversation.id == TimelineItem.conversation_id)
        .where(Conversation.customer_id == customer_id,
               TimelineItem.direction == Direction.OUTBOUND,
               TimelineItem.channel == "email",
               TimelineItem.created_at > now - ACK_INTERVAL))
    return not any(isinstance(data, dict) and data.get("auto_ack") for data in rows.scalars())
