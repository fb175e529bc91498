"""Carrying a ticket from one channel to another with a one-time six-digit code.

The code is shown in one channel (web chat, an agent's reply) and presented in another
(a LINE message, the phone keypad, a web link). Presenting it joins the sender's identity
to the customer who owns the ticket: the strongest of the three ways identities join.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

import segno
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.identity import audit, join_identity
from hub.models import Conversation, LinkAttempt, LinkCode, Status, utcnow
from hub.security import Signer
from hub.settings import Settings

CODE_TTL = timedelta(minutes=10)
ATTEMPT_WINDOW = timedelta(minutes=15)
MAX_FAILED_ATTEMPTS = 5
TARGETS = ("line", "phone", "web")
_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
_NOT_WORDS = re.compile(r"[\s\W_]+")
CODE_WORDS = ("コード", "code", "引き継ぎ", "引継ぎ", "番号を入力", "link")
MAX_WORDS_AROUND_CODE = 8
# Marked on the data of a message that presents a code ("accepted" or "refused"): it is not
# a question, so the bot leaves it alone.
CODE_MARK = "link_code"
REFUSED_CODE_TEXT = {
    "ja": "このコードは使えません。コードが正しいか、発行から10分以内かをご確認ください。",
    "en": "That code cannot be used. Please check the code, and that it was issued less "
          "than 10 minutes ago.",
}


class LinkError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class IssuedLink:
    code: str
    url: str
    qr_svg: str
    expires_at: datetime


@dataclass(frozen=True)
class Redeemed:
    customer_id: int
    conversation_id: int
    target: str
    identity_id: int


def find_code(text: str) -> str | None:
    """The code in a message that presents one (full-width digits count).

    A six-digit number inside an ordinary sentence ("注文番号 123456 の配送は？") is not a
    code attempt: only a message that is little more than the number, or that names it a
    code, is — so order numbers never count against the sender's attempts."""
    normalized = unicodedata.normalize("NFKC", text or "")
    match = _CODE.search(normalized)
    if match is None:
        return None
    rest = _NOT_WORDS.sub("", normalized[: match.start()] + normalized[match.end():])
    if len(rest) <= MAX_WORDS_AROUND_CODE or names_a_code(rest):
        return match.group(1)
    return None


def names_a_code(text: str) -> bool:
    """Whether the message calls its number a code (as the deep link's prefilled text does),
    rather than being a bare number that may as well be an order number."""
    lowered = unicodedata.normalize("NFKC", text or "").lower()
    return any(word in lowered for word in CODE_WORDS)


def refused_code_text(locale: str | None) -> str:
    """What the sender of a wrong, used or expired code is told, in their language."""
    return REFUSED_CODE_TEXT.get((locale or "ja").split("-")[0], REFUSED_CODE_TEXT["en"])


def link_url(settings: Settings, target: str, code: str) -> str:
    if target == "line":
        if not settings.line_basic_id:
            raise LinkError("channel_unavailable", "OMOHUB_LINE_BASIC_ID is not set")
        text = quote(f"引き継ぎコード {code}")
        return f"https://line.me/R/oaMessage/{quote(settings.line_basic_id)}/?{text}"
    if target == "phone":
        if not settings.twilio_phone_number:
            raise LinkError("channel_unavailable", "OMOHUB_TWILIO_PHONE_NUMBER is not set")
        return f"tel:{settings.twilio_phone_number}"
    return f"{settings.public_url.rstrip('/')}/chat?link={code}"


def qr_svg(url: str) -> str:
    return segno.make(url, error="m").svg_inline(scale=4)


async def issue(session: AsyncSession, signer: Signer, settings: Settings,
                conversation_id: int, target: str, agent_id: int | None = None) -> IssuedLink:
    if target not in TARGETS:
        raise LinkError("bad_target", f"target must be one of {', '.join(TARGETS)}")
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.merged_into_id is not None:
        raise LookupError(f"conversation {conversation_id} not found")
    code = await _unused_code(session, signer)
    url = link_url(settings, target, code)
    expires_at = utcnow() + CODE_TTL
    session.add(LinkCode(code_digest=signer.digest("link-code", code), target=target,
                         conversation_id=conversation_id, customer_id=conversation.customer_id,
                         created_by=agent_id, expires_at=expires_at))
    return IssuedLink(code=code, url=url, qr_svg=qr_svg(url), expires_at=expires_at)


async def _unused_code(session: AsyncSession, signer: Signer) -> str:
    while True:
        code = f"{secrets.randbelow(10**6):06d}"
        if await _active(session, signer.digest("link-code", code)) is None:
            return code


async def _active(session: AsyncSession, digest: str) -> LinkCode | None:
    return (await session.execute(select(LinkCode).where(
        LinkCode.code_digest == digest, LinkCode.used_at.is_(None),
        LinkCode.expires_at > utcnow()))).scalars().first()


async def redeem(session: AsyncSession, signer: Signer, code: str, kind: str,
                 value: str) -> Redeemed | None:
    """Join ``(kind, value)`` to the code's customer; None for a wrong, used or expired code.

    Failed attempts are counted per sender; past the limit every code is refused for a while.
    """
    sender = f"{kind}:{value}"
    if await _failed_attempts(session, sender) >= MAX_FAILED_ATTEMPTS:
        return None
    link = await _active(session, signer.digest("link-code", code))
    conversation = await session.get(Conversation, link.conversation_id) if link else None
    if link is None or conversation is None or not _joinable(conversation, link):
        session.add(LinkAttempt(sender=sender[:340]))
        return None
    moving_from = conversation.last_channel
    identity = await join_identity(session, link.customer_id, kind, value)
    # The customer moves this ticket from where it is being talked about. When the sender
    # had a ticket of their own, it was just folded in and its channel counts as the last
    # one used; that must not hide the move (the timeline notes it as the code arrives).
    conversation.last_channel = moving_from
    link.used_at = utcnow()
    link.used_by_identity_id = identity.id
    audit(session, "link.redeemed", "customer", link.customer_id, actor_type="customer",
          identity=sender, conversation_id=link.conversation_id, target=link.target)
    return Redeemed(customer_id=link.customer_id, conversation_id=link.conversation_id,
                    target=link.target, identity_id=identity.id)  # type: ignore[arg-type]


def _joinable(conversation: Conversation, link: LinkCode) -> bool:
    return (conversation.customer_id == link.customer_id
            and conversation.merged_into_id is None and conversation.status != Status.RESOLVED)


async def _failed_attempts(session: AsyncSession, sender: str) -> int:
    since = utcnow() - ATTEMPT_WINDOW
    return int((await session.execute(select(func.count()).select_from(LinkAttempt).where(
        LinkAttempt.sender == sender[:340], LinkAttempt.created_at > since))).scalar_one())
