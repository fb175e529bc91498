"""The bot's hand-off policy: a pure state machine, no I/O.

States: ``bot`` → ``waiting_for_agent`` → ``agent``; an agent may hand the
ticket back (→ ``bot``). The hub stores ``BotState`` as JSON on the
conversation, calls the ``on_*`` methods and carries out the returned
``Action`` (send a message, put the ticket in the agent queue, or nothing).

Invariants (property-tested): the bot never answers the same inbound message
twice, and never speaks while an agent owns the ticket.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Protocol

from kb.hours import HoursConfig, back_at_text, is_open
from kb.index import Decision
from kb.normalize import normalize

MAX_REMEMBERED_IDS = 200
MAX_UNHELPFUL = 2
HUMAN_ONLY_TAG = "human-only"


class Mode(StrEnum):
    BOT = "bot"
    WAITING = "waiting_for_agent"
    AGENT = "agent"


class Kind(StrEnum):
    ANSWER = "answer"  # send the article's short answer and ask "did this solve it?"
    CLARIFY = "clarify"  # ask the customer to rephrase
    HANDOFF = "handoff"  # tell the customer a person will take over; queue for agents
    ACKNOWLEDGE = "acknowledge"  # a short reply to feedback ("glad it helped")
    SILENT = "silent"  # say nothing


@dataclass(frozen=True)
class BotState:
    mode: str = Mode.BOT
    unhelpful_streak: int = 0
    seen_message_ids: tuple[str, ...] = ()
    last_article_id: str | None = None
    handoff_reason: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | None) -> BotState:
        if not raw:
            return cls()
        data = json.loads(raw)
        data["seen_message_ids"] = tuple(data.get("seen_message_ids") or ())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class Action:
    kind: Kind
    reason: str
    text: str = ""
    article_id: str | None = None
    confidence: float | None = None
    quick_replies: tuple[str, ...] = ()

    @property
    def speaks(self) -> bool:
        return self.kind is not Kind.SILENT


class Answerer(Protocol):
    def decide(
        self, query: str, locale: str | None = None, product: str | None = None
    ) -> Decision: ...


_HUMAN_PATTERNS_JA = (
    "人と話",
    "人間",
    "おぺれーたー",
    "担当者",
    "有人",
    "すたっふ",
    "係の人",
    "係りの人",
    "人に代わ",
    "人に繋",
    "人につな",
    "電話で話",
)
_HUMAN_PATTERN_EN = re.compile(
    r"\b(human|agent|representative|operator|real person|live person|a person|someone real|"
    r"customer service rep|speak to (a|some)one|talk to (a|some)one|live chat|staff member)\b"
)


def wants_human(text: str) -> bool:
    """Does the customer ask for a person? (normalised: width, case and kana folded)"""
    norm = normalize(text)
    return any(p in norm for p in _HUMAN_PATTERNS_JA) or bool(_HUMAN_PATTERN_EN.search(norm))


MESSAGES = {
    "ja": {
        "ask_helpful": "この回答で解決しましたか？",
        "yes": "解決した",
        "no": "解決しない",
        "human": "担当者と話す",
        "handoff": "担当者におつなぎします。これまでのやりとりは担当者に引き継がれますので、"
        "少々お待ちください。",
        "clarify": "申し訳ありません、ご質問をうまく読み取れませんでした。"
        "もう少し詳しく教えていただけますか？",
        "retry": "お役に立てず申し訳ありません。"
        "別の言葉で言い換えていただくか、担当者をお呼びください。",
        "thanks": "解決してよかったです。ほかにもご不明な点があればお気軽にどうぞ。",
    },
    "en": {
        "ask_helpful": "Did this solve your question?",
        "yes": "Yes, solved",
        "no": "No",
        "human": "Talk to a person",
        "handoff": "I'm connecting you with a member of our team. They will see this conversation, "
        "so there's no need to repeat yourself.",
        "clarify": "Sorry, I couldn't quite understand that. Could you tell me a little more?",
        "retry": "Sorry that didn't help. Could you rephrase it, or shall I get a person for you?",
        "thanks": "Glad that helped! Ask me anytime if anything else comes up.",
    },
}


def messages(locale: str | None) -> dict[str, str]:
    return MESSAGES["en"] if locale and locale.startswith("en") else MESSAGES["ja"]


# What customers type by hand for the same two answers (the whole message, nothing more).
TYPED_FEEDBACK = {
    True: ("解決しました", "解決できました", "solved", "it solved it"),
    False: ("解決しませんでした", "解決できませんでした", "解決していません", "not solved"),
}
_TRAILING = "。．.！!〜~ 　"
_VERDICTS = {
    verdict: frozenset(
        {normalize(m["yes" if verdict else "no"]) for m in MESSAGES.values()}
        | {normalize(w) for w in TYPED_FEEDBACK[verdict]}
    )
    for verdict in (True, False)
}


def feedback_verdict(text: str) -> bool | None:
    """A quick-reply answer to "did this solve it?" sent back as text (LINE, SMS…), or
    the same answer typed by hand."""
    norm = normalize(text).rstrip(_TRAILING)
    for verdict, words in _VERDICTS.items():
        if norm in words:
            return verdict
    return None


@dataclass
class BotPolicy:
    kb: Answerer
    hours: HoursConfig | None = None
    human_only_tags: frozenset[str] = field(default_factory=lambda: frozenset({HUMAN_ONLY_TAG}))
    max_unhelpful: int = MAX_UNHELPFUL

    # -- events -------------------------------------------------------------------------
    def on_customer_message(
        self,
        state: BotState,
        message_id: str,
        text: str,
        locale: str | None = None,
        product: str | None = None,
        now: dt.datetime | None = None,
    ) -> tuple[BotState, Action]:
        if message_id in state.seen_message_ids:
            return state, Action(Kind.SILENT, "duplicate")
        state = _remember(state, message_id)
        if state.mode == Mode.AGENT:
            return state, Action(Kind.SILENT, "agent_owns_ticket")
        if state.mode == Mode.WAITING:
            return state, Action(Kind.SILENT, "waiting_for_agent")
        if wants_human(text):
            return self._hand_off(state, "customer_request", locale, now)
        verdict = feedback_verdict(text)
        if verdict is not None and state.last_article_id is not None:
            return self.on_feedback(state, verdict, locale, now)
        return self._answer(state, text, locale, product, now)

    def on_feedback(
        self,
        state: BotState,
        helpful: bool,
        locale: str | None = None,
        now: dt.datetime | None = None,
    ) -> tuple[BotState, Action]:
        if state.mode != Mode.BOT or state.last_article_id is None:
            return state, Action(Kind.SILENT, "no_pending_answer")
        if helpful:
            state = replace(state, unhelpful_streak=0, last_article_id=None)
            return state, Action(Kind.ACKNOWLEDGE, "helpful", messages(locale)["thanks"])
        state = replace(state, unhelpful_streak=state.unhelpful_streak + 1, last_article_id=None)
        if state.unhelpful_streak >= self.max_unhelpful:
            return self._hand_off(state, "unhelpful_twice", locale, now)
        text = messages(locale)["retry"]
        return state, Action(
            Kind.CLARIFY, "unhelpful", text, quick_replies=(messages(locale)["human"],)
        )

    def on_stale_reply(self, state: BotState, message_id: str) -> tuple[BotState, Action]:
        """A quick reply pressed under a message the conversation has since moved past (a
        newer bot message, a handoff, an agent): remembered and never answered, so it can
        neither hand off a second time nor bring a second answer. (The hub may still count
        it as feedback on the older answer it belongs to.)"""
        if message_id in state.seen_message_ids:
            return state, Action(Kind.SILENT, "duplicate")
        return _remember(state, message_id), Action(Kind.SILENT, "stale_quick_reply")

    def on_agent_joined(self, state: BotState) -> BotState:
        return replace(state, mode=Mode.AGENT)

    def on_handed_back(self, state: BotState) -> BotState:
        return replace(
            state, mode=Mode.BOT, unhelpful_streak=0, last_article_id=None, handoff_reason=None
        )

    # -- helpers ------------------------------------------------------------------------
    def _answer(
        self,
        state: BotState,
        text: str,
        locale: str | None,
        product: str | None,
        now: dt.datetime | None,
    ) -> tuple[BotState, Action]:
        decision = self.kb.decide(text, locale=locale, product=product)
        if decision.reason == "empty":
            return self._clarify(state, locale, now)
        hit = decision.answer
        if hit is None:
            return self._hand_off(state, "low_confidence", locale, now, decision.confidence)
        if self.human_only_tags.intersection(hit.tags):
            return self._hand_off(state, "human_only_topic", locale, now, decision.confidence)
        words = messages(locale)
        state = replace(state, last_article_id=hit.article_id)
        return state, Action(
            Kind.ANSWER,
            "confident",
            f"{hit.short_answer}\n\n{words['ask_helpful']}",
            article_id=hit.article_id,
            confidence=decision.confidence,
            quick_replies=(words["yes"], words["no"], words["human"]),
        )

    def _clarify(
        self, state: BotState, locale: str | None, now: dt.datetime | None
    ) -> tuple[BotState, Action]:
        state = replace(state, unhelpful_streak=state.unhelpful_streak + 1)
        if state.unhelpful_streak >= self.max_unhelpful:
            return self._hand_off(state, "not_understood", locale, now)
        words = messages(locale)
        return state, Action(
            Kind.CLARIFY, "empty", words["clarify"], quick_replies=(words["human"],)
        )

    def _hand_off(
        self,
        state: BotState,
        reason: str,
        locale: str | None,
        now: dt.datetime | None,
        confidence: float | None = None,
    ) -> tuple[BotState, Action]:
        text = messages(locale)["handoff"]
        if self.hours is not None and now is not None and not is_open(now, self.hours):
            text = back_at_text(now, locale or "ja", self.hours)
        state = replace(state, mode=Mode.WAITING, handoff_reason=reason, last_article_id=None)
        return state, Action(Kind.HANDOFF, reason, text, confidence=confidence)


def _remember(state: BotState, message_id: str) -> BotState:
    seen = (*state.seen_message_ids, message_id)[-MAX_REMEMBERED_IDS:]
    return replace(state, seen_message_ids=seen)
