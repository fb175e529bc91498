"""The bot answers first on web chat, hands over when asked or unsure, then stays quiet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from sqlalchemy import select

from hub.assistant import Assistant, guess_locale
from hub.knowledge import import_directory
from hub.models import TimelineItem
from hub.settings import Settings
from kb.articles import default_articles_dir
from kb.bot import feedback_verdict
from tests.conftest import RunningHub
from tests.socket_client import Client

TIMEOUT = 20


@pytest.fixture(autouse=True)
def lexical_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sentence-embedding model is measured in kb/'s own tests and benchmarks."""
    monkeypatch.setenv("OMOHUB_KB_EMBEDDINGS", "0")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, secret_key="test-secret-" + "x" * 32,
                    data_dir=str(tmp_path / "data"), bot_enabled=True)


@pytest.fixture
async def bot_hub(hub: RunningHub) -> RunningHub:
    async with hub.services.sessions() as session, session.begin():
        report = await import_directory(session, default_articles_dir())
    assert report.created >= 30 and not report.errors
    return hub


@pytest.fixture
async def chat(bot_hub: RunningHub) -> AsyncIterator[tuple[socketio.AsyncClient,
                                                           asyncio.Queue[Any]]]:
    client = socketio.AsyncClient(reconnection=False)
    messages: asyncio.Queue[Any] = asyncio.Queue()
    client.on("message", messages.put, namespace="/webchat")
    await client.connect(bot_hub.url, namespaces=["/webchat"], auth={"locale": "ja"},
                         transports=["websocket"], wait_timeout=TIMEOUT)  # not 1 s under load
    yield client, messages
    await client.disconnect()


def assistant(hub: RunningHub) -> Assistant:
    return hub.services.extras["assistant"]  # type: ignore[no-any-return]


async def say(client: socketio.AsyncClient, text: str) -> dict[str, Any]:
    ack = await client.call("message", {"text": text}, namespace="/webchat", timeout=TIMEOUT)
    assert ack["ok"], ack
    return ack  # type: ignore[no-any-return]


async def bot_items(hub: RunningHub, conversation_id: int) -> list[TimelineItem]:
    await assistant(hub).drain()
    async with hub.services.sessions() as session:
        rows = await session.execute(select(TimelineItem).where(
            TimelineItem.conversation_id == conversation_id,
            TimelineItem.sender_type == "bot").order_by(TimelineItem.id))
        return list(rows.scalars())


async def bot_has_spoken(hub: RunningHub, chat: tuple[socketio.AsyncClient, asyncio.Queue[Any]],
                        text: str) -> tuple[str, str]:
    """The customer says ``text`` and the bot replies; an agent's token and the ticket's path."""
    client, messages = chat
    ack = await say(client, text)
    await asyncio.wait_for(messages.get(), TIMEOUT)
    await assistant(hub).drain()
    return await hub.login(), f"/api/conversations/{ack['conversation_id']}"


async def test_bot_answers_then_hands_over_when_asked(
        bot_hub: RunningHub, chat: tuple[socketio.AsyncClient, asyncio.Queue[Any]]) -> None:
    client, messages = chat
    ack = await say(client, "返品したいのですが、期限はいつまでですか？")
    answer = await asyncio.wait_for(messages.get(), TIMEOUT)
    assert answer["sender_type"] == "bot"
    assert "返品" in answer["text"] and answer["quick_replies"]

    await say(client, "オペレーターと話したい")
    handoff = await asyncio.wait_for(messages.get(), TIMEOUT)
    assert handoff["sender_type"] == "bot" and "担当者" in handoff["text"]
    await assistant(bot_hub).drain()
    token = await bot_hub.login()
    detail = (await bot_hub.api("GET", f"/api/conversations/{ack['conversation_id']}",
                                token)).json()
    assert detail["handoff"] == "waiting_for_agent"
    events = [i["data"].get("event") for i in detail["timeline"] if i["type"] == "system"]
    assert events == ["handoff"]
    listed = (await bot_hub.api("GET", "/api/conversations", token)).json()["items"]
    assert listed[0]["handoff"] == "waiting_for_agent"


async def test_bot_never_speaks_after_an_agent_owns_the_ticket(
        bot_hub: RunningHub, chat: tuple[socketio.AsyncClient, asyncio.Queue[Any]]) -> None:
    client, _ = chat
    token, path = await bot_has_spoken(bot_hub, chat, "ポイントの有効期限は？")
    conversation_id = int(path.rsplit("/", 1)[1])
    await bot_hub.api("POST", f"{path}/messages", token, json={"text": "担当の青木です"})
    before = await bot_items(bot_hub, conversation_id)
    await say(client, "配送はいつ届きますか")
    await say(client, "返品したい")
    assert await bot_items(bot_hub, conversation_id) == before

    handed = await bot_hub.api("PATCH", path, token, json={"handoff": "bot"})
    assert handed.status_code == 200 and handed.json()["handoff"] == "bot"
    await say(client, "返品したい")
    assert len(await bot_items(bot_hub, conversation_id)) == len(before) + 1


@pytest.mark.parametrize("takes_over", ["assigns", "replies"])
async def test_the_ticket_reads_as_the_agents_as_soon_as_one_takes_it(
        bot_hub: RunningHub, chat: tuple[socketio.AsyncClient, asyncio.Queue[Any]],
        takes_over: str) -> None:
    """Waiting for an agent → agent when one is assigned or writes, without waiting for
    the customer's next message (the inbox's "waiting" mark goes away)."""
    token, path = await bot_has_spoken(bot_hub, chat, "オペレーターと話したい")
    assert (await bot_hub.api("GET", path, token)).json()["handoff"] == "waiting_for_agent"

    me = (await bot_hub.api("GET", "/api/auth/me", token)).json()["agent"]["id"]
    if takes_over == "assigns":  # the answer itself already says so
        assigned = await bot_hub.api("PATCH", path, token, json={"assignee_id": me})
        assert assigned.json()["handoff"] == "agent"
    else:
        await bot_hub.api("POST", f"{path}/messages", token, json={"text": "担当の青木です"})
    assert (await bot_hub.api("GET", path, token)).json()["handoff"] == "agent"
    listed = (await bot_hub.api("GET", "/api/conversations", token)).json()["items"]
    handoff_by_path = {f"/api/conversations/{c['id']}": c["handoff"] for c in listed}
    assert handoff_by_path[path] == "agent"


async def test_an_internal_note_does_not_take_the_ticket_from_the_bot(
        bot_hub: RunningHub, chat: tuple[socketio.AsyncClient, asyncio.Queue[Any]]) -> None:
    token, path = await bot_has_spoken(bot_hub, chat, "ポイントの有効期限は？")
    await bot_hub.api("POST", f"{path}/messages", token,
                      json={"text": "確認中", "internal": True})
    await assistant(bot_hub).drain()
    assert (await bot_hub.api("GET", path, token)).json()["handoff"] == "bot"


async def test_unsure_bot_hands_over(
        bot_hub: RunningHub, chat: tuple[socketio.AsyncClient, asyncio.Queue[Any]]) -> None:
    client, messages = chat
    ack = await say(client, "量子コンピュータの誤り訂正符号について教えてください")
    reply = await asyncio.wait_for(messages.get(), TIMEOUT)
    assert reply["sender_type"] == "bot"
    await assistant(bot_hub).drain()
    token = await bot_hub.login()
    detail = (await bot_hub.api("GET", f"/api/conversations/{ack['conversation_id']}",
                                token)).json()
    assert detail["handoff"] == "waiting_for_agent"


async def test_two_unhelpful_answers_hand_over(
        bot_hub: RunningHub, chat: tuple[socketio.AsyncClient, asyncio.Queue[Any]]) -> None:
    client, messages = chat
    ack = await say(client, "返品したい")
    await asyncio.wait_for(messages.get(), TIMEOUT)
    await say(client, "解決しない")
    await asyncio.wait_for(messages.get(), TIMEOUT)
    await say(client, "ポイントの有効期限は？")
    await asyncio.wait_for(messages.get(), TIMEOUT)
    await say(client, "解決しない")
    await asyncio.wait_for(messages.get(), TIMEOUT)
    await assistant(bot_hub).drain()
    token = await bot_hub.login()
    detail = (await bot_hub.api("GET", f"/api/conversations/{ack['conversation_id']}",
                                token)).json()
    assert detail["handoff"] == "waiting_for_agent"
    feedback = [i["data"] for i in detail["timeline"] if i["data"].get("event") == "bot_feedback"]
    assert [f["helpful"] for f in feedback] == [False, False]


@pytest.mark.parametrize("text", ["", "😀😀😀", "<script>alert(1)</script>", "\x00\x01\ufffd",
                                  "あ" * 9_999])
async def test_odd_questions_get_a_safe_reply(
        bot_hub: RunningHub, chat: tuple[socketio.AsyncClient, asyncio.Queue[Any]],
        text: str) -> None:
    client, messages = chat
    if not text.strip():
        ack = await client.call("message", {"text": text}, namespace="/webchat")
        assert ack["ok"] is False
        return
    await say(client, text)
    reply = await asyncio.wait_for(messages.get(), TIMEOUT)
    assert reply["sender_type"] == "bot" and "<script>" not in reply["text"]


def test_feedback_words_and_locale_guess() -> None:
    assert feedback_verdict("解決した") is True and feedback_verdict(" No ") is False
    assert feedback_verdict("返品したい") is None
    assert guess_locale("Where is my order?") == "en" and guess_locale("注文は？") == "ja"


def test_after_hours_handoff_says_when_people_are_back() -> None:
    from datetime import UTC, datetime

    from hub.hours import business_hours
    from kb.bot import BotPolicy, BotState
    from kb.index import KnowledgeBase

    hours = business_hours(Settings(business_hours="09:00-18:00"))
    policy = BotPolicy(KnowledgeBase.from_articles([], embedder=None), hours=hours)
    sunday_night = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)  # 22:00 in Tokyo
    _, action = policy.on_customer_message(BotState(), "m1", "担当者と話したい",
                                           locale="ja", now=sunday_night)
    assert action.kind == "handoff" and "24日" in action.text  # Monday the 23rd is a holiday
    assert business_hours(Settings()) is None  # always open unless configured


async def test_shutdown_leaves_no_answer_running(settings: Settings) -> None:
    from channels.base import Inbound
    from hub.app import build_services, stop_services

    services = build_services(settings)
    services.dispatcher.start()
    await services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="leaving", text="送料はいくら?"))
    await stop_services(services)  # while the bot is still thinking about its answer
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []


# -- "did this solve it?": a button counts for the answer it was pressed under ------------

RETURNS = "返品したいのですが、期限はいつまでですか？"
SHIPPING = "送料はいくらですか？"


async def press(client: socketio.AsyncClient, text: str, under: int,
                client_id: str) -> dict[str, Any]:
    """A quick reply pressed under the bot message ``under`` (what chat.js sends)."""
    return await say_with(client, {"text": text, "client_id": client_id, "reply_to": under})


async def say_with(client: socketio.AsyncClient, data: dict[str, Any]) -> dict[str, Any]:
    ack = await client.call("message", data, namespace="/webchat", timeout=TIMEOUT)
    assert ack["ok"], ack
    return ack  # type: ignore[no-any-return]


async def system_events(hub: RunningHub, conversation_id: int,
                        event: str) -> list[dict[str, Any]]:
    await assistant(hub).drain()
    async with hub.services.sessions() as session:
        rows = await session.execute(select(TimelineItem).where(
            TimelineItem.conversation_id == conversation_id,
            TimelineItem.kind == "system").order_by(TimelineItem.id))
        return [i.data for i in rows.scalars() if i.data.get("event") == event]


async def two_answers(client: socketio.AsyncClient,
                      messages: asyncio.Queue[Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
    ack = await say(client, RETURNS)
    returns = await asyncio.wait_for(messages.get(), TIMEOUT)
    await say(client, SHIPPING)
    shipping = await asyncio.wait_for(messages.get(), TIMEOUT)
    assert returns["quick_replies"] and shipping["quick_replies"]
    return ack["conversation_id"], returns, shipping


async def test_a_button_under_an_earlier_answer_rates_that_answer_once(
        bot_hub: RunningHub, chat: tuple[socketio.AsyncClient, asyncio.Queue[Any]]) -> None:
    client, messages = chat
    conversation_id, returns, shipping = await two_answers(client, messages)
    first = await press(client, "解決した", returns["id"], "fb-1")
    again = await press(client, "解決した", returns["id"], "fb-1")  # a retry: stored once
    assert again["duplicate"] and again["id"] == first["id"]
    await press(client, "解決した", returns["id"], "fb-2")  # another tab: counted once
    [rating] = await system_events(bot_hub, conversation_id, "bot_feedback")
    assert rating == {"event": "bot_feedback", "helpful": True, "article_id": "ja-returns",
                      "answer_id": returns["id"]}
    # a stale button is never answered: no "glad it helped", no second answer
    assert [i.id for i in await bot_items(bot_hub, conversation_id)] == [returns["id"],
                                                                          shipping["id"]]

    # the shipping answer is still the one waiting: its own button rates it
    await press(client, "解決しない", shipping["id"], "fb-3")
    retry = await asyncio.wait_for(messages.get(), TIMEOUT)
    assert retry["sender_type"] == "bot" and retry["quick_replies"] == ["担当者と話す"]
    ratings = await system_events(bot_hub, conversation_id, "bot_feedback")
    assert [(r["article_id"], r["answer_id"], r["helpful"]) for r in ratings] == [
        ("ja-returns", returns["id"], True), ("ja-delivery-time", shipping["id"], False)]
    lead = await bot_hub.login("lead@example.com", "lead-password")
    figures = (await bot_hub.api("GET", "/api/metrics", lead)).json()
    assert (figures["bot"]["helpful"], figures["bot"]["unhelpful"]) == (1, 1)


async def test_typed_feedback_rates_the_latest_answer(
        bot_hub: RunningHub, chat: tuple[socketio.AsyncClient, asyncio.Queue[Any]]) -> None:
    client, messages = chat
    conversation_id, _returns, shipping = await two_answers(client, messages)
    await say(client, "解決しました")
    thanks = await asyncio.wait_for(messages.get(), TIMEOUT)
    assert thanks["sender_type"] == "bot" and "よかった" in thanks["text"]
    [rating] = await system_events(bot_hub, conversation_id, "bot_feedback")
    assert (rating["article_id"], rating["answer_id"], rating["helpful"]) == (
        "ja-delivery-time", shipping["id"], True)
    assert await system_events(bot_hub, conversation_id, "handoff") == []


async def test_stale_buttons_never_hand_off_twice(
        bot_hub: RunningHub, chat: tuple[socketio.AsyncClient, asyncio.Queue[Any]]) -> None:
    client, messages = chat
    ack = await say(client, RETURNS)
    answer = await asyncio.wait_for(messages.get(), TIMEOUT)
    await press(client, "担当者と話す", answer["id"], "h-1")
    handoff = await asyncio.wait_for(messages.get(), TIMEOUT)
    assert "担当者" in handoff["text"] and handoff["quick_replies"] == []
    token = await bot_hub.login()
    path = f"/api/conversations/{ack['conversation_id']}"
    await bot_hub.api("POST", f"{path}/messages", token, json={"text": "担当の青木です"})
    await bot_hub.api("PATCH", path, token, json={"handoff": "bot"})
    spoken = await bot_items(bot_hub, ack["conversation_id"])

    # an old tab still shows the first answer's buttons: pressing them does nothing more
    await press(client, "担当者と話す", answer["id"], "h-2")
    await press(client, "解決しない", answer["id"], "h-3")
    assert await bot_items(bot_hub, ack["conversation_id"]) == spoken
    assert len(await system_events(bot_hub, ack["conversation_id"], "handoff")) == 1
    detail = (await bot_hub.api("GET", path, token)).json()
    assert detail["handoff"] == "bot"
    # the rating still counts, for the answer it was about
    [rating] = await system_events(bot_hub, ack["conversation_id"], "bot_feedback")
    assert (rating["answer_id"], rating["helpful"]) == (answer["id"], False)


async def test_a_reloaded_chat_offers_the_buttons_of_the_latest_answer_only(
        bot_hub: RunningHub, clients: list[Client]) -> None:
    chat = Client("/webchat")
    clients.append(chat)
    await chat.connect(bot_hub.url, {"locale": "ja"})
    visitor = (await chat.next("session"))["visitor_token"]
    asked = await chat.call("message", {"text": RETURNS})
    returns = await chat.next("message")
    await chat.call("message", {"text": SHIPPING})
    shipping = await chat.next("message")

    async def history() -> list[dict[str, Any]]:
        await assistant(bot_hub).drain()
        again = Client("/webchat")
        clients.append(again)
        await again.connect(bot_hub.url, {"visitor_token": visitor})
        items: list[dict[str, Any]] = (await again.next("history"))["items"]
        await again.sio.disconnect()
        return items

    offered = {i["id"]: i["quick_replies"] for i in await history() if "quick_replies" in i}
    assert offered == {shipping["id"]: ["解決した", "解決しない", "担当者と話す"]}
    assert returns["id"] not in offered

    # once an agent has spoken, no button is offered any more (担当者と話す least of all)
    token = await bot_hub.login()
    await bot_hub.api("POST", f"/api/conversations/{asked['conversation_id']}/messages",
                      token, json={"text": "担当の青木です"})
    assert [i for i in await history() if "quick_replies" in i] == []



async def test_the_chat_shows_the_bot_typing_until_it_answers_and_not_for_an_agent(
        bot_hub: RunningHub, chat: tuple[socketio.AsyncClient, asyncio.Queue[Any]]) -> None:
    client, messages = chat
    typing: asyncio.Queue[Any] = asyncio.Queue()
    client.on("typing", typing.put, namespace="/webchat")
    ack = await say(client, "ポイントの有効期限を教えてください")
    assert await asyncio.wait_for(typing.get(), TIMEOUT) == {"sender_type": "bot",
                                                               "typing": True}
    assert (await asyncio.wait_for(messages.get(), TIMEOUT))["sender_type"] == "bot"

    token = await bot_hub.login()  # an agent takes the ticket: the bot is silent from now on
    path = f"/api/conversations/{ack['conversation_id']}"
    assert (await bot_hub.api("POST", f"{path}/messages", token,
                              json={"text": "担当の者です"})).status_code == 201
    assert (await asyncio.wait_for(messages.get(), TIMEOUT))["sender_type"] == "agent"
    await say(client, "ありがとうございます")
    await assistant(bot_hub).drain()
    assert typing.empty()


@pytest.mark.parametrize(("channel", "kind", "sender", "data", "taken"), [
    ("web", "message", "customer", {}, True),
    ("line", "message", "customer", {"reply_token": "r"}, True),
    ("email", "message", "customer", {}, False),                  # not a bot channel here
    ("web", "message", "agent", {}, False),
    ("web", "system", "customer", {}, False),
    ("line", "message", "customer", {"unsupported": "beacon"}, False),  # kept, not asked
    ("line", "message", "customer", {"link_code": "accepted"}, False),
])
def test_what_the_bot_takes_up(channel: str, kind: str, sender: str, data: dict[str, Any],
                               taken: bool) -> None:
    from hub.assistant import is_a_question

    assert is_a_question(channel, kind, sender, data, {"web", "line"}) is taken
