"""Outbound delivery: a reply and its outbox row are written in one transaction; the
dispatcher sends, retries with backoff, and records the outcome on the timeline item.

A crash between commit and send leaves a pending (or leased) row that the next
dispatcher picks up, so no reply is lost and none is sent without a trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.base import ChannelAdapter, Outbound, SendResult
from hub import events
from hub.background import wait_for_event
from hub.models import (
    Conversation,
    Delivery,
    Identity,
    OutboxItem,
    TimelineItem,
    utcnow,
)
from hub.serialize import item_json

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE = timedelta(seconds=60)
CHANNEL_IDENTITY = {"web": "web", "line": "line", "email": "email", "phone": "phone",
                    "sms": "phone", "video": "web"}


def backoff(attempts: int, base: float = 1.0, cap: float = 300.0) -> timedelta:
    """Exponential backoff with full jitter: 1 s, 2 s, 4 s … capped at five minutes."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def enqueue(session: AsyncSession, item: TimelineItem) -> OutboxItem:
    """Add the outbox row for ``item`` to the caller's transaction."""
    row = OutboxItem(item_id=item.id, channel=item.channel)  # type: ignore[arg-type]
    session.add(row)
    return row


async def recipient_for(session: AsyncSession, customer_id: int, channel: str) -> Identity | None:
    kind = CHANNEL_IDENTITY.get(channel, channel)
    result = await session.execute(
        select(Identity).where(Identity.customer_id == customer_id, Identity.kind == kind)
        .order_by(Identity.reachable.desc(), Identity.verified.desc(), Identity.id.desc())
        .limit(1))
    return result.scalar_one_or_none()


class Dispatcher:
    def __init__(self, sessions: async_sessionmaker[AsyncSession],
                 adapters: Mapping[str, ChannelAdapter], bus: events.EventBus,
                 poll_seconds: float = 5.0) -> None:
        self._sessions = sessions
        self._adapters = adapters
        self._bus = bus
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="outbox-dispatcher")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                while await self.run_once():
                    pass
            except Exception:
                log.exception("outbox pass failed")
            await wait_for_event(self._wake, self._poll)

    async def run_once(self, limit: int = 50) -> int:
        """Send what is due; returns how many rows were handled."""
        claimed = await self._claim(limit)
        for row_id in claimed:
            await self._deliver(row_id)
        return len(claimed)

    async def _claim(self, limit: int) -> list[int]:
        now = utcnow()
        async with self._sessions() as session, session.begin():
            due = (await session.execute(
                select(OutboxItem.id).where(or_(
                    (OutboxItem.status == "pending") & (OutboxItem.next_attempt_at <= now),
                    (OutboxItem.status == "sending") & (OutboxItem.lease_until < now),
                )).order_by(OutboxItem.id).limit(limit))).scalars().all()
            claimed = []
            for row_id in due:
                result = await session.execute(
                    update(OutboxItem).where(OutboxItem.id == row_id, or_(
                        OutboxItem.status == "pending",
                        (OutboxItem.status == "sending") & (OutboxItem.lease_until < now)))
                    .values(status="sending", lease_until=now + LEASE))
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(row_id)
            return claimed

    async def _deliver(self, row_id: int) -> None:
        async with self._sessions() as session:
            row = await session.get(OutboxItem, row_id)
            item = await session.get(TimelineItem, row.item_id) if row else None
            if row is None or item is None:
                return
            outbound, problem = await self._outbound(session, item)
        result = problem or await self._send(outbound)  # type: ignore[arg-type]
        await self._record(row_id, result)

    async def _outbound(self, session: AsyncSession,
                        item: TimelineItem) -> tuple[Outbound | None, SendResult | None]:
        conversation = await session.get(Conversation, item.conversation_id)
        assert conversation is not None
        if item.channel not in self._adapters:
            return None, SendResult(False, error=f"channel {item.channel} is not enabled")
        identity = await recipient_for(session, conversation.customer_id, item.channel)
        if identity is None:
            return None, SendResult(False, error=f"customer has no {item.channel} address")
        return Outbound(
            item_id=item.id, conversation_id=conversation.id,  # type: ignore[arg-type]
            channel=item.channel, recipient=identity.value, text=item.text,
            sender_type=item.sender_type, attachments=tuple(item.attachments),
            data=dict(item.data), created_at=item.created_at), None

    async def _send(self, outbound: Outbound) -> SendResult:
        try:
            return await self._adapters[outbound.channel].send(outbound)
        except Exception as exc:  # an adapter bug or a network fault: retry later
            log.exception("send failed on %s", outbound.channel)
            return SendResult(False, retryable=True, error=str(exc)[:500])

    async def _record(self, row_id: int, result: SendResult) -> None:
        now = utcnow()
        async with self._sessions() as session, session.begin():
            row = await session.get(OutboxItem, row_id)
            item = await session.get(TimelineItem, row.item_id) if row else None
            if row is None or item is None:
                return
            row.attempts += 1
            row.lease_until = None
            if result.channel and result.channel != item.channel:
                row.channel = item.channel = result.channel
            if result.ok:
                row.status, row.sent_at = "sent", now
                item.delivery_status = Delivery.SENT
                item.external_id = result.external_id or item.external_id
                item.error = None
            elif result.retryable and row.attempts < MAX_ATTEMPTS:
                row.status, row.next_attempt_at = "pending", now + backoff(row.attempts)
                row.last_error = result.error
                item.error = result.error
            else:
                row.status, row.last_error = "failed", result.error
                item.delivery_status, item.error = Delivery.FAILED, result.error
            payload = item_json(item)
        await self._bus.publish(events.Event(
            events.MESSAGE_UPDATED, payload, payload["conversation_id"],
            meta={"recipient_away": True} if result.ok and result.recipient_away else {}))
        if row.status == "pending":
            self._schedule_retry(row.next_attempt_at)

    def _schedule_retry(self, when: datetime) -> None:
        delay = max(0.0, (when - utcnow()).total_seconds())
        asyncio.get_running_loop().call_later(delay, self._wake.set)
