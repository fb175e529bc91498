"""Ingest: one customer, one continuous ticket, every message stored exactly once."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from channels.base import Inbound
from hub import events
from hub.db import CHECKPOINT_EVERY_COMMITS, SqliteWriter, migrate_async
from hub.models import Conversation, Customer, Identity, TimelineItem, utcnow
from hub.serialize import iso
from hub.services import Services


def web(visitor: str, text: str = "こんにちは", **kwargs: object) -> Inbound:
    return Inbound(channel="web", identity_kind="web", identity_value=visitor, text=text,
                   **kwargs)  # type: ignore[arg-type]


async def count(services: Services, model: type, *where: object) -> int:
    async with services.sessions() as session:
        query = select(func.count()).select_from(model)
        for condition in where:
            query = query.where(condition)  # type: ignore[arg-type]
        return int((await session.execute(query)).scalar_one())


async def test_first_message_opens_a_ticket_for_a_new_customer(services: Services) -> None:
    result = await services.ingestor.ingest(web("visitor-1", display_name="花子"))
    assert result.created and result.opened
    assert result.customer.display_name == "花子"
    assert result.conversation.status == "open"
    assert result.conversation.channels == ["web"]
    assert result.item.text == "こんにちは" and result.item.sender_type == "customer"


async def test_later_messages_join_the_same_ticket(services: Services) -> None:
    first = await services.ingestor.ingest(web("visitor-1", "one"))
    second = await services.ingestor.ingest(web("visitor-1", "two"))
    assert second.conversation.id == first.conversation.id
    assert not second.opened
    assert await count(services, Conversation) == 1
    assert await count(services, TimelineItem) == 2


async def test_a_result_stays_as_committed_while_later_messages_change_the_ticket(
        services: Services) -> None:
    first = await services.ingestor.ingest(web("visitor-1", "one"))
    second = await services.ingestor.ingest(web("visitor-1", "two"))
    assert (first.conversation.unread_count, first.conversation.last_preview) == (1, "one")
    assert (second.conversation.unread_count, second.conversation.last_preview) == (2, "two")


async def test_what_others_wrote_since_the_last_message_is_seen(services: Services) -> None:
    first = await services.ingestor.ingest(web("visitor-1", "one"))
    async with services.sessions() as session, session.begin():  # an agent, say
        customer = await session.get(Customer, first.customer.id)
        conversation = await session.get(Conversation, first.conversation.id)
        assert customer is not None and conversation is not None
        customer.display_name = "Hanako"
        conversation.tags = ["vip"]
    second = await services.ingestor.ingest(web("visitor-1", "two"))
    assert second.customer.display_name == "Hanako"
    assert second.conversation.tags == ["vip"] and second.conversation.unread_count == 2


async def test_redelivery_is_stored_once(services: Services) -> None:
    inbound = web("visitor-1", "once", external_id="evt-1")
    first = await services.ingestor.ingest(inbound)
    again = await services.ingestor.ingest(inbound)
    assert not again.created and again.item.id == first.item.id
    assert await count(services, TimelineItem) == 1


async def test_duplicates_inside_one_batch_are_stored_once(services: Services) -> None:
    inbound = web("visitor-1", "burst", external_id="evt-burst")
    results = await asyncio.gather(*[services.ingestor.ingest(inbound) for _ in range(20)])
    assert sum(r.created for r in results) == 1
    assert len({r.item.id for r in results}) == 1
    assert await count(services, TimelineItem) == 1


async def test_messages_arriving_turn_after_turn_share_one_commit(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests reach ingest over several turns of the event loop (each is parsed and
    verified first); the batch waits while more keep coming, so they commit together
    instead of the first alone."""
    sizes: list[int] = []
    store = services.ingestor._store

    async def counted(batch: list) -> list:
        sizes.append(len(batch))
        return await store(batch)

    monkeypatch.setattr(services.ingestor, "_store", counted)

    async def arrive(turns: int) -> None:
        for _ in range(turns):
            await asyncio.sleep(0)  # the request's own work before it reaches ingest
        await services.ingestor.ingest(web(f"visitor-{turns}", external_id=f"t{turns}"))

    await asyncio.gather(*(arrive(turns) for turns in range(6)))
    assert sizes == [6]


async def test_concurrent_visitors_each_get_their_own_ticket(services: Services) -> None:
    inbounds = [web(f"visitor-{n % 7}", f"message {n}", external_id=f"m{n}") for n in range(70)]
    results = await asyncio.gather(*[services.ingestor.ingest(i) for i in inbounds])
    by_visitor: dict[str, set[int]] = {}
    for inbound, result in zip(inbounds, results, strict=True):
        by_visitor.setdefault(inbound.identity_value, set()).add(result.conversation.id)
    assert all(len(tickets) == 1 for tickets in by_visitor.values())
    assert len({next(iter(t)) for t in by_visitor.values()}) == 7
    assert await count(services, TimelineItem) == 70
    assert await count(services, Customer) == 7


async def test_identity_values_are_normalised_before_lookup(services: Services) -> None:
    first = await services.ingestor.ingest(Inbound(
        channel="email", identity_kind="email", identity_value="Hanako@Example.JP", text="a"))
    second = await services.ingestor.ingest(Inbound(
        channel="email", identity_kind="email", identity_value="hanako@example.jp ", text="b"))
    assert first.customer.id == second.customer.id
    assert await count(services, Identity) == 1


async def test_switching_channel_keeps_the_ticket_and_says_so(services: Services) -> None:
    first = await services.ingestor.ingest(web("visitor-1", "from the PC"))
    async with services.sessions() as session, session.begin():
        session.add(Identity(customer_id=first.customer.id, kind="line", value="U" + "1" * 32,
                             verified=True))
    on_line = await services.ingestor.ingest(Inbound(
        channel="line", identity_kind="line", identity_value="U" + "1" * 32, text="from LINE"))
    assert on_line.conversation.id == first.conversation.id
    assert on_line.conversation.last_channel == "line"
    assert on_line.conversation.channels == ["web", "line"]
    [note] = on_line.system_items
    assert note.data == {"event": "channel_switched", "from": "web", "to": "line"}


async def _resolve(services: Services, conversation_id: int, ago: timedelta) -> None:
    async with services.sessions() as session, session.begin():
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        conversation.status = "resolved"
        conversation.resolved_at = utcnow() - ago


async def test_message_after_resolve_reopens_within_the_window(services: Services) -> None:
    first = await services.ingestor.ingest(web("visitor-1", "help"))
    await _resolve(services, first.conversation.id, timedelta(hours=1))
    again = await services.ingestor.ingest(web("visitor-1", "one more thing"))
    assert again.conversation.id == first.conversation.id
    assert again.conversation.status == "open"
    assert [i.data["event"] for i in again.system_items] == ["reopened"]


async def test_message_long_after_resolve_opens_a_new_ticket(services: Services) -> None:
    first = await services.ingestor.ingest(web("visitor-1", "help"))
    await _resolve(services, first.conversation.id, timedelta(days=30))
    again = await services.ingestor.ingest(web("visitor-1", "new question"))
    assert again.opened and again.conversation.id != first.conversation.id
    assert again.customer.id == first.customer.id


async def test_events_follow_the_commit(services: Services) -> None:
    seen: list[tuple[str, int]] = []

    async def record(event: events.Event) -> None:
        async with services.sessions() as session:  # the row must already be visible
            item = await session.get(TimelineItem, event.payload.get("id"))
        if event.name == events.MESSAGE_CREATED:
            assert item is not None
        seen.append((event.name, event.conversation_id or 0))

    services.bus.subscribe(record)
    result = await services.ingestor.ingest(web("visitor-1"))
    assert seen == [(events.MESSAGE_CREATED, result.conversation.id),
                    (events.CONVERSATION_UPDATED, result.conversation.id)]


async def test_provider_time_orders_late_deliveries(services: Services) -> None:
    first = await services.ingestor.ingest(web("visitor-1", "hello"))
    an_hour_ago = utcnow() - timedelta(hours=1)
    async with services.sessions() as session, session.begin():  # the ticket, an hour old
        await session.execute(update(Conversation).where(
            Conversation.id == first.conversation.id).values(last_activity_at=an_hour_ago))
        await session.execute(update(TimelineItem).where(
            TimelineItem.id == first.item.id).values(created_at=an_hour_ago))
    now = utcnow()
    late = await services.ingestor.ingest(web("visitor-1", "sent first",
                                              occurred_at=now - timedelta(minutes=5)))
    assert late.item.created_at == now - timedelta(minutes=5)  # where the sender put it
    future = await services.ingestor.ingest(web("visitor-1", "clock skew",
                                                occurred_at=now + timedelta(days=1)))
    assert late.item.created_at < future.item.created_at <= utcnow()


async def test_a_new_tickets_first_message_sits_where_the_ticket_starts(
        services: Services) -> None:
    """A mail dated 2009 by its sender opens a ticket today: it counts for today in the
    figures and exports, and keeps the date it gave."""
    dated = datetime(2009, 10, 30, 8, 11, 2, tzinfo=UTC)
    opened = await services.ingestor.ingest(web("visitor-1", "old mail", occurred_at=dated))
    assert opened.opened and opened.item.created_at == opened.conversation.created_at
    assert opened.item.data["sent_at"] == iso(dated)


async def test_a_slow_senders_clock_never_lifts_a_reply_above_what_it_answers(
        services: Services) -> None:
    """A reply from a mail client ten minutes slow arrives after the agent's answer: the
    timeline shows it after that answer, and keeps the time the sender's system gave."""
    first = await services.ingestor.ingest(web("visitor-1", "届きません"))
    answer = await services.tickets.reply(first.conversation.id, "確認します",  # type: ignore[arg-type]
                                          agent_id=None, channel="web")
    slow_clock = utcnow() - timedelta(minutes=10)
    reply = await services.ingestor.ingest(web("visitor-1", "お願いします",
                                               occurred_at=slow_clock))
    assert reply.item.created_at >= answer.created_at > first.item.created_at
    assert reply.item.data["sent_at"] == iso(slow_clock)
    detail = await services.tickets.detail(first.conversation.id)  # type: ignore[arg-type]
    assert [i["text"] for i in detail["timeline"]] == ["届きません", "確認します", "お願いします"]


@pytest.mark.parametrize("offsets_minutes", [(0, -10, -20), (-30, 5, -1, -60), (3, 2, 1)])
async def test_a_tickets_items_keep_their_arrival_order_whatever_the_senders_clocks(
        services: Services, offsets_minutes: tuple[int, ...]) -> None:
    for n, offset in enumerate(offsets_minutes):
        await services.ingestor.ingest(web("visitor-1", f"message {n}",
                                           occurred_at=utcnow() + timedelta(minutes=offset)))
    async with services.sessions() as session:
        texts = (await session.execute(select(TimelineItem.text).order_by(
            TimelineItem.created_at, TimelineItem.id))).scalars().all()
    assert texts == [f"message {n}" for n in range(len(offsets_minutes))]


async def test_bad_identity_is_refused_and_changes_nothing(services: Services) -> None:
    with pytest.raises(ValueError):
        await services.ingestor.ingest(replace(web("x"), identity_kind="email",
                                               identity_value="not-an-address"))
    assert await count(services, Customer) == 0


async def test_control_characters_are_dropped_and_neighbours_unharmed(services: Services) -> None:
    dirty, clean = await asyncio.gather(
        services.ingestor.ingest(web("visitor-a", "nul\x00 and bell\x07 gone\n",
                                     display_name="A\x00")),
        services.ingestor.ingest(web("visitor-b", "fine")))
    assert dirty.item.text == "nul and bell gone\n" and dirty.customer.display_name == "A"
    assert clean.item.text == "fine"


async def test_threading_hint_picks_the_customers_own_ticket(services: Services) -> None:
    first = await services.ingestor.ingest(web("visitor-1", "old question"))
    await _resolve(services, first.conversation.id, timedelta(hours=1))
    current = await services.ingestor.ingest(web("visitor-1", "new question"))
    assert current.conversation.id == first.conversation.id  # reopened, not a new one
    await _resolve(services, first.conversation.id, timedelta(hours=2))
    async with services.sessions() as session, session.begin():
        other = Conversation(customer_id=first.customer.id, status="open")
        session.add(other)
        await session.flush()
        other_id = other.id
    hinted = await services.ingestor.ingest(web("visitor-1", "about the old thread",
                                                conversation_hint=first.conversation.id))
    assert hinted.conversation.id == first.conversation.id
    assert [i.data["event"] for i in hinted.system_items] == ["reopened"]
    plain = await services.ingestor.ingest(web("visitor-1", "no hint"))
    assert plain.conversation.id in {first.conversation.id, other_id}


async def test_threading_hint_never_crosses_customers(services: Services) -> None:
    victim = await services.ingestor.ingest(web("victim", "my private ticket"))
    stranger = await services.ingestor.ingest(web("stranger", "let me in",
                                                  conversation_hint=victim.conversation.id))
    assert stranger.conversation.id != victim.conversation.id
    assert stranger.opened


def test_sqlite_writer_is_only_for_sqlite_files() -> None:
    assert SqliteWriter.usable_for("sqlite+aiosqlite:///./omohub.db")
    assert not SqliteWriter.usable_for("sqlite+aiosqlite:///:memory:")
    assert not SqliteWriter.usable_for("sqlite+aiosqlite://")
    assert not SqliteWriter.usable_for("postgresql+asyncpg://postgres@127.0.0.1/test")


async def test_sqlite_writer_rolls_back_what_a_failing_batch_wrote(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'writer.db'}"
    await migrate_async(url)
    writer = SqliteWriter(url)

    def add(name: str, fail: bool) -> Callable[[Connection], None]:
        def work(connection: Connection) -> None:
            with Session(bind=connection) as session:  # joins the writer's transaction
                session.add(Customer(display_name=name))
                session.flush()
            if fail:
                raise RuntimeError("crash inside the batch")
        return work

    def customers(connection: Connection) -> list[str]:
        return list(connection.execute(select(Customer.display_name)).scalars())

    try:
        with pytest.raises(RuntimeError):
            await writer.run(add("half-written", fail=True))
        await writer.run(add("whole", fail=False))  # the same connection carries on
        assert await writer.run(customers) == ["whole"]
    finally:
        writer.close()


async def test_committed_rows_reach_the_database_file_off_the_writers_thread(
        tmp_path: Path) -> None:
    """The writer's commits go to the WAL; a thread of its own copies them into the
    database file (a copy of that file alone, without its WAL, holds them)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'writer.db'}"
    await migrate_async(url)
    writer = SqliteWriter(url)

    def add(n: int) -> Callable[[Connection], None]:
        def work(connection: Connection) -> None:
            with Session(bind=connection) as session:
                session.add(Customer(display_name=f"customer {n}"))
                session.flush()
        return work

    try:
        for n in range(CHECKPOINT_EVERY_COMMITS):
            await writer.run(add(n))
        writer.checkpointer.wait()
        alone = tmp_path / "alone.db"
        alone.write_bytes((tmp_path / "writer.db").read_bytes())
        with closing(sqlite3.connect(alone)) as copy:
            assert copy.execute("SELECT count(*) FROM customers").fetchone()[0] == \
                CHECKPOINT_EVERY_COMMITS
    finally:
        writer.close()


async def test_the_writer_keeps_statement_journals_in_memory(tmp_path: Path) -> None:
    """Otherwise every commit with a multi-row INSERT creates, writes and unlinks a temp
    file (seen with strace: one per commit, about 30 writes each)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'writer.db'}"
    await migrate_async(url)
    writer = SqliteWriter(url)

    def temp_store(connection: Connection) -> int:
        return int(connection.exec_driver_sql("PRAGMA temp_store").scalar_one())

    try:
        assert await writer.run(temp_store) == 2  # MEMORY
    finally:
        writer.close()


def test_a_failing_checkpoint_is_logged_and_the_next_one_runs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from hub.db import Checkpointer

    checkpointer = Checkpointer(str(tmp_path / "missing" / "omohub.db"))  # cannot be opened
    try:
        for _ in range(2 * CHECKPOINT_EVERY_COMMITS):
            checkpointer.committed()
            checkpointer.wait()
    finally:
        checkpointer.close()
    assert [r.message for r in caplog.records].count(
        f"WAL checkpoint of {tmp_path / 'missing' / 'omohub.db'} failed") == 2
