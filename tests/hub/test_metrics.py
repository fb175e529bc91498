"""Supervisor figures count what happened in the period, and only supervisors see them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from channels.base import Inbound
from hub.models import Conversation, TimelineItem, utcnow
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


async def test_metrics_are_for_supervisors(hub: RunningHub) -> None:
    agent = await hub.login()
    assert (await hub.api("GET", "/api/metrics", agent)).status_code == 403
    lead = await hub.login("lead@example.com", "lead-password")
    bad = await hub.api("GET", "/api/metrics?from=2026-02-01&to=2026-01-01", lead)
    assert bad.status_code == 400
