"""The bot in the hub: answers first on every messaging channel, hands over with context.

The decisions are kb/'s (a pure policy over a knowledge base); this module only feeds it
committed customer messages, stores its state on the ticket, and carries out its actions
through the same paths agents use (the outbox, the timeline, the events).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import events, links
from hub.background import Background
from hub.ingest import IngestResult
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
from hub.settings import Settings
from kb.bot import Action, BotPolicy, BotState, Kind, Mode, feedback_verdict
from kb.hours import HoursConfig
from kb.index import KnowledgeBase

log = logging.getLogger(__name__)


# The reasons of a decision that rated the pending answer ("did this solve it?").
RATED = {"helpful", "unhelpful", "unhelpful_twice"}


@dataclass(frozen=True)
class Rating:
    """Feedback to record: on which answer (its timeline item, when known) and article."""

    helpful: bool
    article_id: str | None
    answer_id: int | None


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
                or not is_a_question(payload.get("channel"), payload.get("type"),
                                     payload.get("sender_type"), payload.get("data") or {},
                                     self.channels)):
            return
        self._answers.spawn(self._answer(event.conversation_id, payload))

    async def drain(self) -> None:
        """Wait for the answers under way (tests)."""
        await self._answers.drain()

    async def stop(self, grace: float = 5.0) -> None:
        """Shutdown: let answers under way finish for a moment, then cancel them."""
        await self._answers.close(grace)

    def _lock(self, conversation_id: int) -> asyncio.Lock:
        """One change of a ticket's bot state at a time, in arrival order."""
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = self._locks[conversation_id] = asyncio.Lock()
        return lock

    async def _answer(self, conversation_id: int, payload: dict[str, Any]) -> None:
        lock = self._lock(conversation_id)
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
            chip = await _pressed_under(session, conversation, payload)
            if chip is not None and not await _still_live(session, conversation, state, chip,
                                                           payload):
                state, action, rating = await _on_stale_reply(
                    session, policy, state, payload, chip)
            else:
                state, action = await asyncio.to_thread(
                    _apply, policy, state, payload, conversation, utcnow())
                rating = await _rating(session, conversation, before, action, chip)
            conversation.bot_state = {**conversation.bot_state, **asdict(state)}
            conversation.bot_state["seen_message_ids"] = list(state.seen_message_ids)
            system = _state_changes(conversation, before, state, action, rating)
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


def is_a_question(channel: Any, kind: Any, sender_type: Any, data: dict[str, Any],
                  channels: Collection[str]) -> bool:
    """Whether the bot takes up this timeline item: a customer's message on a bot channel.
    Not a message presenting a continue-on-another-channel code, nor an event kept only
    as an "unsupported" item."""
    return (channel in channels and sender_type == SenderType.CUSTOMER
            and kind == ItemKind.MESSAGE and not data.get(links.CODE_MARK)
            and "unsupported" not in data)


def bot_will_answer(settings: Settings, result: IngestResult) -> bool:
    """Whether the bot is about to answer what was just stored, so the channel can show it
    working (LINE's loading animation, the web chat's typing dots)."""
    item = result.item
    return (settings.bot_enabled and result.created
            and result.conversation.bot_state.get("mode", Mode.BOT) == Mode.BOT
            and is_a_question(item.channel, item.kind, item.sender_type, item.data,
                              settings.bot_channels.split(",")))


def guess_locale(text: str) -> str:
    """Japanese if the text has any kana or kanji, else English."""
    japanese = any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text)
    return "ja" if japanese or not text.strip() else "en"


def _apply(policy: BotPolicy, state: BotState, payload: dict[str, Any],
           conversation: Conversation, now: Any) -> tuple[BotState, Action]:
    text = payload.get("text") or ""
    locale = conversation.locale or guess_locale(text)
    helpful = feedback_verdict(text)
    message_id = str(payload["id"])
    if helpful is not None and state.last_article_id and message_id not in state.seen_message_ids:
        state = BotState(**{**asdict(state),
                            "seen_message_ids": (*state.seen_message_ids, message_id)})
        return policy.on_feedback(state, helpful, locale=locale, now=now)
    return policy.on_customer_message(state, message_id, text, locale=locale,
                                      product=conversation.product_sku, now=now)


def _state_changes(conversation: Conversation, before: BotState, after: BotState,
                   action: Action, rating: Rating | None) -> list[TimelineItem]:
    """What the timeline should show of a bot decision: feedback given (on which answer
    and article, so the figures count it there), a handoff."""
    items = []
    if rating is not None:
        items.append(_system_item(conversation, "bot_feedback", helpful=rating.helpful,
                                  article_id=rating.article_id, answer_id=rating.answer_id))
    if after.mode == Mode.WAITING and before.mode != Mode.WAITING:
        items.append(_system_item(conversation, "handoff", reason=action.reason,
                                  confidence=action.confidence))
    return items


# -- quick replies: which bot message a pressed button belongs to -------------------------

def _reply_to(payload: dict[str, Any]) -> int | None:
    """The bot message a web chat quick reply was pressed under (``data.reply_to``)."""
    data = payload.get("data")
    value = data.get("reply_to") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _pressed_under(session: AsyncSession, conversation: Conversation,
                         payload: dict[str, Any]) -> TimelineItem | None:
    """The bot message whose quick reply this customer message is; None for typed text (or
    a reference to anything else: another ticket's item, a text that is not its button)."""
    item_id = _reply_to(payload)
    if item_id is None:
        return None
    item = await session.get(TimelineItem, item_id)
    if (item is None or item.conversation_id != conversation.id
            or item.sender_type != SenderType.BOT or item.direction != Direction.OUTBOUND):
        return None
    text = _folded(payload.get("text") or "")
    replies = item.data.get("quick_replies") or []
    return item if any(isinstance(r, str) and _folded(r) == text for r in replies) else None


def _folded(text: str) -> str:
    return " ".join(text.split()).casefold()


async def _latest_to_customer(session: AsyncSession,
                              conversation_id: int) -> TimelineItem | None:
    """The newest message the customer was sent, by the bot or by an agent."""
    return (await session.execute(select(TimelineItem).where(
        TimelineItem.conversation_id == conversation_id,
        TimelineItem.kind == ItemKind.MESSAGE,
        TimelineItem.direction == Direction.OUTBOUND,
        TimelineItem.sender_type.in_((SenderType.BOT, SenderType.AGENT)))
        .order_by(TimelineItem.created_at.desc(), TimelineItem.id.desc())
        .limit(1))).scalar_one_or_none()


async def _still_live(session: AsyncSession, conversation: Conversation, state: BotState,
                      chip: TimelineItem, payload: dict[str, Any]) -> bool:
    """Quick replies are offered on the newest message only, and only while the bot has the
    ticket (as in Intercom): after a newer message, a handoff or an agent, they are stale.
    A rating is live only while its answer is still the one waiting for it."""
    if state.mode != Mode.BOT:
        return False
    latest = await _latest_to_customer(session, conversation.id)
    if latest is None or latest.id != chip.id:
        return False
    if feedback_verdict(payload.get("text") or "") is not None:
        return (chip.data.get("bot_action") == Kind.ANSWER
                and state.last_article_id is not None
                and chip.data.get("article_id") == state.last_article_id)
    return True


async def _on_stale_reply(session: AsyncSession, policy: BotPolicy, state: BotState,
                          payload: dict[str, Any], chip: TimelineItem,
                          ) -> tuple[BotState, Action, Rating | None]:
    """Never answered; a rating still counts, once, for the answer it was pressed under."""
    state, action = policy.on_stale_reply(state, str(payload["id"]))
    helpful = feedback_verdict(payload.get("text") or "")
    article_id = chip.data.get("article_id")
    if (action.reason != "stale_quick_reply" or helpful is None or not article_id
            or chip.data.get("bot_action") != Kind.ANSWER
            or await _rated(session, chip.conversation_id, chip.id)):
        return state, action, None
    return state, action, Rating(helpful, article_id, chip.id)


async def _rating(session: AsyncSession, conversation: Conversation, before: BotState,
                  action: Action, chip: TimelineItem | None) -> Rating | None:
    """The feedback a decision took on the pending answer: the one its button was pressed
    under, or, for typed feedback, the latest answer (of the pending article)."""
    if action.reason not in RATED:
        return None
    answer = chip if chip is not None else await _latest_answer(session, conversation.id)
    if answer is not None and answer.data.get("article_id") != before.last_article_id:
        answer = None
    return Rating(action.reason == "helpful", before.last_article_id,
                  answer.id if answer is not None else None)


def is_bot_answer(item: Any = TimelineItem) -> Any:
    """SQL: ``item`` (the table or an alias of it) is the bot answering from an article."""
    return sa.and_(item.sender_type == SenderType.BOT, item.direction == Direction.OUTBOUND,
                   item.data["bot_action"].as_string() == Kind.ANSWER.value)


async def _latest_answer(session: AsyncSession, conversation_id: int) -> TimelineItem | None:
    return (await session.execute(select(TimelineItem).where(
        TimelineItem.conversation_id == conversation_id, is_bot_answer())
        .order_by(TimelineItem.created_at.desc(), TimelineItem.id.desc())
        .limit(1))).scalar_one_or_none()


async def _rated(session: AsyncSession, conversation_id: int, answer_id: int) -> bool:
    query = select(TimelineItem.id).where(
        TimelineItem.conversation_id == conversation_id,
        TimelineItem.kind == ItemKind.SYSTEM,
        TimelineItem.data["event"].as_string() == "bot_feedback",
        TimelineItem.data["answer_id"].as_integer() == answer_id)
    return bool((await session.execute(select(exists(query)))).scalar())


async def live_quick_replies(session: AsyncSession,
                             conversation: Conversation) -> tuple[int, list[str]] | None:
    """The bot message whose quick replies the customer may still press, and those
    replies: the newest message they were sent, when the bot wrote it and still has the
    ticket (so a reloaded chat shows them again, and never stale ones)."""
    state = BotState(**_known(conversation.bot_state))
    if state.mode != Mode.BOT or await _agent_owns(session, conversation):
        return None
    latest = await _latest_to_customer(session, conversation.id)
    if latest is None or latest.sender_type != SenderType.BOT:
        return None
    replies = [r for r in latest.data.get("quick_replies") or [] if isinstance(r, str)]
    return (latest.id, replies) if replies and latest.id is not None else None


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

