"""Outbound replies: written with their outbox row, sent once, retried with backoff."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from channels.base import Capabilities, Inbound, Outbound, SendResult
from hub import events
from hub.models import OutboxItem, TimelineItem, utcnow
from hub.outbox import MAX_ATTEMPTS, backoff
from hub.services import Services


class RecordingAdapter:
    """A channel whose provider answers from a script of results."""

    name = "web"
    capabilities = Capabilities(text_limit=1000)

    def __init__(self, *results: SendResult | Exception) -> None:
        self.script = list(results)
        self.sent: list[Outbound] = []

    async def send(self, outbound: Outbound) -> SendResult:
        self.sent.append(outbound)
        result = self.script.pop(0) if self.script else SendResult(True, external_id="ok")
        if isinstance(result, Exception):
            raise result
        return result


@pytest.fixture
async def quiet(services: Services) -> Services:
    """The hub with its dispatcher stopped, so each test drives it step by step."""
    await services.dispatcher.stop()
    return services


async def _ticket_with_reply(services: Services, adapter: RecordingAdapter) -> TimelineItem:
    services.adapters["web"] = adapter  # type: ignore[assignment]
    result = await services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="visitor-9", text="hello"))
    return await services.tickets.reply(result.conversation.id, "こんにちは", agent_id=None)


async def _row(services: Services, item_id: int) -> tuple[OutboxItem, TimelineItem]:
    async with services.sessions() as session:
        item = await session.get(TimelineItem, item_id)
        row = (await session.execute(
            OutboxItem.__table__.select().where(OutboxItem.item_id == item_id))).one()
    assert item is not None
    return OutboxItem(**row._mapping), item


async def _make_due(services: Services) -> None:
    async with services.sessions() as session, session.begin():
        await session.execute(update(OutboxItem).values(next_attempt_at=utcnow()))


async def test_reply_is_queued_then_sent_once(quiet: Services) -> None:
    adapter = RecordingAdapter(SendResult(True, external_id="provider-1"))
    updates: list[events.Event] = []

    async def record(event: events.Event) -> None:
        if event.name == events.MESSAGE_UPDATED:
            updates.append(event)

    quiet.bus.subscribe(record)
    reply = await _ticket_with_reply(quiet, adapter)
    row, item = await _row(quiet, reply.id)  # type: ignore[arg-type]
    assert row.status == "pending" and item.delivery_status == "queued"
    assert await quiet.dispatcher.run_once() == 1
    assert await quiet.dispatcher.run_once() == 0
    [outbound] = adapter.sent
    assert outbound.recipient == "visitor-9" and outbound.text == "こんにちは"
    row, item = await _row(quiet, reply.id)  # type: ignore[arg-type]
    assert row.status == "sent" and item.delivery_status == "sent"
    assert item.external_id == "provider-1"
    assert [e.payload["delivery_status"] for e in updates] == ["sent"]


async def test_retryable_failure_backs_off_then_delivers_once(quiet: Services) -> None:
    adapter = RecordingAdapter(SendResult(False, retryable=True, error="429 slow down"))
    reply = await _ticket_with_reply(quiet, adapter)
    await quiet.dispatcher.run_once()
    row, item = await _row(quiet, reply.id)  # type: ignore[arg-type]
    assert row.status == "pending" and row.attempts == 1 and row.next_attempt_at > utcnow()
    assert item.delivery_status == "queued" and item.error == "429 slow down"
    assert await quiet.dispatcher.run_once() == 0  # not due yet
    await _make_due(quiet)
    assert await quiet.dispatcher.run_once() == 1
    row, item = await _row(quiet, reply.id)  # type: ignore[arg-type]
    assert row.status == "sent" and item.delivery_status == "sent" and item.error is None
    assert len(adapter.sent) == 2


async def test_adapter_crash_is_retried(quiet: Services) -> None:
    adapter = RecordingAdapter(ConnectionError("connection reset"))
    reply = await _ticket_with_reply(quiet, adapter)
    await quiet.dispatcher.run_once()
    row, _ = await _row(quiet, reply.id)  # type: ignore[arg-type]
    assert row.status == "pending" and "connection reset" in (row.last_error or "")


async def test_permanent_failure_is_shown_on_the_message(quiet: Services) -> None:
    adapter = RecordingAdapter(SendResult(False, error="400 invalid reply token"))
    reply = await _ticket_with_reply(quiet, adapter)
    await quiet.dispatcher.run_once()
    row, item = await _row(quiet, reply.id)  # type: ignore[arg-type]
    assert row.status == "failed"
    assert item.delivery_status == "failed" and item.error == "400 invalid reply token"


async def test_gives_up_after_max_attempts(quiet: Services) -> None:
    flaky = [SendResult(False, retryable=True, error="503")] * MAX_ATTEMPTS
    adapter = RecordingAdapter(*flaky)
    reply = await _ticket_with_reply(quiet, adapter)
    for _ in range(MAX_ATTEMPTS):
        await _make_due(quiet)
        await quiet.dispatcher.run_once()
    row, item = await _row(quiet, reply.id)  # type: ignore[arg-type]
    assert row.status == "failed" and row.attempts == MAX_ATTEMPTS
    assert item.delivery_status == "failed"


async def test_a_send_interrupted_by_a_crash_is_resumed_after_its_lease(quiet: Services) -> None:
    adapter = RecordingAdapter()
    reply = await _ticket_with_reply(quiet, adapter)
    async with quiet.sessions() as session, session.begin():  # a dispatcher died mid-send
        await session.execute(update(OutboxItem).values(
            status="sending", lease_until=utcnow() + timedelta(seconds=60)))
    assert await quiet.dispatcher.run_once() == 0  # someone else holds the lease
    async with quiet.sessions() as session, session.begin():
        await session.execute(update(OutboxItem).values(
            lease_until=utcnow() - timedelta(seconds=1)))
    assert await quiet.dispatcher.run_once() == 1
    row, _ = await _row(quiet, reply.id)  # type: ignore[arg-type]
    assert row.status == "sent" and len(adapter.sent) == 1


async def test_internal_note_never_leaves(quiet: Services) -> None:
    adapter = RecordingAdapter()
    quiet.adapters["web"] = adapter  # type: ignore[assignment]
    result = await quiet.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="v", text="hello"))
    await quiet.tickets.reply(result.conversation.id, "note", agent_id=None, internal=True)
    assert await quiet.dispatcher.run_once() == 0
    assert adapter.sent == []


def test_backoff_grows_and_is_capped() -> None:
    ceilings = [backoff(n, base=1, cap=60).total_seconds() for n in range(1, 12)]
    assert all(0.5 * min(60, 2 ** (n - 1)) <= c <= min(60, 2 ** (n - 1))
               for n, c in enumerate(ceilings, start=1))
    assert max(ceilings) <= 60
