"""Media a channel downloads after the webhook was answered (LINE content, MMS pictures):
the message is committed first with ``data.media.status = "pending"``; the outcome lands on
the same timeline item later, and agents see it live."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub import events
from hub.models import TimelineItem
from hub.serialize import item_json


async def settle_media(sessions: async_sessionmaker[AsyncSession], bus: events.EventBus,
                       item_id: int, attachments: list[dict[str, Any]],
                       media: dict[str, Any]) -> None:
    """Add the stored files to the item, record the download's outcome (``media``: status
    stored / partial / failed and why), and tell the agents."""
    async with sessions() as session, session.begin():
        item = await session.get(TimelineItem, item_id)
        if item is None:
            return
        item.attachments = [*item.attachments, *attachments]
        item.data = {**item.data, "media": media}
        await session.flush()
        payload = item_json(item)
    await bus.publish(events.Event(events.MESSAGE_UPDATED, payload, item.conversation_id))


async def pending_media(sessions: async_sessionmaker[AsyncSession], channel: str,
                        before: datetime, limit: int = 500) -> list[TimelineItem]:
    """Items of ``channel`` whose download never finished (e.g. the process stopped)."""
    async with sessions() as session:
        rows = await session.execute(
            select(TimelineItem).where(
                TimelineItem.channel == channel, TimelineItem.created_at < before,
                TimelineItem.data["media"]["status"].as_string() == "pending")
            .order_by(TimelineItem.id).limit(limit))
        return list(rows.scalars())
