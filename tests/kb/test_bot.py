from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kb.bot import Action, BotPolicy, BotState, Kind, Mode, feedback_verdict, wants_human
from kb.hours import HoursConfig
from kb.index import Decision, Hit

FAKE_ARTICLES = {
    "returns": Hit("ja-returns", "返品", "30日以内なら返品できます。", 2.0, 0.9),
    "complaint": Hit("ja-complaint", "苦情", "担当者が伺います。", 2.0, 0.9, tags=("human-only",)),
}


class FakeKB:
    """Answers known questions with a fixed article; everything else is low confidence."""

    articles = FAKE_ARTICLES

    def decide(self, query: str, locale: str | None = None, product: str | None = None) -> Decision:
        if not query.strip():
            return Decision(None, 0.0, "empty")
        for key, hit in self.articles.items():
            if key in query:
                return Decision(hit, hit.confidence, "confident", (hit,))
        return Decision(None, 0.1, "low_confidence")


@pytest.fixture
def policy() -> BotPolicy:
    return BotPolicy(FakeKB())


@pytest.mark.parametrize(
    "text",
    [
        "人と話したい",
        "オペレーターお願いします",
        "ｵﾍﾟﾚｰﾀｰ",
        "担当者につないで",
        "I want a HUMAN",
        "can I talk to an agent",
        "Representative please",
        "ＯＰＥＲＡＴＯＲ",
    ],
)
def test_requests_for_a_person_are_recognised(text: str) -> None:
    assert wants_human(text)


@pytest.mark.parametrize("text", ["返品したい", "where is my order", "humane society", "ポイント"])
def test_ordinary_questions_are_not_requests_for_a_person(text: str) -> None:
    assert not wants_human(text)


def test_confident_answer_then_helpful(policy: BotPolicy) -> None:
    state, action = policy.on_customer_message(BotState(), "m1", "returns please")
    assert action.kind is Kind.ANSWER and action.article_id == "ja-returns"
    assert "30日以内" in action.text and action.quick_replies
    state, action = policy.on_feedback(state, helpful=True)
    assert action.kind is Kind.ACKNOWLEDGE and state.mode == Mode.BOT


def test_low_confidence_hands_off(policy: BotPolicy) -> None:
    state, action = policy.on_customer_message(BotState(), "m1", "something odd", locale="en")
    assert action.kind is Kind.HANDOFF and action.reason == "low_confidence"
    assert state.mode == Mode.WAITING and state.handoff_reason == "low_confidence"


def test_explicit_request_hands_off(policy: BotPolicy) -> None:
    state, action = policy.on_customer_message(BotState(), "m1", "オペレーターと話したい")
    assert (action.kind, action.reason, state.mode) == (
        Kind.HANDOFF,
        "customer_request",
        Mode.WAITING,
    )


def test_human_only_topic_hands_off(policy: BotPolicy) -> None:
    _state, action = policy.on_customer_message(BotState(), "m1", "complaint about staff")
    assert action.kind is Kind.HANDOFF and action.reason == "human_only_topic"


def test_two_unhelpful_answers_in_a_row_hand_off(policy: BotPolicy) -> None:
    state, _ = policy.on_customer_message(BotState(), "m1", "returns?")
    state, action = policy.on_feedback(state, helpful=False)
    assert action.kind is Kind.CLARIFY and state.mode == Mode.BOT
    state, _ = policy.on_customer_message(state, "m2", "returns again")
    state, action = policy.on_feedback(state, helpful=False)
    assert action.kind is Kind.HANDOFF and action.reason == "unhelpful_twice"


def test_quick_reply_text_counts_as_feedback(policy: BotPolicy) -> None:
    state, _ = policy.on_customer_message(BotState(), "m1", "returns?", locale="en")
    state, action = policy.on_customer_message(state, "m2", "No", locale="en")
    assert action.kind is Kind.CLARIFY and state.unhelpful_streak == 1
    state, _ = policy.on_customer_message(state, "m3", "returns")
    state, action = policy.on_customer_message(state, "m4", "解決しない")
    assert action.kind is Kind.HANDOFF and action.reason == "unhelpful_twice"


@pytest.mark.parametrize(
    "text,verdict",
    [
        ("解決しました", True),
        ("解決しました！", True),
        ("解決できました。", True),
        ("解決しませんでした", False),
        ("Yes, solved", True),
        ("ＮＯ", False),
        ("解決しました？", None),
        ("ありがとう、でも返品したい", None),
    ],
)
def test_typed_feedback_rates_the_pending_answer(
    policy: BotPolicy, text: str, verdict: bool | None
) -> None:
    assert feedback_verdict(text) is verdict
    state, _ = policy.on_customer_message(BotState(), "m1", "returns?")
    state, action = policy.on_customer_message(state, "m2", text)
    if verdict is not None:
        assert action.kind is (Kind.ACKNOWLEDGE if verdict else Kind.CLARIFY)
        assert state.last_article_id is None


def test_a_stale_quick_reply_is_remembered_and_never_answered(policy: BotPolicy) -> None:
    state, _ = policy.on_customer_message(BotState(), "m1", "returns?")
    waiting = replace(state, mode=Mode.WAITING)
    for before in (state, waiting):
        after, action = policy.on_stale_reply(before, "m2")
        assert action.kind is Kind.SILENT and action.reason == "stale_quick_reply"
        assert after == replace(before, seen_message_ids=(*before.seen_message_ids, "m2"))
        again, action = policy.on_stale_reply(after, "m2")
        assert action.reason == "duplicate" and again == after
        _, action = policy.on_customer_message(after, "m2", "人と話したい")
        assert action.reason == "duplicate"  # a redelivery cannot hand off either


def test_helpful_answer_resets_the_unhelpful_streak(policy: BotPolicy) -> None:
    state, _ = policy.on_customer_message(BotState(), "m1", "returns?")
    state, _ = policy.on_feedback(state, helpful=False)
    state, _ = policy.on_customer_message(state, "m2", "returns")
    state, _ = policy.on_feedback(state, helpful=True)
    state, _ = policy.on_customer_message(state, "m3", "returns")
    state, action = policy.on_feedback(state, helpful=False)
    assert action.kind is Kind.CLARIFY


def test_empty_messages_get_a_clarification_then_a_person(policy: BotPolicy) -> None:
    state, action = policy.on_customer_message(BotState(), "m1", "   ")
    assert action.kind is Kind.CLARIFY
    state, action = policy.on_customer_message(state, "m2", "")
    assert action.kind is Kind.HANDOFF and action.reason == "not_understood"


def test_redelivered_message_is_not_answered_twice(policy: BotPolicy) -> None:
    state, first = policy.on_customer_message(BotState(), "m1", "returns")
    again, second = policy.on_customer_message(state, "m1", "returns")
    assert first.kind is Kind.ANSWER
    assert second.kind is Kind.SILENT and second.reason == "duplicate" and again == state


def test_agent_owns_then_hands_back(policy: BotPolicy) -> None:
    state, _ = policy.on_customer_message(BotState(), "m1", "人と話したい")
    state = policy.on_agent_joined(state)
    state, action = policy.on_customer_message(state, "m2", "returns")
    assert action.kind is Kind.SILENT and action.reason == "agent_owns_ticket"
    state = policy.on_handed_back(state)
    _state, action = policy.on_customer_message(state, "m3", "returns")
    assert action.kind is Kind.ANSWER


def test_state_round_trips_through_json(policy: BotPolicy) -> None:
    state, _ = policy.on_customer_message(BotState(), "m1", "returns")
    assert BotState.from_json(state.to_json()) == state
    assert BotState.from_json(None) == BotState()


def test_outside_hours_handoff_says_when_people_are_back() -> None:
    policy = BotPolicy(FakeKB(), hours=HoursConfig())
    sunday_night = dt.datetime(2026, 11, 22, 13, 0, tzinfo=dt.UTC)  # Sun 22:00 JST
    _state, action = policy.on_customer_message(
        BotState(), "m1", "human please", locale="en", now=sunday_night
    )
    assert action.kind is Kind.HANDOFF
    assert "Tuesday 24 November at 09:00" in action.text  # Monday 23rd is a public holiday


EVENTS = st.lists(
    st.one_of(
        st.tuples(
            st.just("message"),
            st.integers(0, 8),
            st.sampled_from(["returns", "complaint", "??", "", "人と話したい", "hello"]),
        ),
        st.tuples(st.just("feedback"), st.booleans(), st.none()),
        st.tuples(st.just("stale_reply"), st.integers(0, 8), st.none()),
        st.tuples(st.just("agent_joined"), st.none(), st.none()),
        st.tuples(st.just("handed_back"), st.none(), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(EVENTS)
def test_bot_never_speaks_twice_per_inbound_nor_over_an_agent(events) -> None:
    policy = BotPolicy(FakeKB())
    state = BotState()
    answered: set[str] = set()
    for kind, value, text in events:
        before = state
        if kind == "message":
            message_id = f"m{value}"
            state, action = policy.on_customer_message(state, message_id, text)
            if action.speaks:
                assert message_id not in answered, "answered the same inbound twice"
                answered.add(message_id)
            assert isinstance(action, Action)
        elif kind == "feedback":
            state, action = policy.on_feedback(state, helpful=value)
        elif kind == "stale_reply":
            state, action = policy.on_stale_reply(state, f"m{value}")
            assert not action.speaks and state.mode == before.mode
            assert f"m{value}" in state.seen_message_ids
        elif kind == "agent_joined":
            state, action = policy.on_agent_joined(state), None
        else:
            state, action = policy.on_handed_back(state), None
        if action is not None and before.mode == Mode.AGENT:
            assert not action.speaks, "the bot spoke while an agent owned the ticket"
        if action is not None and action.kind is Kind.HANDOFF:
            assert state.mode == Mode.WAITING
        assert BotState.from_json(state.to_json()) == state
