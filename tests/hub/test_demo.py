"""The demo's seeded data is what a real hub would have stored."""

from __future__ import annotations

from sqlalchemy import func, select

from hub import db
from hub.demo import seed
from hub.models import Conversation, TimelineItem
from hub.settings import Settings


async def test_seeded_tickets_start_with_their_first_item_and_name_their_last(
        settings: Settings) -> None:
    assert await seed(settings) is True
    assert await seed(settings) is False  # once only
    engine = db.create_engine(settings.database_url)
    try:
        async with db.session_factory(engine)() as session:
            tickets = (await session.execute(select(Conversation))).scalars().all()
            assert len(tickets) == 3
            for ticket in tickets:
                first, last_id = (await session.execute(
                    select(func.min(TimelineItem.created_at), func.max(TimelineItem.id))
                    .where(TimelineItem.conversation_id == ticket.id))).one()
                assert ticket.created_at <= first
                assert ticket.last_item_id == last_id
    finally:
        await engine.dispose()
