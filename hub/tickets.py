"""Agent-side actions on tickets. Each action writes, commits, then tells everyone
(Zulip's rule: what changed and who is told can never drift apart)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub import events
from hub.identity import audit, preview
from hub.models import (
    Agent,
    Conversation,
    Customer,
    Delivery,
    Direction,
    Identity,
    ItemKind,
    Product,
    SenderType,
    Status,
    Store,
    TimelineItem,
    utcnow,
)
from hub.outbox import CHANNEL_IDENTITY, enqueue, recipient_for
from hub.serialize import (
    conversation_summary,
    customer_brief,
    customer_item_json,
    identity_json,
    iso,
    item_json,
)
from hub.text import clean_text
from kb.bot import Mode

MAX_TAG_CHARS = 50

TIMELINE_LIMIT = 1000


class TicketError(ValueError):
    """A request that cannot be done as asked (maps to a 4xx with a code)."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class InboxFilter:
    status: str | None = None
    channel: str | None = None
    assignee: str | None = None
    customer_id: int | None = None
    q: str | None = None
    limit: int = 50
    cursor: str | None = None


def encode_cursor(moment: datetime, conversation_id: int) -> str:
    raw = json.dumps([iso(moment), conversation_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, conversation_id = json.loads(raw)
        return datetime.fromisoformat(moment.replace("Z", "+00:00")), int(conversation_id)
    except (ValueError, TypeError) as exc:
        raise TicketError("bad_cursor", "cursor is not valid", 400) from exc


class Tickets:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: events.EventBus,
                 enabled_channels: Callable[[], Collection[str]],
                 wake_dispatcher: Callable[[], None]) -> None:
        self._sessions = sessions
        self._bus = bus
        self._enabled = enabled_channels
        self._wake = wake_dispatcher

    # --- reads -----------------------------------------------------------------------

    async def inbox(self, query: InboxFilter, agent_id: int) -> dict[str, Any]:
        statement = select(Conversation, Customer).join(
            Customer, Customer.id == Conversation.customer_id
        ).where(Conversation.merged_into_id.is_(None))
        statement = _apply_filters(statement, query, agent_id)
        limit = max(1, min(query.limit, 200))
        statement = statement.order_by(Conversation.last_activity_at.desc(),
                                       Conversation.id.desc()).limit(limit + 1)
        async with self._sessions() as session:
            rows = (await session.execute(statement)).all()
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = page[-1][0]
            next_cursor = encode_cursor(last.last_activity_at, last.id)
        return {"items": [conversation_summary(c, cu) for c, cu in page],
                "next_cursor": next_cursor}

    async def detail(self, conversation_id: int) -> dict[str, Any]:
        async with self._sessions() as session:
            conversation = await _conversation(session, conversation_id)
            customer = await session.get(Customer, conversation.customer_id)
            assert customer is not None
            items = (await session.execute(
                select(TimelineItem).where(TimelineItem.conversation_id == conversation_id)
                .order_by(TimelineItem.created_at.desc(), TimelineItem.id.desc())
                .limit(TIMELINE_LIMIT))).scalars().all()
            assignee = (await session.get(Agent, conversation.assignee_id)
                        if conversation.assignee_id else None)
            product = (await session.get(Product, conversation.product_sku)
                       if conversation.product_sku else None)
            store = (await session.get(Store, conversation.store_id)
                     if conversation.store_id else None)
            identities = (await session.execute(select(Identity).where(
                Identity.customer_id == customer.id))).scalars().all()
        detail = conversation_summary(conversation, customer)
        detail["customer"] = {**customer_brief(customer),
                              "identities": [identity_json(i) for i in identities]}
        detail["assignee"] = ({"id": assignee.id, "name": assignee.name or assignee.email}
                              if assignee else None)
        detail["product"] = ({"sku": product.sku, "name": product.name,
                              "name_en": product.name_en, "price": product.price,
                              "currency": product.currency}
                             if product else conversation.product_sku)
        detail["store"] = ({"id": store.id, "name": store.name}
                           if store else conversation.store_id)
        detail["reply_channels"] = sorted(self._reply_channels(identities))
        detail["timeline"] = [item_json(item) for item in reversed(items)]
        return detail

    async def customer_view(self, kind: str, value: str,
                            limit: int = 200) -> tuple[int | None, list[dict[str, Any]]]:
        """The ticket a customer is in now and what they may see of it."""
        async with self._sessions() as session:
            identity = (await session.execute(select(Identity).where(
                Identity.kind == kind, Identity.value == value))).scalar_one_or_none()
            if identity is None:
                return None, []
            conversation = (await session.execute(
                select(Conversation).where(Conversation.customer_id == identity.customer_id,
                                           Conversation.merged_into_id.is_(None))
                .order_by(Conversation.last_activity_at.desc()).limit(1))).scalar_one_or_none()
            if conversation is None:
                return None, []
            items = (await session.execute(
                select(TimelineItem).where(
                    TimelineItem.conversation_id == conversation.id,
                    TimelineItem.direction != Direction.INTERNAL,
                    # calls, recordings, transcripts and video sessions are the agents'
                    # record of a conversation held elsewhere, not chat bubbles
                    TimelineItem.kind == ItemKind.MESSAGE)
                .order_by(TimelineItem.created_at.desc(), TimelineItem.id.desc())
                .limit(limit))).scalars().all()
        # an e-mail copy of a chat reply (hub/follow_up.py) is not shown in the chat twice
        return conversation.id, [customer_item_json(i) for i in reversed(items)
                                 if "copy_of" not in i.data]

    async def identities_of_conversation(self, conversation_id: int, kind: str) -> list[str]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(Identity.value).join(
                    Conversation, Conversation.customer_id == Identity.customer_id)
                .where(Conversation.id == conversation_id, Identity.kind == kind))
            return list(rows.scalars())

    def _reply_channels(self, identities: Collection[Identity]) -> set[str]:
        kinds = {i.kind for i in identities}
        return {ch for ch in self._enabled() if CHANNEL_IDENTITY.get(ch, ch) in kinds}

    # --- writes ----------------------------------------------------------------------

    async def reply(self, conversation_id: int, text: str, *, agent_id: int | None,
                    channel: str | None = None, internal: bool = False,
                    sender_type: str = SenderType.AGENT,
                    data: dict[str, Any] | None = None) -> TimelineItem:
        text = clean_text(text).strip()
        if not text:
            raise TicketError("empty_text", "text must not be empty", 400)
        async with self._sessions() as session, session.begin():
            conversation = await _conversation(session, conversation_id)
            if channel is None and not internal:
                channel = await self._customers_latest_channel(session, conversation)
            channel = channel or conversation.last_channel
            if not internal:
                await self._check_reachable(session, conversation, channel)
            item = TimelineItem(
                conversation_id=conversation_id, channel=channel,
                direction=Direction.INTERNAL if internal else Direction.OUTBOUND,
                sender_type=sender_type, agent_id=agent_id, text=text, data=data or {},
                delivery_status=Delivery.RECEIVED if internal else Delivery.QUEUED)
            session.add(item)
            await session.flush()
            if not internal:
                enqueue(session, item)
                _note_reply(conversation, sender_type)
                if sender_type == SenderType.AGENT:
                    _agent_takes_over(conversation)
            conversation.last_item_id = item.id
            conversation.last_preview = preview(text)
            conversation.last_activity_at = item.created_at
            customer = await session.get(Customer, conversation.customer_id)
        if not internal:
            self._wake()
        await self._announce(item, conversation, customer)
        return item

    async def _customers_latest_channel(self, session: AsyncSession,
                                        conversation: Conversation) -> str:
        """The channel the customer wrote on last that can still reach them: the ticket's
        last channel, unless an unmerge took that identity away from this customer."""
        if await self._reaches(session, conversation, conversation.last_channel):
            return conversation.last_channel
        used = (await session.execute(
            select(TimelineItem.channel).where(
                TimelineItem.conversation_id == conversation.id,
                TimelineItem.direction == Direction.INBOUND)
            .group_by(TimelineItem.channel).order_by(sa.func.max(TimelineItem.id).desc())
        )).scalars().all()
        for channel in used:
            if await self._reaches(session, conversation, channel):
                return channel
        return conversation.last_channel

    async def _reaches(self, session: AsyncSession, conversation: Conversation,
                       channel: str) -> bool:
        return channel in self._enabled() and await recipient_for(
            session, conversation.customer_id, channel) is not None

    async def _check_reachable(self, session: AsyncSession, conversation: Conversation,
                               channel: str) -> None:
        if channel not in self._enabled():
            raise TicketError("channel_unavailable", f"channel {channel!r} is not enabled")
        if not await self._reaches(session, conversation, channel):
            raise TicketError("channel_unavailable",
                              f"the customer cannot be reached on {channel!r}")

    async def update(self, conversation_id: int, *, agent_id: int | None,
                     changes: dict[str, Any]) -> dict[str, Any]:
        async with self._sessions() as session, session.begin():
            conversation = await _conversation(session, conversation_id)
            system_items = await _apply_changes(session, conversation, changes, agent_id)
            customer = await session.get(Customer, conversation.customer_id)
        for item in system_items:
            await self._bus.publish(events.Event(events.MESSAGE_CREATED, item_json(item),
                                                 conversation_id))
        summary = conversation_summary(conversation, customer)  # type: ignore[arg-type]
        await self._bus.publish(events.Event(events.CONVERSATION_UPDATED, summary,
                                             conversation_id))
        return summary

    async def note(self, customer_id: int, channel: str, event: str,
                   **data: Any) -> TimelineItem | None:
        """A system note in the customer's open ticket, when they have one (a note never
        opens a ticket): something the agent should know, such as a blocked account."""
        async with self._sessions() as session, session.begin():
            conversation = (await session.execute(select(Conversation).where(
                Conversation.customer_id == customer_id, Conversation.merged_into_id.is_(None),
                Conversation.status != Status.RESOLVED,
            ).order_by(Conversation.last_activity_at.desc()).limit(1))).scalar_one_or_none()
            if conversation is None:
                return None
            item = system_note(conversation.id, channel, event, **data)  # type: ignore[arg-type]
            session.add(item)
            await session.flush()
        await self._bus.publish(events.Event(events.MESSAGE_CREATED, item_json(item),
                                             conversation.id))
        return item

    async def mark_read(self, conversation_id: int) -> None:
        async with self._sessions() as session, session.begin():
            conversation = await _conversation(session, conversation_id)
            if conversation.unread_count == 0:
                return
            conversation.unread_count = 0
            customer = await session.get(Customer, conversation.customer_id)
        await self._bus.publish(events.Event(
            events.CONVERSATION_UPDATED,
            conversation_summary(conversation, customer),  # type: ignore[arg-type]
            conversation_id))

    async def _announce(self, item: TimelineItem, conversation: Conversation,
                        customer: Customer | None) -> None:
        await self._bus.publish(events.Event(events.MESSAGE_CREATED, item_json(item),
                                             conversation.id))
        assert customer is not None
        await self._bus.publish(events.Event(events.CONVERSATION_UPDATED,
                                             conversation_summary(conversation, customer),
                                             conversation.id))


def system_note(conversation_id: int, channel: str, event: str, agent_id: int | None = None,
                **data: Any) -> TimelineItem:
    """A timeline note for the agents (``data.event`` names what happened)."""
    return TimelineItem(conversation_id=conversation_id, kind=ItemKind.SYSTEM, channel=channel,
                        direction=Direction.INTERNAL, sender_type=SenderType.SYSTEM,
                        agent_id=agent_id, data={"event": event, **data})


def _agent_takes_over(conversation: Conversation) -> None:
    """Assigned to an agent, or an agent wrote to the customer: the ticket is the agent's
    (the bot stays silent and the inbox stops showing it as waiting), in the same
    transaction, so the answer to that request already says so."""
    if conversation.bot_state.get("mode") != Mode.AGENT:
        conversation.bot_state = {**conversation.bot_state, "mode": Mode.AGENT.value}


def _note_reply(conversation: Conversation, sender_type: str) -> None:
    if sender_type == SenderType.AGENT:
        conversation.unread_count = 0
        if conversation.first_response_at is None:
            conversation.first_response_at = utcnow()


async def _conversation(session: AsyncSession, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise TicketError("not_found", f"conversation {conversation_id} not found", 404)
    return conversation


async def _apply_changes(session: AsyncSession, conversation: Conversation,
                         changes: dict[str, Any], agent_id: int | None) -> list[TimelineItem]:
    system: list[tuple[str, dict[str, Any]]] = []
    if "status" in changes and changes["status"] != conversation.status:
        status = changes["status"]
        if status not in {s.value for s in Status}:
            raise TicketError("bad_status", "status must be open, pending or resolved", 400)
        conversation.status = status
        conversation.resolved_at = utcnow() if status == Status.RESOLVED else None
        system.append(("status_changed", {"status": status}))
    if "assignee_id" in changes and changes["assignee_id"] != conversation.assignee_id:
        assignee_id = changes["assignee_id"]
        assignee = await session.get(Agent, assignee_id) if assignee_id is not None else None
        if assignee_id is not None and assignee is None:
            raise TicketError("bad_assignee", f"agent {assignee_id} not found", 400)
        conversation.assignee_id = assignee_id
        if assignee_id is not None:
            _agent_takes_over(conversation)
        system.append(("assigned", {"assignee_id": assignee_id, "assignee_name": (
            assignee.name or assignee.email) if assignee else None}))
    if "tags" in changes:
        tags = changes["tags"]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise TicketError("bad_tags", "tags must be a list of strings", 400)
        if any(len(t.strip()) > MAX_TAG_CHARS for t in tags):  # refused, not cut short
            raise TicketError("bad_tags", f"a tag has at most {MAX_TAG_CHARS} characters", 400)
        conversation.tags = sorted({t.strip() for t in tags if t.strip()})
    items = [system_note(conversation.id, conversation.last_channel, event,  # type: ignore[arg-type]
                         agent_id=agent_id, **data) for event, data in system]
    session.add_all(items)
    if items:
        await session.flush()
        audit(session, "conversation.update", "conversation", conversation.id, agent_id,
              changes={k: v for k, v in changes.items() if k in {"status", "assignee_id"}})
    return items


def _apply_filters(statement: Any, query: InboxFilter, agent_id: int) -> Any:
    if query.status:
        statement = statement.where(Conversation.status == query.status)
    if query.channel:
        statement = statement.where(
            sa.cast(Conversation.channels, sa.String).like(f'%"{query.channel}"%'))
    if query.assignee == "me":
        statement = statement.where(Conversation.assignee_id == agent_id)
    elif query.assignee in {"none", "unassigned"}:
        statement = statement.where(Conversation.assignee_id.is_(None))
    elif query.assignee and query.assignee.isdigit():
        statement = statement.where(Conversation.assignee_id == int(query.assignee))
    if query.customer_id is not None:
        statement = statement.where(Conversation.customer_id == query.customer_id)
    if query.q:
        pattern = f"%{_escape_like(query.q.strip())}%"
        statement = statement.where(sa.or_(
            Customer.display_name.ilike(pattern, escape="\\"),
            Conversation.id.in_(select(TimelineItem.conversation_id).where(
                TimelineItem.text.ilike(pattern, escape="\\")))))
    if query.cursor:
        moment, last_id = decode_cursor(query.cursor)
        statement = statement.where(sa.or_(
            Conversation.last_activity_at < moment,
            (Conversation.last_activity_at == moment) & (Conversation.id < last_id)))
    return statement


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
