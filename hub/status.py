"""Provider reports about items already in a timeline: delivered, read, failed (a bounce),
unsent by the customer. Applied by (channel, external_id); unknown ids are ignored."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.base import StatusUpdate
from hub import events
from hub.models import Delivery, TimelineItem
from hub.serialize import item_json

DELIVERY_STATES = {d.value for d in Delivery}


async def apply_status(sessions: async_sessionmaker[AsyncSession], bus: events.EventBus,
                       update: StatusUpdate) -> TimelineItem | None:
    """Record ``update`` on its item and tell the agents; None when no item matches."""
    async with sessions() as session, session.begin():
        item = (await session.execute(select(TimelineItem).where(
            TimelineItem.channel == update.channel,
            TimelineItem.external_id == update.external_id))).scalar_one_or_none()
        if item is None:
            return None
        if update.status in DELIVERY_STATES:
            item.delivery_status = update.status
            item.error = update.error if update.status == Delivery.FAILED else item.error
        else:  # e.g. "unsent": the customer took it back; kept for audit, flagged
            item.data = {**item.data, update.status: True,
                         **({"reason": update.error} if update.error else {})}
        payload = item_json(item)
    await bus.publish(events.Event(events.MESSAGE_UPDATED, payload, payload["conversation_id"]))
    return item
