"""Inbox search (``q``): a substring of the customer's name or of any message, in any
language and any case, with LIKE wildcards taken as text."""

from __future__ import annotations

from channels.base import Inbound
from hub.models import TimelineItem
from hub.services import Services
from hub.tickets import InboxFilter


def web(visitor: str, text: str) -> Inbound:
    return Inbound(channel="web", identity_kind="web", identity_value=visitor, text=text)


async def found(services: Services, q: str) -> set[int]:
    page = await services.tickets.inbox(InboxFilter(q=q, limit=200), agent_id=1)
    return {item["id"] for item in page["items"]}


async def test_search_finds_message_text_in_any_language(services: Services) -> None:
    tea = await services.ingestor.ingest(web("v-tea", "静岡の煎茶は渋谷店にありますか"))
    towel = await services.ingestor.ingest(web("v-towel", "Can I return a TOWEL bought in store?"))
    pct = await services.ingestor.ingest(web("v-pct", "Is it 100% cotton_blend?"))
    assert await found(services, "渋谷店") == {tea.conversation.id}
    assert await found(services, "towel") == {towel.conversation.id}      # any case
    assert await found(services, "煎茶") == {tea.conversation.id}          # two characters
    assert await found(services, "100%") == {pct.conversation.id}         # wildcards are text
    assert await found(services, "n_b") == {pct.conversation.id}
    assert await found(services, "返品") == set()


async def test_search_index_follows_deletions(services: Services) -> None:
    gone = await services.ingestor.ingest(web("v-gone", "please forget this sentence"))
    async with services.sessions() as session, session.begin():
        item = await session.get(TimelineItem, gone.item.id)
        await session.delete(item)
    assert await found(services, "forget this") == set()
