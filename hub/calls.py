"""Timeline items with a life of their own: a call that rings, is answered, ends.

Providers report progress out of order and more than once. ``update_call`` applies a state
only when its sequence number is newer than the one shown, records every (item, state)
pair once, and tells the agents. ``add_agent_item`` puts what an agent started or said
outside the reply box (an outbound call, their words in a call transcript) into a ticket.
Reports about items we do not know yet are kept (``keep_unmatched``) for reconciliation.
``change_item`` is the general form: any change of one item's data, queued behind
concurrent ones. Channel-agnostic: any adapter whose items have a lifecycle (phone calls,
video sessions) uses these actions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub import events
from hub.identity import preview
from hub.models import (
    AuditEvent,
    Conversation,
    Customer,
    Delivery,
    Direction,
    Identity,
    ItemKind,
    SenderType,
    TimelineItem,
    utcnow,
)
from hub.serialize import conversation_summary, item_json

UNMATCHED = "callback.unmatched"
RETRIES = 5


@dataclass(frozen=True)
class CallUpdate:
    item: TimelineItem
    changed: bool  # False when the change was refused (e.g. a repeated state): nothing written


@dataclass(frozen=True)
class CallOwner:
    """Who a call belongs to, so later reports about it join the same ticket."""

    conversation_id: int
    identity_kind: str
    identity_value: str
    agent_id: int | None


async def find_item(session: AsyncSession, channel: str, external_id: str) -> TimelineItem | None:
    return (await session.execute(select(TimelineItem).where(
        TimelineItem.channel == channel,
        TimelineItem.external_id == external_id))).scalar_one_or_none()


async def call_owner(sessions: async_sessionmaker[AsyncSession], channel: str,
                     external_id: str) -> CallOwner | None:
    """The ticket and the customer identity of a call item, or None when unknown."""
    async with sessions() as session:
        item = await find_item(session, channel, external_id)
        if item is None:
            return None
        identity = await session.get(Identity, item.identity_id) if item.identity_id else None
        if identity is None:
            identity = await _customer_identity(session, item, item.data.get("identity_kind"))
        if identity is None:
            return None
        return CallOwner(item.conversation_id, identity.kind, identity.value, item.agent_id)


async def _customer_identity(session: AsyncSession, item: TimelineItem,
                             kind: str | None) -> Identity | None:
    conversation = await session.get(Conversation, item.conversation_id)
    if conversation is None or not kind:
        return None
    return (await session.execute(select(Identity).where(
        Identity.customer_id == conversation.customer_id, Identity.kind == kind)
        .order_by(Identity.verified.desc(), Identity.id.desc()).limit(1))).scalar_one_or_none()


def merge_state(data: dict[str, Any], status: str, sequence: int | None,
                 extra: dict[str, Any]) -> dict[str, Any] | None:
    """The item's new data, or None when this (item, state) pair was seen before."""
    seen: dict[str, Any] = dict(data.get("events") or {})
    if status in seen:
        return None
    seen[status] = sequence
    current = data.get("sequence")
    newer = sequence is None or current is None or sequence > current
    merged = {**data, "events": seen}
    if newer:
        merged.update(status=status, sequence=sequence if sequence is not None else current)
    merged.update({k: v for k, v in extra.items() if v is not None})
    return merged


ItemChange = Callable[[dict[str, Any]], dict[str, Any] | None]


async def update_call(sessions: async_sessionmaker[AsyncSession], bus: events.EventBus,
                      channel: str, external_id: str, status: str, sequence: int | None,
                      **extra: Any) -> CallUpdate | None:
    """Apply a progress report to the item ``(channel, external_id)``; None if unknown.

    ``extra`` (duration, recording url, ...) is merged into the item's data whatever the
    order, since a later report never carries less than an earlier one.
    """
    where = (TimelineItem.channel == channel, TimelineItem.external_id == external_id)
    return await change_item(sessions, bus, where,
                             lambda data: merge_state(data, status, sequence, extra))


async def change_item(sessions: async_sessionmaker[AsyncSession], bus: events.EventBus,
                      where: Sequence[ColumnElement[bool]],
                      change: ItemChange) -> CallUpdate | None:
    """Replace the data of the one item ``where`` selects with ``change(data)`` (None: leave
    it as it is) and tell the agents; None if there is no such item.

    Concurrent changes of one item queue up, so ``change`` always sees the latest data: it
    may be called more than once (after a SQLite lock conflict) and must be pure.
    """
    for attempt in range(RETRIES):
        try:
            update = await _apply(sessions, where, change)
            break
        except OperationalError:  # SQLite: a concurrent change wrote first; read again
            if attempt == RETRIES - 1:
                raise
    if update is not None and update.changed:
        payload = item_json(update.item)
        await bus.publish(events.Event(events.MESSAGE_UPDATED, payload,
                                       update.item.conversation_id))
    return update


async def _apply(sessions: async_sessionmaker[AsyncSession], where: Sequence[ColumnElement[bool]],
                 change: ItemChange) -> CallUpdate | None:
    async with sessions() as session, session.begin():
        # Write first, read second: the no-op UPDATE takes the row's lock (PostgreSQL) or
        # the database's write lock (SQLite, whose transaction begins at the first write),
        # so concurrent changes of one item queue up instead of losing each other.
        touched = await session.execute(
            update(TimelineItem).where(*where).values(id=TimelineItem.id))
        if touched.rowcount == 0:  # type: ignore[attr-defined]
            return None
        item = (await session.execute(select(TimelineItem).where(*where))).scalar_one()
        changed = change(item.data)
        if changed is None:
            return CallUpdate(item, changed=False)
        item.data = changed
        return CallUpdate(item, changed=True)


async def keep_unmatched(sessions: async_sessionmaker[AsyncSession], source: str,
                         params: dict[str, str]) -> None:
    """A report about something we do not know yet: kept (audited) for reconciliation."""
    async with sessions() as session, session.begin():
        session.add(AuditEvent(actor_type="system", action=UNMATCHED, subject_type=source,
                               data={"params": params}))


async def unmatched(sessions: async_sessionmaker[AsyncSession],
                    source: str | None = None) -> list[dict[str, str]]:
    async with sessions() as session:
        query = select(AuditEvent).where(AuditEvent.action == UNMATCHED)
        if source:
            query = query.where(AuditEvent.subject_type == source)
        rows = (await session.execute(query.order_by(AuditEvent.id))).scalars()
        return [row.data.get("params", {}) for row in rows]


@dataclass(frozen=True)
class AgentItem:
    """Something an agent did or said on a ticket outside the reply box."""

    conversation_id: int
    agent_id: int | None
    channel: str
    kind: str
    external_id: str | None
    text: str = ""
    data: dict[str, Any] | None = None
    occurred_at: datetime | None = None
    # False for a channel replies cannot go out on (video): the ticket notes that it was
    # used but keeps the channel replies go out on.
    moves_ticket: bool = True


async def add_agent_item(sessions: async_sessionmaker[AsyncSession], bus: events.EventBus,
                         new: AgentItem) -> TimelineItem:
    """An agent's item (an outbound call, their words in a call's transcript): joins that
    ticket, never a new one, is stored once per (channel, external_id), and is shown to
    everyone watching the ticket."""
    try:
        added, summary = await _store_agent_item(sessions, new)
    except IntegrityError:  # a redelivery raced us to it
        added, summary = [], None
    if not added:
        async with sessions() as session:
            existing = await find_item(session, new.channel, new.external_id or "")
        assert existing is not None
        return existing
    for row in added:
        await bus.publish(events.Event(events.MESSAGE_CREATED, item_json(row),
                                       new.conversation_id))
    await bus.publish(events.Event(events.CONVERSATION_UPDATED, summary, new.conversation_id))
    return added[-1]


async def _store_agent_item(sessions: async_sessionmaker[AsyncSession],
                            new: AgentItem) -> tuple[list[TimelineItem], dict[str, Any] | None]:
    now = utcnow()
    at = min(new.occurred_at, now) if new.occurred_at else now
    async with sessions() as session, session.begin():
        if new.external_id and await find_item(session, new.channel, new.external_id):
            return [], None
        conversation = await session.get(Conversation, new.conversation_id)
        if conversation is None:
            raise LookupError(f"conversation {new.conversation_id} not found")
        moved = _switch(conversation, new.channel, at) if new.moves_ticket else []
        _touch(conversation, new.channel)
        added = [*moved, TimelineItem(
            conversation_id=new.conversation_id, kind=new.kind, channel=new.channel,
            direction=Direction.OUTBOUND, sender_type=SenderType.AGENT, agent_id=new.agent_id,
            text=new.text, external_id=new.external_id, data=new.data or {}, created_at=at,
            delivery_status=Delivery.SENT)]
        session.add_all(added)
        await session.flush()
        conversation.last_item_id = added[-1].id
        conversation.last_activity_at = max(conversation.last_activity_at, at)
        if new.text:
            conversation.last_preview = preview(new.text)
        customer = await session.get(Customer, conversation.customer_id)
        return added, conversation_summary(conversation, customer)  # type: ignore[arg-type]


def _switch(conversation: Conversation, channel: str, now: datetime) -> list[TimelineItem]:
    """The ticket moves to ``channel``: noted in the timeline as when a customer moves."""
    moved_from = conversation.last_channel
    conversation.last_channel = channel
    if moved_from == channel:
        return []
    return [TimelineItem(conversation_id=conversation.id, kind=ItemKind.SYSTEM, channel=channel,
                         direction=Direction.INTERNAL, sender_type=SenderType.SYSTEM,
                         data={"event": "channel_switched", "from": moved_from, "to": channel},
                         created_at=now)]


def _touch(conversation: Conversation, channel: str) -> None:
    """The ticket has used ``channel`` (its ``channels`` list every channel it touched)."""
    if channel not in conversation.channels:
        conversation.channels = [*conversation.channels, channel]
