"""Every real LINE webhook body in ../shared/fixtures/line, re-signed with the test secret,
through the LINE adapter into a fresh database: each lands where it should.

SQLite only (one fresh database per fixture keeps this fast); the behaviour tests in
test_line.py run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from linebot.v3 import WebhookParser
from sqlalchemy import select

from channels.line import LineChannel
from channels.line.parse import parse
from hub.models import Customer, Identity, TimelineItem
from hub.services import Services
from hub.settings import Settings
from tests.fakes.line_api import PUSH, FakeLine, line_settings, start_fake_line
from tests.fakes.line_webhook import FIXTURES, SECRET, fixture_files, headers

FIXTURE_USER = "U206d25c2ea6bd87c17655609a1c37cb8"
LEGACY_USER = "u206d25c2ea6bd87c17655609a1c37cb8"


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    target = tmp_path / "omohub.db"
    target.write_bytes(sqlite_template.read_bytes())
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
async def fake_line() -> AsyncIterator[FakeLine]:
    fake, runner = await start_fake_line()
    fake.profiles[FIXTURE_USER] = {"userId": FIXTURE_USER, "displayName": "ブラウン",
                                   "pictureUrl": "https://example.com/brown.png",
                                   "language": "ja"}
    fake.content["354718705033693861"] = (b"\xff\xd8\xff\xe0 fake jpeg", "image/jpeg")
    fake.content["325708"] = (b"%PDF-1.4 fake", "application/pdf")
    yield fake
    await runner.cleanup()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, fake_line: FakeLine) -> Settings:
    return line_settings(database_url, tmp_path, fake_line)


async def deliver(services: Services, raw: bytes) -> list[TimelineItem]:
    channel = services.adapters["line"]
    assert isinstance(channel, LineChannel)
    channel.media_retries = (0.0, 0.0)
    await channel.receive(raw, headers(raw)["X-Line-Signature"])
    await channel.drain()
    async with services.sessions() as session:
        return list((await session.execute(
            select(TimelineItem).where(TimelineItem.direction == "in")
            .order_by(TimelineItem.id))).scalars())


def only(items: list[TimelineItem]) -> TimelineItem:
    assert len(items) == 1, [(i.kind, i.data) for i in items]
    return items[0]


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


async def test_text_from_a_user(services: Services) -> None:
    item = only(await deliver(services, read("events/message-text-user.json")))
    assert item.text == "Hello, world" and item.channel == "line"
    assert item.external_id == "testwebhookeventid"
    assert item.data["line_message_id"] == "325708" and item.data["quote_token"] == "quoteToken"
    assert item.data["reply_token"] == "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA"
    async with services.sessions() as session:
        identity = (await session.execute(select(Identity))).scalar_one()
        customer = await session.get(Customer, identity.customer_id)
    assert (identity.kind, identity.value) == ("line", FIXTURE_USER)
    assert customer is not None and customer.display_name == "ブラウン"  # from the profile


@pytest.mark.parametrize("name", ["events/message-text-group.json",
                                  "events/message-image-external-room.json",
                                  "events/memberjoined.json", "events/unsend.json"])
async def test_group_and_room_events_are_acknowledged_not_stored(
        services: Services, name: str) -> None:
    assert await deliver(services, read(name)) == []


async def test_image_from_an_image_set_is_downloaded(services: Services) -> None:
    item = only(await deliver(services, read("events/message-image-line-imageset.json")))
    media = item.data["media"]
    assert media["status"] == "stored" and media["image_set"]["total"] == 2
    [attachment] = item.attachments
    assert attachment["content_type"] == "image/jpeg" and attachment["size"] == 14
    key, name = attachment["url"].split("/")[2:4]
    path = services.files.path_for(key, name)
    assert path is not None and path.read_bytes().startswith(b"\xff\xd8\xff")


async def test_file_keeps_its_name(services: Services) -> None:
    item = only(await deliver(services, read("events/message-file.json")))
    assert item.data["media"]["file_name"] == "file.txt"
    assert item.attachments[0]["name"] == "file.txt"


async def test_sticker_keeps_ids_and_keywords(services: Services) -> None:
    item = only(await deliver(services, read("events/message-sticker.json")))
    sticker = item.data["sticker"]
    assert sticker["packageId"] == "1" and sticker["stickerId"] == "1"
    assert sticker["keywords"] == ["Love You", "Love"] and item.text == "Just sticker"


async def test_location_has_a_map_link(services: Services) -> None:
    item = only(await deliver(services, read("events/message-location.json")))
    location = item.data["location"]
    assert location["address"] in item.text
    assert location["map_url"].startswith("https://www.google.com/maps/")


async def test_postback_keeps_data_and_params(services: Services) -> None:
    item = only(await deliver(services, read("events/postback-datetime.json")))
    assert item.data["postback"]["params"]["datetime"]
    assert item.text == item.data["postback"]["data"]


async def test_follow_names_the_customer_and_greets(services: Services,
                                                    fake_line: FakeLine) -> None:
    item = only(await deliver(services, read("events/follow.json")))
    assert item.kind == "system" and item.data["event"] == "line_followed"
    await fake_line.wait_for(lambda f: len(f.deliveries) == 1)
    [greeting] = fake_line.deliveries
    assert greeting.path == PUSH  # the fixture's 2016 reply token is long expired
    assert "友だち追加" in greeting.texts[0]
    async with services.sessions() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    assert customer.display_name == "ブラウン"
    assert customer.attributes["line_profile"]["picture_url"].endswith("brown.png")


async def test_a_profile_body_the_sdk_refuses_still_greets(services: Services,
                                                           fake_line: FakeLine) -> None:
    fake_line.profiles[FIXTURE_USER] = {"language": "ja"}  # LINE always sends a name
    await deliver(services, read("events/follow.json"))
    await fake_line.wait_for(lambda f: len(f.deliveries) == 1)
    assert "友だち追加" in fake_line.deliveries[0].texts[0]
    async with services.sessions() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    assert customer.attributes["placeholder_name"] is True


async def test_unfollow_of_a_stranger_stores_nothing(services: Services) -> None:
    assert await deliver(services, read("events/unfollow.json")) == []


async def test_account_link_with_an_unknown_nonce_joins_nobody(services: Services) -> None:
    item = only(await deliver(services, read("events/accountlink.json")))
    assert item.data["event"] == "line_account_link_failed"
    async with services.sessions() as session:
        customers = (await session.execute(select(Customer))).scalars().all()
    assert len(customers) == 1


async def test_redelivery_has_no_reply_token(services: Services) -> None:
    item = only(await deliver(services, read("events/message-text-redelivery.json")))
    assert item.data["redelivery"] is True and "reply_token" not in item.data


async def test_all_events_body_as_stored(services: Services) -> None:
    """All 28 events share one webhookEventId in this file: stored once, the rest deduped."""
    item = only(await deliver(services, read("python-v3-webhook-all-events.json")))
    assert item.text == "Hello, world"


async def test_all_events_with_distinct_ids(services: Services) -> None:
    raw = read("python-v3-webhook-all-events.json")
    parts = raw.split(b'"testwebhookeventid"')
    raw = b"".join(part + (f'"evt-{n}"'.encode() if n < len(parts) - 1 else b"")
                   for n, part in enumerate(parts))
    items = await deliver(services, raw)
    kinds: dict[str, Any] = {}
    for item in items:
        key = item.data.get("unsupported") or item.data.get("message_type") or \
            item.data["line_event"]
        kinds[key] = kinds.get(key, 0) + 1
    assert len(items) == 19, kinds
    assert {"beacon": 2, "videoPlayComplete": 1, "undefined": 1}.items() <= kinds.items()
    assert kinds["postback"] == 4 and kinds["text"] == 3  # incl. the edited one
    async with services.sessions() as session:
        identities = (await session.execute(select(Identity))).scalars().all()
    assert [i.value for i in identities] == [FIXTURE_USER]  # group/room senders got none
    assert {i.identity_id for i in items} == {identities[0].id}


@pytest.mark.parametrize("name", ["text-mention.json", "text-emojis.json", "location.json",
                                  "sticker-with-text.json", "account_link.json"])
async def test_legacy_bodies_are_mapped_leniently(services: Services, name: str) -> None:
    raw = read(f"legacy-java/{name}")
    item = only(await deliver(services, raw))
    assert item.data["lenient"] is True and item.external_id.startswith("sha256:")
    assert only(await deliver(services, raw)).id == item.id  # a redelivery dedupes
    async with services.sessions() as session:
        identity = (await session.execute(select(Identity))).scalar_one()
    assert identity.value in {LEGACY_USER, "U012345678901234567890123456789ab"}
    if name == "text-mention.json":
        assert [m["type"] for m in item.data["mention"]["mentionees"]] == ["user", "all"]
    if name == "text-emojis.json":
        assert item.data["emojis"][0]["productId"]
    if name == "location.json":
        assert "東京都渋谷区" in item.text


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: p.name)
def test_fast_shape_check_agrees_with_the_sdk_models(path: Path) -> None:
    """The webhook flags ``lenient`` without building pydantic models; on every fixture
    that matches what line-bot-sdk's own WebhookParser accepts or refuses."""
    raw = path.read_bytes()
    signature = headers(raw)["X-Line-Signature"]
    fast = parse(WebhookParser(SECRET), SECRET, raw, signature)
    strict = parse(WebhookParser(SECRET), SECRET, raw, signature, strict=True)
    assert fast == strict
    try:
        WebhookParser(SECRET).parse(raw.decode(), signature)
        sdk_ok = True
    except ValueError:
        sdk_ok = False
    assert sdk_ok == (not any(e.inbound and e.inbound.data.get("lenient") for e in fast))
