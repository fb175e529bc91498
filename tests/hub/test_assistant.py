"""The bot answers first on web chat, hands over when asked or unsure, then stays quiet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from sqlalchemy import select

from hub.assistant import Assistant, feedback_value, guess_locale
from hub.knowledge import import_directory
from hub.models import TimelineItem
from hub.settings import Settings
from kb.articles import default_articles_dir
from tests.conftest import RunningHub

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
                         transports=["websocket"])
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
    client, messages = chat
    ack = await say(client, "ポイントの有効期限は？")
    await asyncio.wait_for(messages.get(), TIMEOUT)
    token = await bot_hub.login()
    path = f"/api/conversations/{ack['conversation_id']}"
    await bot_hub.api("POST", f"{path}/messages", token, json={"text": "担当の青木です"})
    before = await bot_items(bot_hub, ack["conversation_id"])
    await say(client, "配送はいつ届きますか")
    await say(client, "返品したい")
    assert await bot_items(bot_hub, ack["conversation_id"]) == before

    handed = await bot_hub.api("PATCH", path, token, json={"handoff": "bot"})
    assert handed.status_code == 200 and handed.json()["handoff"] == "bot"
    await say(client, "返品したい")
    assert len(await bot_items(bot_hub, ack["conversation_id"])) == len(before) + 1


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
    assert feedback_value("解決した") is True and feedback_value(" No ") is False
    assert feedback_value("返品したい") is None
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
