"""LINE outbound: reply token first, else push with a retry key; retries, failures, splits."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.base import Outbound
from channels.line import LineChannel
from channels.line.outbound import RETRY_NAMESPACE, TEXT_LIMIT, retry_key, split_text
from hub import events
from hub.models import TimelineItem
from hub.services import Services
from hub.settings import Settings
from tests.fakes.line_api import PUSH, REPLY, FakeLine, line_settings
from tests.fakes.line_webhook import body, headers, now_ms, text, user_id

USER = user_id(42)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, fake_line: FakeLine) -> Settings:
    return line_settings(database_url, tmp_path, fake_line, public_url="https://hub.example.com")


@pytest.fixture
def outcomes(services: Services) -> asyncio.Queue[dict[str, Any]]:
    """Items whose delivery finished (sent or failed), as the agents are told."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_event(event: events.Event) -> None:
        if event.name == events.MESSAGE_UPDATED and \
                event.payload["delivery_status"] in {"sent", "failed"}:
            await queue.put(event.payload)

    services.bus.subscribe(on_event)
    return queue


async def customer_writes(services: Services, age_seconds: float = 0) -> int:
    raw = body(text(USER, "問い合わせです", timestamp=now_ms() - int(age_seconds * 1000)))
    channel = services.adapters["line"]
    assert isinstance(channel, LineChannel)
    await channel.receive(raw, headers(raw)["X-Line-Signature"])
    conversation_id, _ = await services.tickets.customer_view("line", USER, 0)
    assert conversation_id is not None
    return conversation_id


async def agent_says(services: Services, conversation_id: int, words: str,
                     **data: Any) -> TimelineItem:
    return await services.tickets.reply(conversation_id, words, agent_id=None,
                                        data=data or None)


async def settled(queue: asyncio.Queue[dict[str, Any]], item_id: int) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            payload = await queue.get()
            if payload["id"] == item_id:
                return payload


async def test_fresh_token_replies_free_then_pushes(services: Services, fake_line: FakeLine,
                                                    outcomes: asyncio.Queue[Any]) -> None:
    conversation_id = await customer_writes(services)
    first = await agent_says(services, conversation_id, "確認します")
    assert (await settled(outcomes, first.id or 0))["delivery_status"] == "sent"
    second = await agent_says(services, conversation_id, "お待たせしました")
    sent = await settled(outcomes, second.id or 0)
    reply, push = fake_line.deliveries
    assert (reply.path, reply.texts) == (REPLY, ["確認します"])
    assert reply.json["replyToken"].startswith("reply-token-")
    assert (push.path, push.texts, push.json["to"]) == (PUSH, ["お待たせしました"], USER)
    assert push.headers["X-Line-Retry-Key"] == str(
        uuid.uuid5(RETRY_NAMESPACE, f"omohub-line:{second.id}:0"))
    assert sent["data"]["line_delivery"]["0"]["via"] == "push"


async def test_expired_token_pushes_with_retry_key(services: Services, fake_line: FakeLine,
                                                   outcomes: asyncio.Queue[Any]) -> None:
    conversation_id = await customer_writes(services, age_seconds=55)
    item = await agent_says(services, conversation_id, "遅くなりました")
    await settled(outcomes, item.id or 0)
    [push] = fake_line.deliveries
    assert push.path == PUSH and push.headers["X-Line-Retry-Key"] == retry_key(item.id or 0, 0)
    assert fake_line.to(REPLY) == []


async def test_refused_reply_token_falls_back_to_push(services: Services, fake_line: FakeLine,
                                                      outcomes: asyncio.Queue[Any]) -> None:
    fake_line.reply_tokens = set()  # LINE says: invalid reply token
    conversation_id = await customer_writes(services)
    item = await agent_says(services, conversation_id, "こんにちは")
    assert (await settled(outcomes, item.id or 0))["delivery_status"] == "sent"
    assert [c.path for c in fake_line.calls if c.path in {REPLY, PUSH}] == [REPLY, PUSH]
    assert [c.path for c in fake_line.deliveries] == [PUSH]


async def test_429_then_success_is_delivered_once(services: Services, fake_line: FakeLine,
                                                  outcomes: asyncio.Queue[Any]) -> None:
    conversation_id = await customer_writes(services, age_seconds=120)
    fake_line.script(PUSH, (429, {"message": "Too Many Requests"}))
    item = await agent_says(services, conversation_id, "再送テスト")
    assert (await settled(outcomes, item.id or 0))["delivery_status"] == "sent"
    calls = fake_line.to(PUSH)
    assert [c.status for c in calls] == [429, 200]
    assert len({c.headers["X-Line-Retry-Key"] for c in calls}) == 1
    assert len(fake_line.deliveries) == 1


@pytest.mark.parametrize("age_seconds, path", [(0, REPLY), (120, PUSH)])
async def test_an_accepted_send_with_a_bare_body_is_sent_once(
        services: Services, fake_line: FakeLine, outcomes: asyncio.Queue[Any],
        age_seconds: float, path: str) -> None:
    """LINE's 200 is the acceptance; a body without ``sentMessages`` (which the SDK's
    models refuse) must not make the hub send the message again."""
    conversation_id = await customer_writes(services, age_seconds=age_seconds)
    fake_line.script(path, (200, {}))
    item = await agent_says(services, conversation_id, "一度だけ届くはず")
    assert (await settled(outcomes, item.id or 0))["delivery_status"] == "sent"
    assert [c.path for c in fake_line.deliveries] == [path]


async def test_other_4xx_marks_failed_with_lines_message(
        services: Services, fake_line: FakeLine, outcomes: asyncio.Queue[Any]) -> None:
    conversation_id = await customer_writes(services, age_seconds=120)
    fake_line.script(PUSH, (400, {"message": "The request body has 1 error(s)",
                                  "details": [{"message": "May not be empty"}]}))
    item = await agent_says(services, conversation_id, "失敗するはず")
    failed = await settled(outcomes, item.id or 0)
    assert failed["delivery_status"] == "failed"
    assert failed["error"] == "LINE 400: The request body has 1 error(s)"
    assert len(fake_line.to(PUSH)) == 1


async def test_long_text_is_split_and_batched(services: Services, fake_line: FakeLine,
                                              outcomes: asyncio.Queue[Any]) -> None:
    conversation_id = await customer_writes(services)
    words = ("あ" * 4000 + "\n") * 6 + "おわり"
    item = await agent_says(services, conversation_id, words)
    await settled(outcomes, item.id or 0)
    reply, push = fake_line.deliveries
    assert (reply.path, len(reply.texts), push.path, len(push.texts)) == (REPLY, 5, PUSH, 1)
    assert "".join(reply.texts + push.texts) == words
    assert push.headers["X-Line-Retry-Key"] == retry_key(item.id or 0, 1)


async def test_a_retried_batch_is_never_sent_twice(services: Services,
                                                   fake_line: FakeLine) -> None:
    """LINE accepted the push but the answer was lost: the retry (same key) gets 409."""
    channel = services.adapters["line"]
    assert isinstance(channel, LineChannel)
    outbound = Outbound(item_id=987654, conversation_id=0, channel="line", recipient=USER,
                        text="一度だけ", sender_type="agent")
    first, second = await channel.send(outbound), await channel.send(outbound)
    assert first.ok and second.ok
    assert [c.status for c in fake_line.to(PUSH)] == [200, 409]
    assert len(fake_line.deliveries) == 1


async def test_images_and_quick_replies(services: Services, fake_line: FakeLine) -> None:
    channel = services.adapters["line"]
    assert isinstance(channel, LineChannel)
    image = {"name": "map.png", "content_type": "image/png", "size": 10,
             "url": "/files/abcdefghijklmnopqrstuvwx/map.png"}
    outbound = Outbound(item_id=555, conversation_id=0, channel="line", recipient=USER,
                        text="地図です", sender_type="bot", attachments=(image,),
                        data={"quick_replies": ["解決しました", "人と話す"]})
    assert (await channel.send(outbound)).ok
    [call] = fake_line.deliveries
    text_message, image_message = call.json["messages"]
    assert text_message == {"type": "text", "text": "地図です"}
    assert image_message["originalContentUrl"] == (
        "https://hub.example.com/files/abcdefghijklmnopqrstuvwx/map.png")
    labels = [i["action"]["text"] for i in image_message["quickReply"]["items"]]
    assert labels == ["解決しました", "人と話す"]


@given(st.text(alphabet=st.sampled_from(["a", "あ", "😀", " ", "\n"]), max_size=12_000))
def test_split_text_keeps_every_character(words: str) -> None:
    pieces = split_text(words)
    assert "".join(pieces) == words
    assert all(0 < len(p.encode("utf-16-le")) // 2 <= TEXT_LIMIT for p in pieces)


async def test_bot_shows_loading_then_answers_free(
        settings: Settings, fake_line: FakeLine) -> None:
    from hub.app import build_services, stop_services

    services = build_services(settings.with_changes(bot_enabled=True))
    services.dispatcher.start()
    try:
        await customer_writes(services)
        await fake_line.wait_for(lambda f: len(f.deliveries) == 1, within=20)
    finally:
        await stop_services(services)
    [loading] = fake_line.to("/v2/bot/chat/loading/start")
    assert loading.json == {"chatId": USER, "loadingSeconds": 10}
    [answer] = fake_line.deliveries
    assert answer.path == REPLY  # the bot answers inside the reply window: free
    assert fake_line.calls.index(loading) < fake_line.calls.index(answer)
    assert answer.texts[0]  # (no articles here: the bot hands over, in words)
