"""LINE inbound: the webhook over HTTP, and event handling on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from channels.line import LineChannel
from channels.line.parse import BadSignature, parse
from hub.models import Conversation, Customer, Identity, TimelineItem
from hub.services import Services
from hub.settings import Settings
from tests.conftest import RunningHub
from tests.fakes.line_api import FakeLine, line_settings
from tests.fakes.line_webhook import (
    FIXTURES,
    SECRET,
    body,
    event,
    headers,
    now_ms,
    text,
    user_id,
)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, fake_line: FakeLine) -> Settings:
    return line_settings(database_url, tmp_path, fake_line)


def line(services: Services) -> LineChannel:
    channel = services.adapters["line"]
    assert isinstance(channel, LineChannel)
    return channel


async def receive(services: Services, raw: bytes) -> None:
    await line(services).receive(raw, headers(raw)["X-Line-Signature"])


async def count(services: Services, model: type) -> int:
    async with services.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def items(services: Services) -> list[TimelineItem]:
    async with services.sessions() as session:
        return list((await session.execute(select(TimelineItem).order_by(
            TimelineItem.created_at, TimelineItem.id))).scalars())


# --- the webhook over HTTP ------------------------------------------------------------

async def test_webhook_answers_after_commit(hub: RunningHub) -> None:
    empty = json.dumps({"destination": user_id(99), "events": []}).encode()
    response = await hub.http.post("/webhooks/line", content=empty, headers=headers(empty))
    assert response.status_code == 200  # LINE's "Verify" button
    raw = body(text(user_id(1), "注文した商品が届きません"))
    response = await hub.http.post("/webhooks/line", content=raw, headers=headers(raw))
    assert response.status_code == 200 and response.json()["events"] == 1
    [item] = await items(hub.services)  # committed before the answer
    assert item.text == "注文した商品が届きません" and item.channel == "line"


async def test_bad_requests_store_nothing(hub: RunningHub) -> None:
    huge = body(text(user_id(1), "x" * (1024 * 1024)))
    response = await hub.http.post("/webhooks/line", content=huge, headers=headers(huge))
    assert response.status_code == 413
    raw = body(text(user_id(1), "hello"))
    cases = [
        (raw, {"X-Line-Signature": "AAAA"}, 401),
        (raw, {}, 401),
        (raw, headers(raw, secret="another-secret"), 401),
        (raw[:-2] + b"x}", headers(raw), 401),  # tampered after signing
        (b"{not json", headers(b"{not json"), 400),
        (b'{"events": 5}', headers(b'{"events": 5}'), 400),
        (b"\xff\xfe", headers(b"\xff\xfe"), 400),
    ]
    for content, sent_headers, status in cases:
        response = await hub.http.post("/webhooks/line", content=content, headers=sent_headers)
        assert response.status_code == status, (content[:20], response.text)
        assert response.json()["error"]["code"] in {"invalid_signature", "bad_body"}
    assert await count(hub.services, TimelineItem) == 0
    assert await count(hub.services, Customer) == 0


async def test_chunked_and_multi_part_bodies_are_read_whole(hub: RunningHub) -> None:
    """A body without Content-Length (left to Litestar) and one that arrives in several
    parts (read by the webhook's own reader) are both verified and stored."""
    chunked = body(text(user_id(1), "chunked"))

    async def parts() -> AsyncIterator[bytes]:
        yield chunked[:10]
        yield chunked[10:]

    response = await hub.http.post("/webhooks/line", content=parts(), headers=headers(chunked))
    assert response.status_code == 200 and response.json()["events"] == 1
    large = body(text(user_id(2), "長" * 200_000))  # 600 kB: several ASGI messages
    response = await hub.http.post("/webhooks/line", content=large, headers=headers(large))
    assert response.status_code == 200 and response.json()["events"] == 1
    assert response.headers["x-content-type-options"] == "nosniff"
    assert sorted(len(item.text) for item in await items(hub.services)) == [7, 200_000]


_FIXTURE = (FIXTURES / "events" / "message-text-user.json").read_bytes()


@hypothesis_settings(max_examples=200, deadline=None)
@given(position=st.integers(0, len(_FIXTURE) - 1), flip=st.integers(1, 255))
def test_any_tampered_byte_is_refused(position: int, flip: int) -> None:
    """One changed byte anywhere in a signed body: refused before anything is parsed."""
    from linebot.v3 import WebhookParser

    signature = headers(_FIXTURE)["X-Line-Signature"]
    tampered = bytearray(_FIXTURE)
    tampered[position] ^= flip
    with pytest.raises(BadSignature):
        parse(WebhookParser(SECRET), SECRET, bytes(tampered), signature)
    assert parse(WebhookParser(SECRET), SECRET, _FIXTURE, signature)


@given(st.text(min_size=1, max_size=40))
def test_a_forged_signature_is_refused(forged: str) -> None:
    from linebot.v3 import WebhookParser

    if forged == headers(_FIXTURE)["X-Line-Signature"]:
        return
    with pytest.raises(BadSignature):
        parse(WebhookParser(SECRET), SECRET, _FIXTURE, forged)


# --- events ---------------------------------------------------------------------------

async def test_redelivery_is_stored_once(services: Services) -> None:
    first = text(user_id(1), "返品したい")
    again = {**first, "deliveryContext": {"isRedelivery": True}}
    await receive(services, body(first))
    await receive(services, body(again))
    await receive(services, body(first, again))
    assert [i.text for i in await items(services)] == ["返品したい"]


async def test_batch_of_three_users_makes_three_tickets(services: Services) -> None:
    users = [user_id(n) for n in (1, 2, 3)]
    raw = body(*[text(u, f"質問 {n}") for n, u in enumerate(users)],
               text(users[0], "追加の質問"))
    await receive(services, raw)
    async with services.sessions() as session:
        rows = (await session.execute(
            select(Identity.value, TimelineItem.text, TimelineItem.conversation_id)
            .join(TimelineItem, TimelineItem.identity_id == Identity.id)
            .order_by(TimelineItem.id))).all()
        tickets = await session.scalar(select(func.count()).select_from(Conversation))
    assert tickets == 3
    by_ticket: dict[int, set[str]] = {}
    for value, _, conversation_id in rows:
        by_ticket.setdefault(conversation_id, set()).add(value)
    assert all(len(values) == 1 for values in by_ticket.values())  # one user per ticket
    assert [t for v, t, _ in rows if v == users[0]] == ["質問 0", "追加の質問"]


async def test_each_users_events_in_timestamp_order(services: Services) -> None:
    user, start = user_id(5), now_ms()
    late = text(user, "三番目", timestamp=start + 2)
    early = text(user, "一番目", timestamp=start)
    middle = text(user, "二番目", timestamp=start + 1)
    await receive(services, body(late, early, middle))
    assert [i.text for i in await items(services)] == ["一番目", "二番目", "三番目"]


async def test_unfollow_marks_unreachable_until_the_user_writes(services: Services) -> None:
    user = user_id(7)
    await receive(services, body(text(user, "こんにちは")))
    for _ in range(2):  # LINE may redeliver it: noted once
        await receive(services, body(event("unfollow", user, reply_token=None)))
    async with services.sessions() as session:
        identity = (await session.execute(select(Identity))).scalar_one()
        assert identity.reachable is False
    notes = [i.data.get("event") for i in await items(services) if i.kind == "system"]
    assert notes == ["line_blocked"]  # the agent sees it in the open ticket
    await receive(services, body(event("follow", user, follow={"isUnblocked": True})))
    async with services.sessions() as session:
        identity = (await session.execute(select(Identity))).scalar_one()
        assert identity.reachable is True


async def test_unsend_marks_the_message_and_keeps_it(services: Services) -> None:
    user, other = user_id(8), user_id(9)
    await receive(services, body(text(user, "間違えました", message_id="555"),
                                 text(other, "別の人", message_id="556")))
    await receive(services, body(event("unsend", other, reply_token=None,
                                       unsend={"messageId": "555"})))  # not theirs
    await receive(services, body(event("unsend", user, reply_token=None,
                                       unsend={"messageId": "555"})))
    taken_back = {i.text: i.data.get("unsent") for i in await items(services)}
    assert taken_back == {"間違えました": True, "別の人": None}


async def test_unknown_types_are_kept_as_unsupported(services: Services) -> None:
    user = user_id(10)
    await receive(services, body(
        event("somethingNew", user, something={"x": 1}),
        event("message", user, message={"id": "77", "type": "hologram"})))
    assert [i.data["unsupported"] for i in await items(services)] == [
        "somethingNew", "message/hologram"]


async def test_media_download_failure_is_retried_then_shown(services: Services,
                                                            fake_line: FakeLine) -> None:
    channel = line(services)
    channel.media_retries = (0.0, 0.0)
    fake_line.content["901"] = (b"\x89PNG\r\n\x1a\n...", "image/png")
    fake_line.script("/v2/bot/message/901/content", (500, {"message": "busy"}))
    fake_line.content["902"] = fake_line.content["903"] = (b"....ftypmp4", "video/mp4")
    fake_line.script("/v2/bot/message/902/content", *[(500, {"message": "down"})] * 3)
    fake_line.script("/v2/bot/message/903/content/transcoding",
                     *[(200, {"status": "processing"})] * 3)
    user = user_id(11)
    await receive(services, body(*[
        event("message", user, message={"id": mid, "type": kind, "duration": 1000,
                                         "contentProvider": {"type": "line"}})
        for mid, kind in (("901", "image"), ("902", "video"), ("903", "audio"))]))
    await channel.drain()
    stored, broken, unready = await items(services)
    assert stored.data["media"]["status"] == "stored"
    assert stored.attachments[0]["content_type"] == "image/png"
    assert broken.data["media"] == {**broken.data["media"], "status": "failed",
                                    "reason": "LINE 500: down"}
    assert len(fake_line.to("/v2/bot/message/902/content")) == 3
    assert unready.data["media"]["reason"] == "transcoding processing"
    assert fake_line.to("/v2/bot/message/903/content") == []


async def test_oversized_media_is_not_downloaded(services: Services,
                                                 fake_line: FakeLine) -> None:
    await receive(services, body(event("message", user_id(12), message={
        "id": "903", "type": "file", "fileName": "big.zip", "fileSize": 10**9})))
    await line(services).drain()
    [item] = await items(services)
    assert item.data["media"]["status"] == "failed"
    assert "larger than" in item.data["media"]["reason"]
    assert fake_line.to("/v2/bot/message/903/content") == []


async def test_downloads_left_by_a_previous_run_are_resumed(services: Services,
                                                           fake_line: FakeLine) -> None:
    from channels.base import Inbound

    fake_line.content["904"] = (b"GIF89a...", "image/gif")
    media = {"type": "image", "provider": "line", "message_id": "904", "status": "pending"}
    earlier = await services.ingestor.ingest(Inbound(
        channel="line", identity_kind="line", identity_value=user_id(13), external_id="old-1",
        data={"media": media, "line_message_id": "904"}, occurred_at=None))
    restarted = LineChannel(services)  # a new process: it never started that download
    raw = body(text(user_id(14), "別件"))
    await restarted.receive(raw, headers(raw)["X-Line-Signature"])
    await restarted.stop()
    async with services.sessions() as session:
        item = await session.get(TimelineItem, earlier.item.id)
    assert item is not None and item.data["media"]["status"] == "stored"
    assert item.attachments[0]["content_type"] == "image/gif"
