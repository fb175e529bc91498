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
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from channels.base import Inbound
from hub import events
from hub.db import SqliteWriter, pair_in, pair_params
from hub.identity import PLACEHOLDER_NAME, guest_name, normalize_identity, preview
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
from hub.rows import ROW_OF, CustomerRow, IdentityRow, ItemRow, Row, TicketRow
from hub.serialize import conversation_summary, iso, item_json
from hub.sqlite_io import SqliteStatements
from hub.text import clean_name, clean_text

log = logging.getLogger(__name__)
Snapshot = dict[str, Any]  # a row's column values, as read or as last committed
MAX_BATCH = 256
GATHER_TURNS = 8  # loop turns a batch may wait while more messages keep arriving


@dataclass
class IngestResult:
    """What one inbound became, as committed (snapshots, see hub.rows)."""

    item: ItemRow
    conversation: TicketRow
    customer: CustomerRow
    created: bool
    opened: bool = False
    system_items: list[ItemRow] = field(default_factory=list)


def default_display_name(inbound: Inbound, value: str) -> tuple[str, bool]:
    """A name for a customer we have never seen; the bool says it is a placeholder."""
    if inbound.display_name:
        return inbound.display_name.strip()[:200], False
    if inbound.identity_kind in {"email", "phone"}:
        return value, True
    return guest_name(value), True


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


# The batch's statements, built once: a statement is costly to build and to key for the
# compiled cache, and a batch of one message pays that as much as a batch of 256.


@functools.cache
def _duplicates_query() -> Any:
    items = TimelineItem.__table__  # type: ignore[attr-defined]
    return select(items).where(pair_in(items.c.channel, items.c.external_id))


@functools.cache
def _senders_query() -> Any:
    """Known identities, their customers and the tickets a message may join, in one
    SELECT: identity ⋈ customer ⟕ live or recently resolved conversation."""
    identity = Identity.__table__  # type: ignore[attr-defined]
    customer = Customer.__table__  # type: ignore[attr-defined]
    ticket = Conversation.__table__  # type: ignore[attr-defined]
    joins = identity.join(customer, customer.c.id == identity.c.customer_id).outerjoin(
        ticket, and_(ticket.c.customer_id == customer.c.id, ticket.c.merged_into_id.is_(None),
                     (ticket.c.status != Status.RESOLVED)
                     | (ticket.c.resolved_at > bindparam("reopen_cutoff"))))
    return (select(identity, customer, ticket).select_from(joins)
            .where(pair_in(identity.c.kind, identity.c.value))
            .order_by(ticket.c.last_activity_at))


def _joinable(ticket: Snapshot, reopen_cutoff: datetime) -> bool:
    """The ticket condition of ``_senders_query``'s join, for a remembered ticket."""
    resolved_at = ticket["resolved_at"]
    return ticket["status"] != Status.RESOLVED or (
        resolved_at is not None and resolved_at > reopen_cutoff)


@functools.cache
def _sender_columns() -> tuple[tuple[str, ...], ...]:
    """Column names of the senders query's identity, customer and ticket parts, in order."""
    return tuple(tuple(c.name for c in model.__table__.c)  # type: ignore[attr-defined]
                 for model in (Identity, Customer, Conversation))


ITEM_KEY = ("channel", "external_id")  # a redelivery is the same item on the same channel


class _StoredBefore(Exception):
    """Some message of the batch was stored before: the batch is redone, looking first."""


@functools.cache
def _conversation_query() -> Any:
    ticket = Conversation.__table__  # type: ignore[attr-defined]
    return select(ticket).where(ticket.c.id == bindparam("id"))


@functools.cache
def _insert_query(model: type[Any]) -> Any:
    table = model.__table__  # type: ignore[attr-defined]
    return insert(table).returning(table.c.id, sort_by_parameter_order=True)


@functools.cache
def _update_query(model: type[Any], names: tuple[str, ...]) -> Any:
    table = model.__table__  # type: ignore[attr-defined]
    return update(table).where(table.c.id == bindparam("_id")).values(
        {name: bindparam(f"_{name}") for name in names})


class SenderCache:
    """What the senders SELECT would answer for recent senders, as this writer committed it.

    Valid only while no other connection has written: SQLite's ``PRAGMA data_version``
    moves when another connection (another process, or this process's async engine: agents'
    actions, merges) commits, never for our own commits, and it is read inside the batch's
    write transaction, where nobody else can commit. The snapshots are plain dicts, and
    each batch builds rows of its own from them: a batch's rows are still being announced
    while the next batch changes its own. Ingest never resolves or merges a ticket, so a
    customer's cached tickets stay joinable, filtered again by each batch's reopen cutoff."""

    LIMIT = 50_000  # senders; past it the cache starts again

    def __init__(self) -> None:
        self._stamp: tuple[Any, int, datetime] | None = None
        self.identities: dict[tuple[str, str], Snapshot] = {}
        self.customers: dict[int, Snapshot] = {}
        self.tickets: dict[int, list[Snapshot]] = {}  # by customer: the joinable ones

    def check(self, connection: Any, data_version: int, reopen_cutoff: datetime) -> None:
        """Drop everything unless only this connection wrote since the last batch (and the
        clock did not go back, which could make an older ticket joinable again)."""
        stamp = self._stamp
        if stamp is None or stamp[0] is not connection or stamp[1] != data_version \
                or reopen_cutoff < stamp[2]:
            self.clear()
        self._stamp = (connection, data_version, reopen_cutoff)

    def clear(self) -> None:
        self.identities.clear()
        self.customers.clear()
        self.tickets.clear()

    def get(self, key: tuple[str, str]) -> tuple[Snapshot, Snapshot, list[Snapshot]] | None:
        identity = self.identities.get(key)
        if identity is None:
            return None
        customer_id = identity["customer_id"]
        customer, tickets = self.customers.get(customer_id), self.tickets.get(customer_id)
        return None if customer is None or tickets is None else (identity, customer, tickets)

    def remember(self, batch: _Batch) -> None:
        """After the batch's commit: its senders as they are now."""
        if len(self.identities) > self.LIMIT:
            self.clear()
        for key, identity in batch.identities.items():
            self.identities[key] = dict(identity.__dict__)
        for customer_id, customer in batch.customers.items():
            self.customers[customer_id] = dict(customer.__dict__)
            self.tickets[customer_id] = []
        for ticket in [*batch.candidates.values(), *batch.opened]:
            self.tickets.setdefault(ticket.customer_id, []).append(dict(ticket.__dict__))


@dataclass
class _Plan:
    """What one inbound turns into; filled in over the batch's passes."""

    inbound: Inbound
    identity: IdentityRow
    customer: CustomerRow
    duplicate: ItemRow | None = None  # already stored before this batch
    same_as: _Plan | None = None  # an earlier inbound of this batch with the same key
    opened: bool = False
    conversation: TicketRow | None = None
    item: ItemRow | None = None
    system_items: list[ItemRow] = field(default_factory=list)


class _Batch:
    """One transaction's worth of inbound items: a handful of statements per batch, never
    one per message.

    Rows are read with one SELECT and written with one multi-row INSERT … RETURNING per
    table and one executemany UPDATE per table and set of changed columns (on SQLite through
    the driver itself, hub.sqlite_io; elsewhere through SQLAlchemy Core), into plain row
    snapshots (hub.rows). Like the ORM's unit of work, an UPDATE writes only the columns
    whose value changed."""

    def __init__(self, session: Session | Connection, now: datetime,
                 reopen_window: timedelta, look_for_stored: bool = True,
                 senders: SenderCache | None = None) -> None:
        self.session = session  # in a transaction: a Session, or the SQLite writer's Connection
        self.now = now
        self.reopen_cutoff = now - reopen_window
        self.identities: dict[tuple[str, str], IdentityRow] = {}
        self.customers: dict[int, CustomerRow] = {}
        self.conversations: dict[int, TicketRow] = {}
        self.candidates: dict[int, TicketRow] = {}  # every ticket a message may join
        self.opened: list[TicketRow] = []
        self.seen: dict[tuple[str, str], ItemRow] = {}
        self.changes: dict[tuple[type[Any], int], dict[str, Any]] = {}
        connection = session if isinstance(session, Connection) else session.connection()
        self.sqlite = connection.dialect.name == "sqlite"
        # On SQLite a redelivery can be found by the INSERT itself (ON CONFLICT DO NOTHING
        # returns fewer ids), which saves a SELECT per batch; the rare batch that holds one
        # is rolled back and redone with the SELECT. Elsewhere, always look first.
        self.look_for_stored = look_for_stored or not self.sqlite
        self.sqlite_statements = SqliteStatements(connection) if self.sqlite else None
        self.senders = None
        if senders is not None and self.sqlite_statements is not None:
            senders.check(self.sqlite_statements.dbapi_connection,
                          self.sqlite_statements.data_version(), self.reopen_cutoff)
            self.senders = senders

    def run(self, inbounds: list[Inbound]) -> list[IngestResult]:
        if self.look_for_stored:
            self._load_duplicates(inbounds)
        self._load_senders({(i.identity_kind, i.identity_value) for i in inbounds})
        self._create_missing_customers(inbounds)
        plans = self._plan(inbounds)
        self._open_tickets(plans)
        self._store_items(plans)
        for plan in plans:
            if plan.item is not None and plan.same_as is None and plan.duplicate is None:
                self._set(plan.conversation, "last_item_id", plan.item.id)
        self._write_changes()
        return [self._result(plan) for plan in plans]

    # --- reading and writing rows ------------------------------------------------------

    def _select(self, model: type[Any], statement: Any, **params: Any) -> list[Any]:
        rows = (self.session.execute(statement, params)).mappings().all()
        return [ROW_OF[model](dict(row)) for row in rows]

    def _insert(self, model: type[Any], rows: list[dict[str, Any]]) -> list[Any]:
        """INSERT ``rows`` in one statement; their instances come back in the rows' order."""
        if not rows:
            return []
        table = model.__table__  # type: ignore[attr-defined]
        if self.sqlite_statements is None:
            ids = [row[0] for row in self.session.execute(_insert_query(model), rows).all()]
        else:
            skip_stored = model is TimelineItem and not self.look_for_stored
            ids = sorted(self.sqlite_statements.insert(
                table, rows, skip_conflicts_on=ITEM_KEY if skip_stored else ()))
            if skip_stored and len(ids) != len(rows):
                raise _StoredBefore
            # SQLite numbers new rows in the order it inserts them, and nothing else can
            # write inside our write transaction, so ascending ids are the rows' order
            # (RETURNING itself promises no order, which is why SQLAlchemy would otherwise
            # send one INSERT per row to SQLite).
            if len(ids) != len(rows) or ids[-1] - ids[0] != len(ids) - 1:
                raise RuntimeError(f"new {table.name} ids are not one ascending run")
        row_class = ROW_OF[model]
        return [row_class({**row, "id": id_}) for row, id_ in zip(rows, ids, strict=True)]

    def _set(self, row: Row, name: str, value: Any) -> None:
        """Change one column of a row read or written in this batch; written at the end."""
        if row.__dict__.get(name) == value:
            return
        row.__dict__[name] = value
        self.changes.setdefault((row.model, row.id), {})[name] = value

    def _write_changes(self) -> None:
        groups: dict[tuple[type[Any], tuple[str, ...]], list[tuple[int, dict[str, Any]]]] = {}
        for (model, id_), values in self.changes.items():
            groups.setdefault((model, tuple(sorted(values))), []).append((id_, values))
        for (model, names), changes in groups.items():
            if self.sqlite_statements is not None:
                self.sqlite_statements.update(model.__table__, names, changes)
            else:
                self.session.execute(_update_query(model, names), [
                    {"_id": id_, **{f"_{k}": v for k, v in values.items()}}
                    for id_, values in changes])

    # --- the passes --------------------------------------------------------------------

    def _load_duplicates(self, inbounds: list[Inbound]) -> None:
        keyed = {(i.channel, i.external_id) for i in inbounds if i.external_id}
        if not keyed:
            return
        for item in self._select(TimelineItem, _duplicates_query(), **pair_params(keyed)):
            self.seen[(item.channel, item.external_id or "")] = item

    def _load_senders(self, keys: set[tuple[str, str]]) -> None:
        """Known identities, their customers and the tickets a message may join."""
        identities: dict[tuple[str, str], Snapshot] = {}
        customers: dict[int, Snapshot] = {}
        tickets: dict[int, Snapshot] = {}
        missing = self._cached_senders(keys, identities, customers, tickets)
        if missing:
            self._select_senders(missing, identities, customers, tickets)
        for key, values in identities.items():
            self.identities[key] = IdentityRow(values)
        for customer_id, values in customers.items():
            self.customers[customer_id] = CustomerRow(values)
        ordered = sorted(tickets.values(), key=lambda ticket: ticket["last_activity_at"])
        for values in ordered:  # oldest activity first
            conversation = self.candidates[values["id"]] = TicketRow(values)
            current = self.conversations.get(conversation.customer_id)
            if current is None or current.status == Status.RESOLVED or (
                    conversation.status != Status.RESOLVED):
                self.conversations[conversation.customer_id] = conversation

    def _cached_senders(self, keys: set[tuple[str, str]],
                        identities: dict[tuple[str, str], Snapshot],
                        customers: dict[int, Snapshot],
                        tickets: dict[int, Snapshot]) -> set[tuple[str, str]]:
        """Fill in what the cache knows; returns the keys it does not."""
        if self.senders is None:
            return keys
        missing = set()
        for key in keys:
            cached = self.senders.get(key)
            if cached is None:
                missing.add(key)
                continue
            identity, customer, joinable = cached
            identities[key] = identity
            customers[customer["id"]] = customer
            for ticket in joinable:
                if _joinable(ticket, self.reopen_cutoff):
                    tickets[ticket["id"]] = ticket
        return missing

    def _select_senders(self, keys: set[tuple[str, str]],
                        identities: dict[tuple[str, str], Snapshot],
                        customers: dict[int, Snapshot],
                        tickets: dict[int, Snapshot]) -> None:
        names = _sender_columns()
        cut1, cut2 = len(names[0]), len(names[0]) + len(names[1])
        params = {**pair_params(keys), "reopen_cutoff": self.reopen_cutoff}
        if self.sqlite_statements is not None:
            rows = self.sqlite_statements.select(_senders_query(), **params)
        else:
            rows = self.session.execute(_senders_query(), params).all()
        for row in rows:
            identity = dict(zip(names[0], row[:cut1], strict=True))
            customer = dict(zip(names[1], row[cut1:cut2], strict=True))
            ticket = dict(zip(names[2], row[cut2:], strict=True))
            identities.setdefault((identity["kind"], identity["value"]), identity)
            customers.setdefault(customer["id"], customer)
            if ticket["id"] is not None:
                tickets.setdefault(ticket["id"], ticket)

    def _create_missing_customers(self, inbounds: list[Inbound]) -> None:
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
                attributes={PLACEHOLDER_NAME: True} if placeholder else {}))
            identities.append(_row(Identity, kind=key[0], value=key[1], created_at=self.now,
                                   verified=inbound.identity_verified))
        if not customers:
            return
        for customer, row in zip(self._insert(Customer, customers), identities,
                                 strict=True):
            self.customers[customer.id] = customer
            row["customer_id"] = customer.id
        for identity in self._insert(Identity, identities):
            self.identities[(identity.kind, identity.value)] = identity

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
            if self._hinted(plan) is not None:
                continue
            if customer.id not in self.conversations and customer.id not in opening:
                opening.add(customer.id)  # type: ignore[arg-type]
                plan.opened = True
        return plans

    def _open_tickets(self, plans: list[_Plan]) -> None:
        openers = [plan for plan in plans if plan.opened]
        rows = [_row(Conversation, customer_id=p.customer.id, last_channel=p.inbound.channel,
                     channels=[], product_sku=p.inbound.product_sku,
                     store_id=p.inbound.store_id, locale=p.inbound.locale,
                     created_at=self.now, last_activity_at=self.now) for p in openers]
        for plan, conversation in zip(openers, self._insert(Conversation, rows),
                                      strict=True):
            self.conversations[plan.customer.id] = conversation  # type: ignore[index]
            self.opened.append(conversation)

    def _store_items(self, plans: list[_Plan]) -> None:
        """Ticket changes in message order, then every new timeline row in one INSERT."""
        rows: list[dict[str, Any]] = []
        system_counts: list[int] = []
        for plan in plans:
            if plan.duplicate is not None or plan.same_as is not None:
                continue
            inbound = plan.inbound
            conversation = (self._hinted(plan)
                            or self.conversations[plan.customer.id])  # type: ignore[index]
            plan.conversation = conversation
            created_at = self._item_time(inbound, conversation, plan.opened)
            system_rows = ([] if plan.opened
                           else self._update_ticket(conversation, inbound, created_at))
            system_counts.append(len(system_rows))
            rows.extend(system_rows)
            rows.append(_row(
                TimelineItem, conversation_id=conversation.id, kind=inbound.kind,
                channel=inbound.channel, direction=Direction.INBOUND,
                sender_type=SenderType.CUSTOMER, identity_id=plan.identity.id,
                text=inbound.text, external_id=inbound.external_id,
                attachments=[a.as_dict() for a in inbound.attachments],
                data=_with_sent_at(inbound, created_at), created_at=created_at))
            self._touch(conversation, inbound, created_at)
        stored = iter(self._insert(TimelineItem, rows))
        counts = iter(system_counts)
        for plan in plans:
            if plan.conversation is not None:
                plan.system_items = [next(stored) for _ in range(next(counts))]
                plan.item = next(stored)

    def _hinted(self, plan: _Plan) -> TicketRow | None:
        """The ticket the provider's threading names, if it is this customer's and still
        joinable (open, or resolved within the reopen window); a hint never crosses
        customers."""
        hint = plan.inbound.conversation_hint
        ticket = self.candidates.get(hint) if hint is not None else None
        return ticket if ticket is not None and ticket.customer_id == plan.customer.id else None

    def _result(self, plan: _Plan) -> IngestResult:
        if plan.duplicate is not None:
            [conversation] = self._select(
                Conversation, _conversation_query(), id=plan.duplicate.conversation_id)
            return IngestResult(plan.duplicate, conversation, plan.customer, created=False)
        if plan.same_as is not None:
            first = plan.same_as
            return IngestResult(first.item, first.conversation, plan.customer,  # type: ignore[arg-type]
                                created=False)
        return IngestResult(plan.item, plan.conversation, plan.customer,  # type: ignore[arg-type]
                            True, plan.opened, plan.system_items)

    def _item_time(self, inbound: Inbound, conversation: TicketRow, opened: bool) -> datetime:
        """Where the item sits in the timeline: at the sender's time (never in the future),
        but never above what its ticket already shows. A mail client's slow clock or a late
        delivery must not put a reply before the message it answers (seen: a reply dated
        ten minutes early became its ticket's first item). A ticket starts when its first
        message arrives, which sits there too: a mail dated 2009 by its Date header once
        opened a ticket today and counted for 2009 in the figures and exports. The
        sender's own time is kept as ``data.sent_at``."""
        if opened:
            return self.now
        occurred = inbound.occurred_at
        at = self.now if occurred is None or occurred > self.now else occurred
        return max(at, conversation.last_activity_at)

    def _refresh_identity(self, identity: IdentityRow, customer: CustomerRow,
                          inbound: Inbound) -> None:
        if inbound.identity_verified and not identity.verified:
            self._set(identity, "verified", True)
        if not identity.reachable:
            self._set(identity, "reachable", True)
        if inbound.display_name and customer.attributes.get(PLACEHOLDER_NAME):
            self._set(customer, "display_name", inbound.display_name.strip()[:200])
            self._set(customer, "attributes", {k: v for k, v in customer.attributes.items()
                                               if k != PLACEHOLDER_NAME})

    def _update_ticket(self, conversation: TicketRow, inbound: Inbound,
                       at: datetime) -> list[dict[str, Any]]:
        """A message joins an existing ticket: reopen it, note a channel switch."""
        system_rows: list[dict[str, Any]] = []
        if conversation.status == Status.RESOLVED:
            self._set(conversation, "resolved_at", None)
            system_rows.append(self._system(conversation, "reopened", inbound.channel, at))
        if conversation.last_channel != inbound.channel and conversation.channels:
            system_rows.append(self._system(conversation, "channel_switched", inbound.channel, at,
                                            **{"from": conversation.last_channel,
                                               "to": inbound.channel}))
        if inbound.product_sku:
            self._set(conversation, "product_sku", inbound.product_sku)
            self._set(conversation, "store_id", inbound.store_id or conversation.store_id)
        return system_rows

    def _system(self, conversation: TicketRow, event: str, channel: str, at: datetime,
                **data: Any) -> dict[str, Any]:
        """A note just before the message that caused it (same time, lower id)."""
        return _row(TimelineItem, conversation_id=conversation.id, kind=ItemKind.SYSTEM,
                    channel=channel, direction=Direction.INTERNAL,
                    sender_type=SenderType.SYSTEM, text="",
                    data={"event": event, **data}, created_at=at)

    def _touch(self, conversation: TicketRow, inbound: Inbound, created_at: datetime) -> None:
        self._set(conversation, "status", Status.OPEN)
        self._set(conversation, "last_channel", inbound.channel)
        if inbound.channel not in conversation.channels:
            self._set(conversation, "channels", [*conversation.channels, inbound.channel])
        self._set(conversation, "unread_count", conversation.unread_count + 1)
        self._set(conversation, "last_preview",
                  preview(inbound.text) or _attachment_preview(inbound))
        self._set(conversation, "last_activity_at",
                  max(conversation.last_activity_at, created_at))
        if inbound.locale and not conversation.locale:
            self._set(conversation, "locale", inbound.locale)


def _with_sent_at(inbound: Inbound, placed_at: datetime) -> dict[str, Any]:
    """The item's data, keeping the sender's own time when the timeline places it later."""
    data = dict(inbound.data)
    if inbound.occurred_at is not None and inbound.occurred_at < placed_at:
        data["sent_at"] = iso(inbound.occurred_at)
    return data


def _attachment_preview(inbound: Inbound) -> str:
    if inbound.attachments:
        return f"📎 {inbound.attachments[0].name}"
    return f"[{inbound.kind}]" if inbound.kind != ItemKind.MESSAGE else ""


class Ingestor:
    """Takes ``Inbound`` from any adapter; answers each caller after its commit."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: events.EventBus,
                 reopen_window: timedelta = timedelta(hours=72),
                 writer: SqliteWriter | None = None) -> None:
        self._sessions = sessions
        self._writer = writer
        self._senders = SenderCache() if writer is not None else None
        self._bus = bus
        self._reopen_window = reopen_window
        self._queue: asyncio.Queue[tuple[Inbound, asyncio.Future[IngestResult]]] = (
            asyncio.Queue())
        self._worker: asyncio.Task[None] | None = None
        self._announcing: asyncio.Task[None] | None = None

    async def ingest(self, inbound: Inbound) -> IngestResult:
        inbound = _normalized(inbound)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="ingest-worker")
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((inbound, future))  # unbounded: never waits
        return await future

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._announcing is not None:  # what is committed is still announced
            with contextlib.suppress(asyncio.CancelledError):
                await self._announcing
        if self._writer is not None:
            self._writer.close()

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            results = await self._store(batch)
            # This batch's events and answers go out while the next batch is written; each
            # announcement waits for the one before, so events keep the order of commits.
            self._announcing = asyncio.create_task(
                self._announce(self._announcing, batch, results), name="ingest-announce")

    async def _next_batch(self) -> list[tuple[Inbound, asyncio.Future[IngestResult]]]:
        """The first message that waits, and those that join it while the event loop still
        has requests in hand: without a pause the writer would take the first one alone,
        and under load the batches settle into one of one and one of all the rest."""
        batch = [await self._queue.get()]
        waiting = self._queue.qsize()
        for _ in range(GATHER_TURNS):
            await asyncio.sleep(0)  # one turn of the loop: ready requests reach the queue
            if self._queue.qsize() == waiting:
                break
            waiting = self._queue.qsize()
        while len(batch) < MAX_BATCH and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _store(self, batch: list[tuple[Inbound, asyncio.Future[IngestResult]]],
                     ) -> list[IngestResult | Exception]:
        inbounds = [inbound for inbound, _ in batch]
        results: list[IngestResult | Exception]
        try:
            results = list(await self._commit(inbounds))
        except Exception as exc:
            # A race with another process (IntegrityError) or one bad message: settle them
            # one by one so nothing fails because of a neighbour.
            log.warning("ingest batch of %d failed (%s); one by one", len(batch), exc)
            results = [await self._commit_one(inbound) for inbound in inbounds]
        return results

    async def _announce(self, previous: asyncio.Task[None] | None,
                        batch: list[tuple[Inbound, asyncio.Future[IngestResult]]],
                        results: list[IngestResult | Exception]) -> None:
        if previous is not None and not previous.done():
            with contextlib.suppress(asyncio.CancelledError):
                await previous
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
        try:
            return await self._commit_batch(inbounds, look_for_stored=False)
        except _StoredBefore:  # rolled back; redo it, finding the redeliveries first
            return await self._commit_batch(inbounds, look_for_stored=True)

    async def _commit_batch(self, inbounds: list[Inbound],
                            look_for_stored: bool) -> list[IngestResult]:
        """One transaction: on SQLite's own thread when there is one (its senders then
        remembered after the commit), else through the async driver (asyncpg, aiosqlite in
        memory) with the same code."""
        batches: list[_Batch] = []

        def work(session: Session | Connection) -> list[IngestResult]:
            batch = _Batch(session, utcnow(), self._reopen_window, look_for_stored,
                           self._senders)
            batches.append(batch)
            return batch.run(inbounds)

        def remember() -> None:
            if self._senders is not None:
                self._senders.remember(batches[-1])

        if self._writer is not None:
            return await self._writer.run(work, after_commit=remember)
        async with self._sessions() as session, session.begin():
            return await session.run_sync(work)

    async def _commit_one(self, inbound: Inbound) -> IngestResult | Exception:
        for _attempt in range(3):
            try:
                return (await self._commit([inbound]))[0]
            except IntegrityError as exc:
                error: Exception = exc
            except Exception as exc:
                log.exception("ingest failed for one message")
                return exc
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
    value = _normalize_identity(inbound.identity_kind, inbound.identity_value)
    text = clean_text(inbound.text)
    name = clean_name(inbound.display_name) if inbound.display_name else inbound.display_name
    if (value, text, name) == (inbound.identity_value, inbound.text, inbound.display_name):
        return inbound  # the usual case, and a copy of the dataclass is not free
    return replace(inbound, identity_value=value, text=text, display_name=name)


# A pure function on every message's path: remember recent answers. Refusals
# (InvalidIdentity) are not cached, so they are raised again every time.
_normalize_identity = functools.lru_cache(maxsize=65536)(normalize_identity)
