"""Inbound pipeline: dedupe → resolve identity → attach to the ticket → commit → publish.

Messages arriving together are written in one transaction (group commit): each caller is
answered only after the commit that holds its message, so an acknowledgement never runs
ahead of durability, and the database sees one write per batch instead of one per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.base import Inbound
from hub import events
from hub.identity import normalize_identity, preview
from hub.models import (
    Conversation,
    Customer,
    Direction,
    Identity,
    ItemKind,
    SenderType,
    Status,
    TimelineItem,
    utcnow,
)
from hub.serialize import conversation_summary, item_json

log = logging.getLogger(__name__)
MAX_BATCH = 256


@dataclass
class IngestResult:
    item: TimelineItem
    conversation: Conversation
    customer: Customer
    created: bool
    opened: bool = False
    system_items: list[TimelineItem] = field(default_factory=list)


def default_display_name(inbound: Inbound, value: str) -> tuple[str, bool]:
    """A name for a customer we have never seen; the bool says it is a placeholder."""
    if inbound.display_name:
        return inbound.display_name.strip()[:200], False
    if inbound.identity_kind in {"email", "phone"}:
        return value, True
    return f"Guest {value[-4:].upper()}", True


def _row(model: type[Any], **values: Any) -> dict[str, Any]:
    """A full INSERT row for ``model``: the given values, the model's defaults for the rest
    (what ``model(**values)`` would hold), so every row of one bulk INSERT has the same keys."""
    row = {}
    for name, default, factory in _defaults(model):
        row[name] = values[name] if name in values else factory() if factory else default
    return row


@functools.cache
def _defaults(model: type[Any]) -> tuple[tuple[str, Any, Any], ...]:
    fields = model.model_fields  # type: ignore[attr-defined]
    return tuple((name, None if f.is_required() else f.default, f.default_factory)
                 for name, f in fields.items() if name != "id")


@dataclass
class _Plan:
    """What one inbound turns into; filled in over the batch's passes."""

    inbound: Inbound
    identity: Identity
    customer: Customer
    duplicate: TimelineItem | None = None  # already stored before this batch
    same_as: _Plan | None = None  # an earlier inbound of this batch with the same key
    opened: bool = False
    conversation: Conversation | None = None
    item: TimelineItem | None = None
    system_items: list[TimelineItem] = field(default_factory=list)


class _Batch:
    """One transaction's worth of inbound items, resolved with a handful of queries.

    Every write is one statement per table and batch (bulk INSERT … RETURNING, and the
    unit of work's executemany UPDATE at commit), never one per message."""

    def __init__(self, session: AsyncSession, now: datetime, reopen_window: timedelta) -> None:
        self.session = session
        self.now = now
        self.reopen_cutoff = now - reopen_window
        self.identities: dict[tuple[str, str], Identity] = {}
        self.customers: dict[int, Customer] = {}
        self.conversations: dict[int, Conversation] = {}
        self.seen: dict[tuple[str, str], TimelineItem] = {}
        bind = session.bind
        self.sqlite = bind is not None and bind.dialect.name == "sqlite"

    async def run(self, inbounds: list[Inbound]) -> list[IngestResult]:
        keys = [(i.identity_kind, i.identity_value) for i in inbounds]
        await self._load_duplicates(inbounds)
        await self._load_identities(set(keys))
        await self._create_missing_customers(inbounds)
        await self._load_customers_and_tickets()
        plans = self._plan(inbounds)
        await self._open_tickets(plans)
        with self.session.no_autoflush:  # conversations are written once, at commit
            await self._store_items(plans)
        for plan in plans:
            if plan.item is not None and plan.same_as is None and plan.duplicate is None:
                plan.conversation.last_item_id = plan.item.id  # type: ignore[union-attr]
        return [await self._result(plan) for plan in plans]

    async def _insert(self, model: type[Any], rows: list[dict[str, Any]]) -> list[Any]:
        """INSERT ``rows`` in one statement; the ORM objects come back in the rows' order.

        SQLite numbers a table's new rows in the order it inserts them and nobody else can
        write inside our write transaction, so sorting RETURNING by id restores that order
        (SQLAlchemy would otherwise fall back to one INSERT per row on SQLite)."""
        if not rows:
            return []
        if not self.sqlite:
            statement = insert(model).returning(model, sort_by_parameter_order=True)
            return list((await self.session.scalars(statement, rows)).all())
        objects = sorted((await self.session.scalars(insert(model).returning(model), rows)).all(),
                         key=lambda o: o.id)
        first = objects[0].id
        if len(objects) != len(rows) or objects[-1].id - first != len(rows) - 1:
            raise RuntimeError(f"{model.__name__} ids are not one ascending run")
        return objects

    async def _load_duplicates(self, inbounds: list[Inbound]) -> None:
        keyed = {(i.channel, i.external_id) for i in inbounds if i.external_id}
        if not keyed:
            return
        rows = await self.session.execute(select(TimelineItem).where(
            tuple_(TimelineItem.channel, TimelineItem.external_id).in_(list(keyed))))
        for item in rows.scalars():
            self.seen[(item.channel, item.external_id or "")] = item

    async def _load_identities(self, keys: set[tuple[str, str]]) -> None:
        rows = await self.session.execute(
            select(Identity).where(tuple_(Identity.kind, Identity.value).in_(list(keys))))
        for identity in rows.scalars():
            self.identities[(identity.kind, identity.value)] = identity

    async def _create_missing_customers(self, inbounds: list[Inbound]) -> None:
        customers: list[dict[str, Any]] = []
        identities: list[dict[str, Any]] = []
        new_keys: set[tuple[str, str]] = set()
        for inbound in inbounds:
            key = (inbound.identity_kind, inbound.identity_value)
            if key in self.identities or key in new_keys:
                continue
            new_keys.add(key)
            name, placeholder = default_display_name(inbound, inbound.identity_value)
            customers.append(_row(
                Customer, display_name=name, created_at=self.now, updated_at=self.now,
                attributes={"placeholder_name": True} if placeholder else {}))
            identities.append(_row(Identity, kind=key[0], value=key[1], created_at=self.now,
                                   verified=inbound.identity_verified))
        if not customers:
            return
        for customer, row in zip(await self._insert(Customer, customers), identities,
                                 strict=True):
            self.customers[customer.id] = customer
            row["customer_id"] = customer.id
        for identity in await self._insert(Identity, identities):
            self.identities[(identity.kind, identity.value)] = identity

    async def _load_customers_and_tickets(self) -> None:
        customer_ids = {identity.customer_id for identity in self.identities.values()}
        missing = customer_ids - set(self.customers)
        if missing:
            rows = await self.session.execute(select(Customer).where(Customer.id.in_(missing)))
            self.customers.update({c.id: c for c in rows.scalars()})  # type: ignore[misc]
        rows = await self.session.execute(
            select(Conversation).where(
                Conversation.customer_id.in_(customer_ids),
                Conversation.merged_into_id.is_(None),
                (Conversation.status != Status.RESOLVED)
                | (Conversation.resolved_at > self.reopen_cutoff),
            ).order_by(Conversation.last_activity_at)
        )
        for conversation in rows.scalars():
            current = self.conversations.get(conversation.customer_id)
            if current is None or current.status == Status.RESOLVED or (
                    conversation.status != Status.RESOLVED):
                self.conversations[conversation.customer_id] = conversation

    def _plan(self, inbounds: list[Inbound]) -> list[_Plan]:
        """In order: who sent it, is it a redelivery, does it open a ticket."""
        plans: list[_Plan] = []
        first_of: dict[tuple[str, str], _Plan] = {}
        opening: set[int] = set()
        for inbound in inbounds:
            identity = self.identities[(inbound.identity_kind, inbound.identity_value)]
            customer = self.customers[identity.customer_id]
            self._refresh_identity(identity, customer, inbound)
            plan = _Plan(inbound, identity, customer)
            plans.append(plan)
            if inbound.external_id:
                key = (inbound.channel, inbound.external_id)
                plan.duplicate = self.seen.get(key)
                plan.same_as = first_of.get(key)
                if plan.duplicate is not None or plan.same_as is not None:
                    continue
                first_of[key] = plan
            if customer.id not in self.conversations and customer.id not in opening:
                opening.add(customer.id)  # type: ignore[arg-type]
                plan.opened = True
        return plans

    async def _open_tickets(self, plans: list[_Plan]) -> None:
        openers = [plan for plan in plans if plan.opened]
        rows = [_row(Conversation, customer_id=p.customer.id, last_channel=p.inbound.channel,
                     channels=[], product_sku=p.inbound.product_sku,
                     store_id=p.inbound.store_id, locale=p.inbound.locale,
                     created_at=self.now, last_activity_at=self.now) for p in openers]
        for plan, conversation in zip(openers, await self._insert(Conversation, rows),
                                      strict=True):
            self.conversations[plan.customer.id] = conversation  # type: ignore[index]

    async def _store_items(self, plans: list[_Plan]) -> None:
        """Ticket changes in message order, then every new timeline row in one INSERT."""
        rows: list[dict[str, Any]] = []
        system_counts: list[int] = []
        for plan in plans:
            if plan.duplicate is not None or plan.same_as is not None:
                continue
            inbound = plan.inbound
            conversation = self.conversations[plan.customer.id]  # type: ignore[index]
            plan.conversation = conversation
            system_rows = [] if plan.opened else self._update_ticket(conversation, inbound)
            system_counts.append(len(system_rows))
            created_at = self._item_time(inbound)
            rows.extend(system_rows)
            rows.append(_row(
                TimelineItem, conversation_id=conversation.id, kind=inbound.kind,
                channel=inbound.channel, direction=Direction.INBOUND,
                sender_type=SenderType.CUSTOMER, identity_id=plan.identity.id,
                text=inbound.text, external_id=inbound.external_id,
                attachments=[a.as_dict() for a in inbound.attachments],
                data=dict(inbound.data), created_at=created_at))
            self._touch(conversation, inbound, created_at)
        stored = iter(await self._insert(TimelineItem, rows))
        counts = iter(system_counts)
        for plan in plans:
            if plan.conversation is not None:
                plan.system_items = [next(stored) for _ in range(next(counts))]
                plan.item = next(stored)

    async def _result(self, plan: _Plan) -> IngestResult:
        if plan.duplicate is not None:
            conversation = await self.session.get(Conversation, plan.duplicate.conversation_id)
            assert conversation is not None
            return IngestResult(plan.duplicate, conversation, plan.customer, created=False)
        if plan.same_as is not None:
            first = plan.same_as
            return IngestResult(first.item, first.conversation, plan.customer,  # type: ignore[arg-type]
                                created=False)
        return IngestResult(plan.item, plan.conversation, plan.customer,  # type: ignore[arg-type]
                            True, plan.opened, plan.system_items)

    def _item_time(self, inbound: Inbound) -> datetime:
        occurred = inbound.occurred_at
        if occurred is None or occurred > self.now:
            return self.now
        return occurred

    def _refresh_identity(self, identity: Identity, customer: Customer, inbound: Inbound) -> None:
        if inbound.identity_verified and not identity.verified:
            identity.verified = True
        if not identity.reachable:
            identity.reachable = True
        if inbound.display_name and customer.attributes.get("placeholder_name"):
            customer.display_name = inbound.display_name.strip()[:200]
            customer.attributes = {k: v for k, v in customer.attributes.items()
                                   if k != "placeholder_name"}

    def _update_ticket(self, conversation: Conversation,
                       inbound: Inbound) -> list[dict[str, Any]]:
        """A message joins an existing ticket: reopen it, note a channel switch."""
        system_rows: list[dict[str, Any]] = []
        if conversation.status == Status.RESOLVED:
            conversation.resolved_at = None
            system_rows.append(self._system(conversation, "reopened", inbound.channel))
        if conversation.last_channel != inbound.channel and conversation.channels:
            system_rows.append(self._system(conversation, "channel_switched", inbound.channel,
                                            **{"from": conversation.last_channel,
                                               "to": inbound.channel}))
        if inbound.product_sku:
            conversation.product_sku = inbound.product_sku
            conversation.store_id = inbound.store_id or conversation.store_id
        return system_rows

    def _system(self, conversation: Conversation, event: str, channel: str,
                **data: Any) -> dict[str, Any]:
        return _row(TimelineItem, conversation_id=conversation.id, kind=ItemKind.SYSTEM,
                    channel=channel, direction=Direction.INTERNAL,
                    sender_type=SenderType.SYSTEM, text="",
                    data={"event": event, **data}, created_at=self.now)

    def _touch(self, conversation: Conversation, inbound: Inbound, created_at: datetime) -> None:
        conversation.status = Status.OPEN
        conversation.last_channel = inbound.channel
        if inbound.channel not in conversation.channels:
            conversation.channels = [*conversation.channels, inbound.channel]
        conversation.unread_count += 1
        conversation.last_preview = preview(inbound.text) or _attachment_preview(inbound)
        conversation.last_activity_at = max(conversation.last_activity_at, created_at)
        if inbound.locale and not conversation.locale:
            conversation.locale = inbound.locale


def _attachment_preview(inbound: Inbound) -> str:
    if inbound.attachments:
        return f"📎 {inbound.attachments[0].name}"
    return f"[{inbound.kind}]" if inbound.kind != ItemKind.MESSAGE else ""


class Ingestor:
    """Takes ``Inbound`` from any adapter; answers each caller after its commit."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: events.EventBus,
                 reopen_window: timedelta = timedelta(hours=72)) -> None:
        self._sessions = sessions
        self._bus = bus
        self._reopen_window = reopen_window
        self._queue: asyncio.Queue[tuple[Inbound, asyncio.Future[IngestResult]]] = (
            asyncio.Queue())
        self._worker: asyncio.Task[None] | None = None

    async def ingest(self, inbound: Inbound) -> IngestResult:
        inbound = _normalized(inbound)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="ingest-worker")
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((inbound, future))
        return await future

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._process(batch)

    async def _process(self, batch: list[tuple[Inbound, asyncio.Future[IngestResult]]]) -> None:
        try:
            results = await self._commit([inbound for inbound, _ in batch])
        except IntegrityError:
            # Another process wrote one of these first: settle them one by one.
            results = [await self._commit_one(inbound) for inbound, _ in batch]
        except Exception as exc:
            log.exception("ingest batch failed")
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for result in results:
            if isinstance(result, IngestResult) and result.created:
                await self._publish(result)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _commit(self, inbounds: list[Inbound]) -> list[IngestResult]:
        async with self._sessions() as session, session.begin():
            return await _Batch(session, utcnow(), self._reopen_window).run(inbounds)

    async def _commit_one(self, inbound: Inbound) -> IngestResult | Exception:
        for _attempt in range(3):
            try:
                return (await self._commit([inbound]))[0]
            except IntegrityError as exc:
                error: Exception = exc
        return error

    async def _publish(self, result: IngestResult) -> None:
        for item in [*result.system_items, result.item]:
            await self._bus.publish(events.Event(
                events.MESSAGE_CREATED, item_json(item), result.conversation.id,
                meta={"customer_id": result.customer.id, "opened": result.opened}))
        await self._bus.publish(events.Event(
            events.CONVERSATION_UPDATED,
            conversation_summary(result.conversation, result.customer),
            result.conversation.id))


def _normalized(inbound: Inbound) -> Inbound:
    from dataclasses import replace

    value = normalize_identity(inbound.identity_kind, inbound.identity_value)
    return inbound if value == inbound.identity_value else replace(inbound, identity_value=value)
