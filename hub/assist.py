"""Agent assist: the knowledge-base articles an agent is offered for a ticket.

Suggestions follow the customer's latest question, not their latest message: after
「人と話したい」 or a tap on 「解決しない」 the agent still needs the articles about what the
customer asked before. Which messages say nothing about the topic is the bot's own rule
(``kb.bot``), so the bot and the agent's suggestions never disagree about it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.assistant import guess_locale
from hub.models import Conversation, Direction, ItemKind, SenderType, TimelineItem
from kb.bot import feedback_verdict, wants_human
from kb.index import Hit, KnowledgeBase

LOOK_BACK = 20  # customer messages, newest first


def hit_json(hit: Hit) -> dict[str, Any]:
    """One retrieved article with its scores, as ``GET /api/kb/search`` lists it."""
    return {"id": hit.article_id, "title": hit.title, "answer": hit.short_answer,
            "score": hit.score, "confidence": hit.confidence, "locale": hit.locale,
            "tags": list(hit.tags), "products": list(hit.products)}


def is_question(text: str) -> bool:
    """Does this customer message say what they need (not "a person, please", not feedback)?"""
    return bool(text.strip()) and not wants_human(text) and feedback_verdict(text) is None


async def latest_question(session: AsyncSession, conversation_id: int) -> str | None:
    rows = await session.execute(
        select(TimelineItem.text).where(
            TimelineItem.conversation_id == conversation_id,
            TimelineItem.direction == Direction.INBOUND,
            TimelineItem.sender_type == SenderType.CUSTOMER,
            TimelineItem.kind == ItemKind.MESSAGE)
        .order_by(TimelineItem.created_at.desc(), TimelineItem.id.desc()).limit(LOOK_BACK))
    return next((text for text in rows.scalars() if text and is_question(text)), None)


def suggest(knowledge: KnowledgeBase, conversation: Conversation, question: str | None,
            limit: int) -> dict[str, Any]:
    """The articles for ``question``, in the ticket's language and about its product."""
    if question is None:
        return {"query": None, "items": []}
    hits = knowledge.search(question, locale=conversation.locale or guess_locale(question),
                            product=conversation.product_sku, limit=limit)
    return {"query": question, "items": [hit_json(hit) for hit in hits]}
