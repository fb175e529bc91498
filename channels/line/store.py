"""The LINE adapter's own reads and writes on timeline items and customers.

Each function is one short transaction; the ones that change what an agent sees return
the JSON to publish after commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.identity import PLACEHOLDER_NAME, audit, join_identity
from hub.models import AuditEvent, Conversation, Customer, Direction, Identity, TimelineItem
from hub.security import Signer
from hub.serialize import conversation_summary
from hub.text import clean_name

Sessions = async_sessionmaker[AsyncSession]
CLOCK_SKEW = timedelta(seconds=5)  # LINE's event clock may run a little ahead of ours


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None


async def claim_reply_token(sessions: Sessions, conversation_id: int, recipient: str,
                            now: datetime, window: timedelta) -> str | None:
    """The reply token of the ticket's latest inbound LINE item from ``recipient``, if unused
    and younger than ``window``; marked used in the same transaction, so handed out once."""
    async with sessions() as session, session.begin():
        item = (await session.execute(
            select(TimelineItem).join(Identity, Identity.id == TimelineItem.identity_id)
            .where(TimelineItem.conversation_id == conversation_id,
                   TimelineItem.channel == "line", Identity.value == recipient,
                   TimelineItem.direction == Direction.INBOUND)
            .order_by(TimelineItem.id.desc()).limit(1).with_for_update(of=TimelineItem)
        )).scalar_one_or_none()
        if item is None or not _fresh_token(item.data, now, window):
            return None
        item.data = {**item.data, "reply_token_used": True}
        return str(item.data["reply_token"])


def _fresh_token(data: dict[str, Any], now: datetime, window: timedelta) -> bool:
    issued = parse_time(data.get("reply_token_at", ""))
    return bool(data.get("reply_token")) and not data.get("reply_token_used") \
        and issued is not None and -CLOCK_SKEW <= now - issued <= window


async def delivery_progress(sessions: Sessions, item_id: int) -> dict[str, Any]:
    async with sessions() as session:
        item = await session.get(TimelineItem, item_id)
        return dict(item.data.get("line_delivery", {})) if item else {}


async def record_batch(sessions: Sessions, item_id: int, batch: int, via: str,
                       ids: list[str]) -> None:
    """Remember a batch LINE accepted, so a retry of the item never sends it again."""
    async with sessions() as session, session.begin():
        item = await session.get(TimelineItem, item_id)
        if item is not None:
            progress = dict(item.data.get("line_delivery", {}))
            progress[str(batch)] = {"via": via, "ids": ids}
            item.data = {**item.data, "line_delivery": progress}


async def find_message(sessions: Sessions, user_id: str, message_id: str) -> TimelineItem | None:
    """The item a LINE user sent as ``message_id`` (never another user's)."""
    async with sessions() as session:
        return (await session.execute(
            select(TimelineItem).join(Identity, Identity.id == TimelineItem.identity_id)
            .where(TimelineItem.channel == "line", Identity.kind == "line",
                   Identity.value == user_id,
                   TimelineItem.data["line_message_id"].as_string() == message_id)
            .limit(1))).scalar_one_or_none()


async def adopt_profile(sessions: Sessions, customer_id: int, conversation_id: int,
                        profile: dict[str, Any]) -> dict[str, Any] | None:
    """Name a customer we only had a placeholder for; keep picture and language."""
    async with sessions() as session, session.begin():
        customer = await session.get(Customer, customer_id)
        conversation = await session.get(Conversation, conversation_id)
        if customer is None or conversation is None:
            return None
        attributes = dict(customer.attributes)
        name = clean_name(str(profile.get("display_name") or ""))
        if name and attributes.pop(PLACEHOLDER_NAME, False):
            customer.display_name = name[:200]
        attributes["line_profile"] = {k: profile.get(k) for k in (
            "display_name", "picture_url", "language") if profile.get(k)}
        customer.attributes = attributes
        if profile.get("language") and not conversation.locale:
            conversation.locale = str(profile["language"])[:8]
        return conversation_summary(conversation, customer)


async def join_line_user(session: AsyncSession, customer_id: int, user_id: str) -> Identity:
    """Attach the LINE identity to ``customer_id`` (merging the LINE user's customer in)."""
    identity = await join_identity(session, customer_id, "line", user_id)
    audit(session, "line.account_linked", "customer", customer_id, actor_type="customer",
          identity=f"line:{user_id}")
    return identity


async def use_nonce(sessions: Sessions, signer: Signer, nonce: str, customer_id: int,
                    user_id: str) -> bool:
    """Consume an account-link nonce once: join the LINE user to its customer."""
    digest = signer.digest("line-account-link", nonce)
    async with sessions() as session, session.begin():
        used = (await session.execute(select(AuditEvent.id).where(
            AuditEvent.action == "line.account_link.nonce",
            AuditEvent.data["nonce"].as_string() == digest).limit(1))).first()
        customer = await session.get(Customer, customer_id)
        if used is not None or customer is None or customer.merged_into_id is not None:
            return False
        await join_line_user(session, customer_id, user_id)
        audit(session, "line.account_link.nonce", "customer", customer_id,
              actor_type="customer", nonce=digest)
    return True
