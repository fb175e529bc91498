"""The bot in the hub: answers first on every messaging channel, hands over with context.

The decisions are kb/'s (a pure policy over a knowledge base); this module only feeds it
committed customer messages, stores its state on the ticket, and carries out its actions
through the same paths agents use (the outbox, the timeline, the events).
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
import weakref
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import events
from hub.background import Background
from hub.models import (
    Conversation,
    Direction,
    ItemKind,
    SenderType,
    TimelineItem,
    utcnow,
)
from hub.serialize import iso, item_json
from hub.services import Services
from kb.bot import MESSAGES, Action, BotPolicy, BotState, Mode
from kb.hours import HoursConfig
from kb.index import KnowledgeBase

log = logging.getLogger(__name__)


def feedback_value(text: str) -> bool | None:
    """The bot's own "solved / not solved" quick replies, in any UI language."""
    folded = unicodedata.normalize("NFKC", text).strip().lower()
    for words in MESSAGES.values():
        if folded == words["yes"].lower():
            return True
        if folded == words["no"].lower():
            return False
    return None


class Assistant:
    def __init__(self, services: Services, channels: frozenset[str],
                 hours: HoursConfig | None = None) -> None:
        self.services = services
        self.channels = channels
        self.hours = hours
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = (
            weakref.WeakValueDictionary())
        self._answers = Background("bot")

    async def on_event(self, event: events.Event) -> None:
        payload = event.payload
        if (event.name != events.MESSAGE_CREATED or event.conversation_id is None
                or payload.get("sender_type") != SenderType.CUSTOMER
                or payload.get("type") != ItemKind.MESSAGE
                or payload.get("channel") not in self.channels):
            return
        self._answers.spawn(self._answer(event.conversation_id, payload))

    async def drain(self) -> None:
        """Wait for the answers under way (tests)."""
        await self._answers.drain()

    async def stop(self, grace: float = 5.0) -> None:
        """Shutdown: let answers under way finish for a moment, then cancel them."""
        await self._answers.close(grace)

    async def _answer(self, conversation_id: int, payload: dict[str, Any]) -> None:
        lock = self._locks.get(conversation_id)
        if lock is None:  # one answer at a time per ticket, in arrival order
            lock = self._locks[conversation_id] = asyncio.Lock()
        try:
            async with lock:
                knowledge = await self.services.knowledge.get()
                action = await self._decide(conversation_id, payload, knowledge)
                if action is not None and action.speaks:
                    await self._speak(conversation_id, action)
        except Exception:
            log.exception("bot failed on conversation %s", conversation_id)

    async def _decide(self, conversation_id: int, payload: dict[str, Any],
                      knowledge: KnowledgeBase) -> Action | None:
        policy = BotPolicy(knowledge, hours=self.hours)
        async with self.services.sessions() as session, session.begin():
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None or conversation.merged_into_id is not None:
                return None
            state = BotState(**_known(conversation.bot_state))
            if await _agent_owns(session, conversation):
                state = policy.on_agent_joined(state)
            before = state
            state, action = await asyncio.to_thread(
                _apply, policy, state, payload, conversation, utcnow())
            conversation.bot_state = {**conversation.bot_state, **asdict(state)}
            conversation.bot_state["seen_message_ids"] = list(state.seen_message_ids)
            system = _state_changes(conversation, before, state, action)
            session.add_all(system)
            await session.flush()
        for item in system:
            await self.services.bus.publish(events.Event(
                events.MESSAGE_CREATED, item_json(item), conversation_id))
        return action

    async def _speak(self, conversation_id: int, action: Action) -> None:
        data = {"bot_action": action.kind.value, "reason": action.reason,
                "article_id": action.article_id, "confidence": action.confidence,
                "quick_replies": list(action.quick_replies)}
        await self.services.tickets.reply(conversation_id, action.text, agent_id=None,
                                          sender_type=SenderType.BOT, data=data)

    async def hand_back(self, conversation_id: int) -> None:
        """An agent gives the ticket back to the bot."""
        async with self.services.sessions() as session, session.begin():
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                raise LookupError(f"conversation {conversation_id} not found")
            state = BotPolicy(None).on_handed_back(  # type: ignore[arg-type]
                BotState(**_known(conversation.bot_state)))
            conversation.bot_state = {**asdict(state), "handed_back_at": iso(utcnow())}
            conversation.assignee_id = None
            item = _system_item(conversation, "handed_back")
            session.add(item)
            await session.flush()
        await self.services.bus.publish(events.Event(
            events.MESSAGE_CREATED, item_json(item), conversation_id))


def guess_locale(text: str) -> str:
    """Japanese if the text has any kana or kanji, else English."""
    japanese = any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text)
    return "ja" if japanese or not text.strip() else "en"


def _apply(policy: BotPolicy, state: BotState, payload: dict[str, Any],
           conversation: Conversation, now: Any) -> tuple[BotState, Action]:
    text = payload.get("text") or ""
    locale = conversation.locale or guess_locale(text)
    helpful = feedback_value(text)
    message_id = str(payload["id"])
    if helpful is not None and state.last_article_id and message_id not in state.seen_message_ids:
        state = BotState(**{**asdict(state),
                            "seen_message_ids": (*state.seen_message_ids, message_id)})
        return policy.on_feedback(state, helpful, locale=locale, now=now)
    return policy.on_customer_message(state, message_id, text, locale=locale,
                                      product=conversation.product_sku, now=now)


def _state_changes(conversation: Conversation, before: BotState, after: BotState,
                   action: Action) -> list[TimelineItem]:
    """What the timeline should show of a bot decision: feedback given, a handoff."""
    items = []
    if action.reason in {"helpful", "unhelpful"} or (
            before.last_article_id and after.last_article_id is None
            and after.unhelpful_streak > before.unhelpful_streak):
        items.append(_system_item(conversation, "bot_feedback",
                                  helpful=action.reason == "helpful"))
    if after.mode == Mode.WAITING and before.mode != Mode.WAITING:
        items.append(_system_item(conversation, "handoff", reason=action.reason,
                                  confidence=action.confidence))
    return items


def _known(raw: dict[str, Any]) -> dict[str, Any]:
    fields = BotState.__dataclass_fields__
    known = {key: value for key, value in raw.items() if key in fields}
    if "seen_message_ids" in known:
        known["seen_message_ids"] = tuple(known["seen_message_ids"])
    return known


async def _agent_owns(session: AsyncSession, conversation: Conversation) -> bool:
    """Assigned, or an agent has written to the customer since the bot got the ticket back."""
    if conversation.assignee_id is not None:
        return True
    query = select(TimelineItem.id).where(
        TimelineItem.conversation_id == conversation.id,
        TimelineItem.sender_type == SenderType.AGENT,
        TimelineItem.direction == Direction.OUTBOUND)
    handed_back = conversation.bot_state.get("handed_back_at")
    if handed_back:
        query = query.where(TimelineItem.created_at > datetime.fromisoformat(
            handed_back.replace("Z", "+00:00")))
    return bool((await session.execute(select(exists(query)))).scalar())


def _system_item(conversation: Conversation, event: str, **data: Any) -> TimelineItem:
    return TimelineItem(conversation_id=conversation.id,  # type: ignore[arg-type]
                        kind=ItemKind.SYSTEM, channel=conversation.last_channel,
                        direction=Direction.INTERNAL, sender_type=SenderType.SYSTEM,
                        data={"event": event, **{k: v for k, v in data.items() if v is not None}})

