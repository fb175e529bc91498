"""Supervisor figures count what happened in the period, and only supervisors see them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from channels.base import Inbound
from hub.models import (
    Article,
    Conversation,
    Direction,
    ItemKind,
    SenderType,
    TimelineItem,
    utcnow,
)
from tests.conftest import RunningHub


async def test_metrics_count_volume_speed_and_bot(hub: RunningHub) -> None:
    ingest = hub.services.ingestor.ingest
    web = await ingest(Inbound(channel="web", identity_kind="web", identity_value="a",
                               text="hello"))
    await ingest(Inbound(channel="email", identity_kind="email", identity_value="b@example.com",
                         text="mail"))
    await ingest(Inbound(channel="web", identity_kind="web", identity_value="a", text="more"))
    await hub.services.tickets.reply(web.conversation.id, "answer", agent_id=None,  # type: ignore[arg-type]
                                     sender_type="bot", data={"bot_action": "answer"})
    async with hub.services.sessions() as session, session.begin():
        session.add(TimelineItem(conversation_id=web.conversation.id, kind="system",
                                 channel="web", direction="internal", sender_type="system",
                                 data={"event": "bot_feedback", "helpful": True}))
        await session.execute(update(Conversation).where(
            Conversation.id == web.conversation.id).values(status="resolved",
                                                           resolved_at=utcnow()))
    lead = await hub.login("lead@example.com", "lead-password")
    figures = (await hub.api("GET", "/api/metrics", lead)).json()
    assert figures["conversations"]["opened"] == 2
    assert figures["conversations"]["resolved"] == 1
    assert figures["messages_by_channel"] == {"web": 2, "email": 1}
    assert sum(day["messages"] for day in figures["messages_by_day"]) == 3
    assert len(figures["messages_by_day"]) == 7
    assert figures["bot"] == {"answered": 1, "helpful": 1, "unhelpful": 0, "handed_off": 0,
                              "contained": 1}
    old = (utcnow() - timedelta(days=30)).date().isoformat()
    past = (await hub.api("GET", f"/api/metrics?from={old}&to={old}", lead)).json()
    assert past["conversations"]["opened"] == 0 and past["messages_by_channel"] == {}


async def test_metrics_days_are_the_teams_days_as_in_the_voc_export(hub: RunningHub) -> None:
    """01:30 in Tokyo on the 21st is the 20th in UTC: the dashboard and the export both
    count it on the 21st (OMOHUB_TIMEZONE, Asia/Tokyo by default)."""
    assert hub.services.settings.timezone == "Asia/Tokyo"
    moment = datetime(2026, 11, 20, 16, 30, tzinfo=UTC)
    late = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="late", text="夜分にすみません"))
    async with hub.services.sessions() as session, session.begin():
        await session.execute(update(TimelineItem).where(TimelineItem.id == late.item.id)
                              .values(created_at=moment))
    lead = await hub.login("lead@example.com", "lead-password")

    def counted(figures: dict[str, Any]) -> dict[str, int]:
        return {d["day"]: d["messages"] for d in figures["messages_by_day"] if d["messages"]}

    tokyo_day = (await hub.api("GET", "/api/metrics?from=2026-11-21&to=2026-11-21",
                               lead)).json()
    assert counted(tokyo_day) == {"2026-11-21": 1} and tokyo_day["timezone"] == "Asia/Tokyo"
    utc_day = (await hub.api("GET", "/api/metrics?from=2026-11-20&to=2026-11-20", lead)).json()
    assert counted(utc_day) == {}
    export = await hub.api("GET", "/api/export/voc?format=jsonl&from=2026-11-21&to=2026-11-21",
                           lead)
    assert [json.loads(line)["text"] for line in export.text.splitlines()] == ["夜分にすみません"]


async def test_metrics_are_for_supervisors(hub: RunningHub) -> None:
    agent = await hub.login()
    response = await hub.api("GET", "/api/metrics", agent)
    assert response.status_code == 403 and "articles" not in response.text
    lead = await hub.login("lead@example.com", "lead-password")
    bad = await hub.api("GET", "/api/metrics?from=2026-02-01&to=2026-01-01", lead)
    assert bad.status_code == 400
    for query, name in (("from=yesterday", "from"), ("to=2026-13-01", "to")):
        refused = await hub.api("GET", f"/api/metrics?{query}", lead)
        error = refused.json()["error"]
        assert refused.status_code == 400 and error["code"] == "bad_period"
        assert error["message"].startswith(f"{name}: not a date") and "from_" not in refused.text


# -- per article: what the bot answered with, how it was rated, what was handed off --------

class Ticket:
    """A conversation's timeline written item by item, a minute apart, oldest first."""

    def __init__(self, conversation_id: int, start: datetime) -> None:
        self.conversation_id, self.moment, self.items = conversation_id, start, []

    def _add(self, **fields: Any) -> int:
        self.moment += timedelta(minutes=1)
        self.items.append(TimelineItem(conversation_id=self.conversation_id, channel="web",
                                       created_at=self.moment, **fields))
        return len(self.items) - 1

    def answer(self, article: str) -> int:
        return self._add(direction=Direction.OUTBOUND, sender_type=SenderType.BOT, text="answer",
                         data={"bot_action": "answer", "article_id": article})

    def agent_reply(self) -> None:
        self._add(direction=Direction.OUTBOUND, sender_type=SenderType.AGENT, text="let me check")

    def event(self, event: str, **data: Any) -> None:
        self._add(kind=ItemKind.SYSTEM, direction=Direction.INTERNAL, sender_type=SenderType.SYSTEM,
                  data={"event": event, **data})

    def rate(self, helpful: bool, article: str | None = None, answer: int | None = None) -> None:
        """Feedback as the bot records it now; without an article, as it did before."""
        data: dict[str, Any] = {"helpful": helpful}
        if article is not None:
            data.update(article_id=article, answer_id=answer)
        self.event("bot_feedback", **data)


async def _tickets(hub: RunningHub, count: int, start: datetime) -> list[Ticket]:
    tickets = []
    for n in range(count):
        ticket = await hub.services.ingestor.ingest(Inbound(
            channel="web", identity_kind="web", identity_value=f"visitor-{n}", text="hi"))
        tickets.append(Ticket(ticket.conversation.id, start))  # type: ignore[arg-type]
    return tickets


async def _save(hub: RunningHub, *tickets: Ticket, articles: dict[str, str]) -> None:
    async with hub.services.sessions() as session, session.begin():
        session.add_all([Article(slug=slug, locale="en", title=title)
                         for slug, title in articles.items()])
        for ticket in tickets:
            session.add_all(ticket.items)


async def test_metrics_rate_each_article_over_the_period(hub: RunningHub) -> None:
    now = utcnow()
    recent, old = now - timedelta(hours=2), now - timedelta(days=30)
    returns, shipping, points, gone, old_ticket = await _tickets(hub, 5, recent)
    # answered, rated unhelpful on that answer, then handed over: all three count for it
    first = returns.answer("returns")
    returns.rate(False, "returns", first)
    returns.event("handoff", reason="unhelpful")
    # helpful twice: once as recorded now, once by a feedback event from before events
    # named their article (it counts for the answer before it)
    shipping.answer("shipping")
    shipping.rate(True, "shipping")
    shipping.answer("shipping")
    shipping.rate(True)
    shipping.answer("quiet")  # answered, never rated
    # half helpful; a handoff after an agent took over is not the article's
    points.answer("points")
    points.rate(True, "points")
    points.answer("points")
    points.rate(False, "points")
    points.agent_reply()
    points.event("handoff", reason="asked_for_human")
    # an article deleted since: counted, and named by its id
    gone.answer("gone")
    gone.rate(False, "gone")
    gone.answer("gone")
    gone.rate(False, "gone")
    # a month ago: outside the period, counted in none of it
    old_ticket.moment = old
    for _ in range(3):
        old_ticket.rate(False, "shipping")
    old_ticket.answer("shipping")
    old_ticket.event("handoff", reason="unhelpful")
    await _save(hub, returns, shipping, points, gone, old_ticket,
                articles={"returns": "Returns and refunds", "shipping": "Delivery times",
                          "points": "Points card", "quiet": "Opening hours"})

    lead = await hub.login("lead@example.com", "lead-password")
    figures = (await hub.api("GET", "/api/metrics", lead)).json()
    assert figures["articles"] == [
        {"id": "gone", "title": None, "answered": 2, "helpful": 0, "unhelpful": 2,
         "handed_off": 0, "helpful_rate": 0.0},
        {"id": "returns", "title": "Returns and refunds", "answered": 1, "helpful": 0,
         "unhelpful": 1, "handed_off": 1, "helpful_rate": 0.0},
        {"id": "points", "title": "Points card", "answered": 2, "helpful": 1, "unhelpful": 1,
         "handed_off": 0, "helpful_rate": 0.5},
        {"id": "shipping", "title": "Delivery times", "answered": 2, "helpful": 2,
         "unhelpful": 0, "handed_off": 0, "helpful_rate": 1.0},
        {"id": "quiet", "title": "Opening hours", "answered": 1, "helpful": 0, "unhelpful": 0,
         "handed_off": 0, "helpful_rate": None},
    ]
    # the overall figures are still there, and agree
    assert figures["bot"]["answered"] == 8 and figures["bot"]["unhelpful"] == 4
    day = old.date().isoformat()
    past = (await hub.api("GET", f"/api/metrics?from={day}&to={day}", lead)).json()
    assert past["articles"] == [
        {"id": "shipping", "title": "Delivery times", "answered": 1, "helpful": 0,
         "unhelpful": 3, "handed_off": 1, "helpful_rate": 0.0}]


async def test_metrics_list_only_the_articles_that_most_need_attention(hub: RunningHub) -> None:
    (ticket,) = await _tickets(hub, 1, utcnow() - timedelta(hours=3))
    for n in range(14):
        ticket.answer(f"article-{n:02}")
        if n % 2:
            ticket.rate(False, f"article-{n:02}")
    await _save(hub, ticket, articles={})
    lead = await hub.login("lead@example.com", "lead-password")
    articles = (await hub.api("GET", "/api/metrics", lead)).json()["articles"]
    assert len(articles) == 10
    assert [a["id"] for a in articles[:7]] == [f"article-{n:02}" for n in range(1, 14, 2)]
    assert all(a["unhelpful"] == 0 for a in articles[7:])
