"""The supervisor's figures for a period: volume, speed, channels and what the bot did."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.models import Conversation, Direction, SenderType, Status, TimelineItem, utcnow
from hub.serialize import iso
from hub.tickets import TicketError


def period(start: date | None, end: date | None) -> tuple[datetime, datetime]:
    """[start, end] as whole UTC days; the last 7 days by default."""
    end_day = end or utcnow().date()
    start_day = start or end_day - timedelta(days=6)
    if start_day > end_day:
        raise TicketError("bad_period", "from must not be after to", 400)
    return (datetime.combine(start_day, time(), UTC),
            datetime.combine(end_day + timedelta(days=1), time(), UTC))


async def collect(session: AsyncSession, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "from": iso(start), "to": iso(end),
        "conversations": await _conversations(session, start, end),
        "first_response_seconds": await _first_response(session, start, end),
        "messages_by_channel": await _by_channel(session, start, end),
        "messages_by_day": await _by_day(session, start, end),
        "bot": await _bot(session, start, end),
    }


async def _count(session: AsyncSession, query: Any) -> int:
    return int((await session.execute(query)).scalar_one())


async def _conversations(session: AsyncSession, start: datetime, end: datetime) -> dict[str, int]:
    live = Conversation.merged_into_id.is_(None)
    count = select(func.count()).select_from(Conversation)
    return {
        "opened": await _count(session, count.where(
            live, Conversation.created_at >= start, Conversation.created_at < end)),
        "resolved": await _count(session, count.where(
            live, Conversation.resolved_at >= start, Conversation.resolved_at < end)),
        "open_now": await _count(session, count.where(
            live, Conversation.status != Status.RESOLVED)),
    }


async def _first_response(session: AsyncSession, start: datetime,
                          end: datetime) -> dict[str, float | None]:
    rows = (await session.execute(select(Conversation.created_at,
                                         Conversation.first_response_at).where(
        Conversation.created_at >= start, Conversation.created_at < end,
        Conversation.first_response_at.is_not(None)))).all()
    waits = sorted((answered - opened).total_seconds() for opened, answered in rows)
    if not waits:
        return {"median": None, "p90": None, "count": 0}
    return {"median": round(statistics.median(waits), 1),
            "p90": round(waits[min(len(waits) - 1, int(len(waits) * 0.9))], 1),
            "count": len(waits)}


def _inbound(start: datetime, end: datetime) -> Any:
    return (TimelineItem.direction == Direction.INBOUND, TimelineItem.created_at >= start,
            TimelineItem.created_at < end)


async def _by_channel(session: AsyncSession, start: datetime, end: datetime) -> dict[str, int]:
    rows = await session.execute(select(TimelineItem.channel, func.count()).where(
        *_inbound(start, end)).group_by(TimelineItem.channel))
    return {channel: int(n) for channel, n in rows.all()}


async def _by_day(session: AsyncSession, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rows = (await session.execute(select(TimelineItem.created_at).where(
        *_inbound(start, end)))).scalars()
    counts: dict[str, int] = {}
    for moment in rows:
        key = moment.date().isoformat()
        counts[key] = counts.get(key, 0) + 1
    days = (end - start).days
    return [{"day": (start.date() + timedelta(days=n)).isoformat(),
             "messages": counts.get((start.date() + timedelta(days=n)).isoformat(), 0)}
            for n in range(days)]


async def _bot(session: AsyncSession, start: datetime, end: datetime) -> dict[str, int]:
    in_period = (TimelineItem.created_at >= start, TimelineItem.created_at < end)
    count = select(func.count()).select_from(TimelineItem)
    event = TimelineItem.data["event"].as_string()
    answered = await _count(session, count.where(
        *in_period, TimelineItem.sender_type == SenderType.BOT,
        TimelineItem.data["bot_action"].as_string() == "answer"))
    helpful = await _count(session, count.where(
        *in_period, event == "bot_feedback", TimelineItem.data["helpful"].as_boolean()))
    feedback = await _count(session, count.where(*in_period, event == "bot_feedback"))
    handed_off = await _count(session, count.where(*in_period, event == "handoff"))
    return {"answered": answered, "helpful": helpful, "unhelpful": feedback - helpful,
            "handed_off": handed_off, "contained": await _contained(session, start, end)}


async def _contained(session: AsyncSession, start: datetime, end: datetime) -> int:
    """Resolved in the period with a bot answer and no agent reply."""
    answered_by = lambda sender: sa.exists(select(TimelineItem.id).where(  # noqa: E731
        TimelineItem.conversation_id == Conversation.id, TimelineItem.sender_type == sender,
        TimelineItem.direction == Direction.OUTBOUND))
    return await _count(session, select(func.count()).select_from(Conversation).where(
        Conversation.resolved_at >= start, Conversation.resolved_at < end,
        answered_by(SenderType.BOT), ~answered_by(SenderType.AGENT)))
