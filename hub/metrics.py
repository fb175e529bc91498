"""The supervisor's figures for a period: volume, speed, channels, what the bot did, and
which knowledge-base articles its answers need fixing."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hub.assistant import is_bot_answer
from hub.hours import local_midnight
from hub.models import (
    Article,
    Conversation,
    Direction,
    ItemKind,
    SenderType,
    Status,
    TimelineItem,
    utcnow,
)
from hub.serialize import iso
from hub.tickets import TicketError


def period(start: date | None, end: date | None,
           timezone: str = "UTC") -> tuple[datetime, datetime]:
    """[start, end] as whole days in ``timezone``; the last 7 days by default."""
    end_day = end or utcnow().astimezone(ZoneInfo(timezone)).date()
    start_day = start or end_day - timedelta(days=6)
    if start_day > end_day:
        raise TicketError("bad_period", "from must not be after to", 400)
    return (local_midnight(start_day, timezone),
            local_midnight(end_day + timedelta(days=1), timezone))


async def collect(session: AsyncSession, start: datetime, end: datetime,
                  timezone: str = "UTC") -> dict[str, Any]:
    return {
        "from": iso(start), "to": iso(end), "timezone": timezone,
        "conversations": await _conversations(session, start, end),
        "first_response_seconds": await _first_response(session, start, end),
        "messages_by_channel": await _by_channel(session, start, end),
        "messages_by_day": await _by_day(session, start, end, ZoneInfo(timezone)),
        "bot": await _bot(session, start, end),
        "articles": await _articles(session, start, end),
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


async def _by_day(session: AsyncSession, start: datetime, end: datetime,
                  zone: ZoneInfo) -> list[dict[str, Any]]:
    """Inbound messages per day of the team's calendar, every day of the period listed."""
    rows = (await session.execute(select(TimelineItem.created_at).where(
        *_inbound(start, end)))).scalars()
    counts: dict[str, int] = {}
    for moment in rows:
        key = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(zone).date().isoformat()
        counts[key] = counts.get(key, 0) + 1
    first = start.astimezone(zone).date()
    days = [first + timedelta(days=n) for n in range((end - start).days)]
    return [{"day": day.isoformat(), "messages": counts.get(day.isoformat(), 0)}
            for day in days]


async def _bot(session: AsyncSession, start: datetime, end: datetime) -> dict[str, int]:
    in_period = (TimelineItem.created_at >= start, TimelineItem.created_at < end)
    count = select(func.count()).select_from(TimelineItem)
    event = TimelineItem.data["event"].as_string()
    answered = await _count(session, count.where(*in_period, is_bot_answer()))
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


ARTICLE_LIMIT = 10  # the articles that most need attention; the rest are fine or quiet
_OUTCOMES = ("answered", "helpful", "unhelpful", "handed_off")


def _article_of(item: Any) -> Any:
    return item.data["article_id"].as_string()


def _before(item: Any, earlier: Any) -> Any:
    return (earlier.conversation_id == item.conversation_id, earlier.kind == ItemKind.MESSAGE,
            earlier.created_at <= item.created_at)


def _latest(query: Any, earlier: Any) -> Any:
    return (query.order_by(earlier.created_at.desc(), earlier.id.desc()).limit(1)
            .correlate(TimelineItem).scalar_subquery())


def _answered_before(item: Any) -> Any:
    """The article of the bot's latest answer before ``item`` in its ticket (feedback
    recorded before events named their article)."""
    earlier = aliased(TimelineItem)
    return _latest(select(_article_of(earlier)).where(*_before(item, earlier),
                                                      is_bot_answer(earlier)), earlier)


def _replied_before(item: Any) -> Any:
    """The article of the latest message the customer was sent before ``item``, when the
    bot answered it with one: a handoff right after an answer counts against that answer."""
    earlier = aliased(TimelineItem)
    return _latest(select(sa.case((is_bot_answer(earlier), _article_of(earlier)))).where(
        *_before(item, earlier), earlier.direction == Direction.OUTBOUND,
        earlier.sender_type.in_((SenderType.BOT, SenderType.AGENT))), earlier)


async def _articles(session: AsyncSession, start: datetime,
                    end: datetime) -> list[dict[str, Any]]:
    """Per article: the bot's answers with it, their helpful and unhelpful ratings and the
    handoffs that followed them in the period (one grouped query), the ones that need
    attention first: most unhelpful, then the lowest helpful rate, then most handoffs."""
    item = TimelineItem
    one, zero = literal_column("1"), literal_column("0")
    in_period = (item.created_at >= start, item.created_at < end)
    event = item.data["event"].as_string()

    def row(article: Any, answered: Any = zero, helpful: Any = zero, unhelpful: Any = zero,
            handed_off: Any = zero) -> Any:
        return select(article.label("article"), answered.label("answered"),
                      helpful.label("helpful"), unhelpful.label("unhelpful"),
                      handed_off.label("handed_off"))

    rated = item.data["helpful"].as_boolean()
    events = sa.union_all(
        row(_article_of(item), answered=one).where(*in_period, is_bot_answer(item)),
        row(func.coalesce(_article_of(item), _answered_before(item)),
            helpful=sa.case((rated, one), else_=zero),
            unhelpful=sa.case((rated, zero), else_=one)).where(
            *in_period, event == "bot_feedback"),
        row(_replied_before(item), handed_off=one).where(*in_period, event == "handoff"),
    ).subquery()
    totals = await session.execute(
        select(events.c.article, *(func.sum(events.c[name]) for name in _OUTCOMES))
        .where(events.c.article.is_not(None)).group_by(events.c.article))
    articles = [{"id": article, "title": None,
                 **{name: int(n or 0) for name, n in zip(_OUTCOMES, counts, strict=True)}}
                for article, *counts in totals.all()]
    for entry in articles:
        rated_count = entry["helpful"] + entry["unhelpful"]
        entry["helpful_rate"] = round(entry["helpful"] / rated_count, 3) if rated_count else None
    articles.sort(key=_needs_attention)
    articles = articles[:ARTICLE_LIMIT]
    await _titles(session, articles)
    return articles


def _needs_attention(entry: dict[str, Any]) -> tuple[Any, ...]:
    """Most unhelpful first, then the lowest helpful rate (unrated counts as fine), then
    most handoffs, most answers, and the id so the order is stable."""
    rate = 1.0 if entry["helpful_rate"] is None else entry["helpful_rate"]
    return (-entry["unhelpful"], rate, -entry["handed_off"], -entry["answered"], entry["id"])


async def _titles(session: AsyncSession, articles: list[dict[str, Any]]) -> None:
    """Titles from the knowledge base (an id names one article whatever its language: the
    first row, as the editor finds it); an article deleted since keeps title None."""
    if not articles:
        return
    rows = await session.execute(select(Article.slug, Article.title).where(
        Article.slug.in_([entry["id"] for entry in articles])).order_by(Article.id.desc()))
    titles = dict(rows.all())
    for entry in articles:
        entry["title"] = titles.get(entry["id"])
