"""The inbound webhook, every fixture through the whole hub, bounces, and loop protection."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from channels.email import EmailChannel
from hub.models import Identity, TimelineItem
from hub.services import Services
from hub.settings import Settings
from tests.channels.test_email import (
    SUPPORT,
    TOKEN,
    Updates,
    agent_reply,
    count_items,
    email_settings,
    item_for,
    make_mail,
    timeline,
    token_for,
)
from tests.channels.test_email_parse import CORPUS, FIXTURES
from tests.conftest import RunningHub
from tests.fakes.smtp_sink import SmtpSink

AUTH = {"Authorization": f"Bearer {TOKEN}"}
OUTCOMES = {"stored", "duplicate", "bounce", "ignored"}


@pytest.fixture
def settings(database_url: str, tmp_path: Path, sink: SmtpSink) -> Settings:
    return email_settings(database_url, tmp_path, sink)


def email_of(services: Services) -> EmailChannel:
    channel = services.adapters["email"]
    assert isinstance(channel, EmailChannel)
    return channel


async def post(hub: RunningHub, raw: bytes, headers: dict[str, str] | None = None) -> Any:
    return await hub.http.post("/webhooks/email", content=raw,
                               headers=AUTH if headers is None else headers)


async def test_webhook_needs_the_bearer_token(hub: RunningHub) -> None:
    raw, message_id = make_mail()
    assert (await post(hub, raw, {})).status_code == 401
    wrong = await post(hub, raw, {"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    assert await item_for(hub.services, message_id) is None
    hub.services.settings = hub.services.settings.with_changes(email_webhook_token=None)
    off = await post(hub, raw)
    assert off.status_code == 404 and off.json()["error"]["code"] == "not_found"


async def test_webhook_stores_after_commit_and_answers_what_happened(hub: RunningHub) -> None:
    raw = (FIXTURES / "mimekit-japanese.eml").read_bytes()
    response = await post(hub, raw)
    assert response.status_code == 200
    body = response.json()
    assert body["outcome"] == "stored"
    assert body["message_id"] == "<55AE6D15.4010805@veritas-vos-liberabit.com>"
    item = await item_for(hub.services, body["message_id"])
    assert item is not None and item.conversation_id == body["conversation_id"]
    assert item.data["subject"] == "日本語メールテスト (testing Japanese emails)"
    assert (await post(hub, b"   ")).status_code == 400


async def test_every_fixture_and_cpython_sample_goes_through_the_hub(hub: RunningHub) -> None:
    samples = sorted(FIXTURES.glob("*.eml")) + CORPUS
    for start in range(0, len(samples), 8):  # a few at a time: group commit at work
        chunk = samples[start:start + 8]
        responses = await asyncio.gather(*(post(hub, p.read_bytes()) for p in chunk))
        for path, response in zip(chunk, responses, strict=True):
            assert response.status_code == 200, (path.name, response.text)
            assert response.json()["outcome"] in OUTCOMES, path.name
    stored = await count_items(hub.services, channel="email")
    assert stored >= len(samples) - 10  # a few samples share a Message-ID


async def test_no_message_id_gets_a_stable_one(services: Services) -> None:
    channel = email_of(services)
    raw = (FIXTURES / "mail-japanese_iso_2022.eml").read_bytes()
    first, second = await channel.receive(raw), await channel.receive(raw)
    assert (first.outcome, second.outcome) == ("stored", "duplicate")
    assert first.message_id == second.message_id
    item = await item_for(services, first.message_id)
    assert item is not None and item.text == "すみません。"


async def test_nul_bytes_and_control_characters_are_stored_on_every_backend(
        services: Services) -> None:
    raw = (b"From: =?utf-8?B?AEEA?= <nul@example.jp>\r\nSubject: a\x00b\x01c\r\n"
           b"Message-ID: <nul@example.jp>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           b"before\x00after\x07\r\n")
    assert (await email_of(services).receive(raw)).outcome == "stored"
    item = await item_for(services, "<nul@example.jp>")
    assert item is not None and item.text == "beforeafter"
    assert item.data["subject"] == "abc"


async def test_arbitrary_bytes_are_stored_raw_or_ingested_never_crash(hub: RunningHub) -> None:
    loop = asyncio.get_running_loop()
    mailish = st.builds(lambda head, body: head + b"\r\n\r\n" + body,
                        st.sampled_from([b"From: a@example.com", b"Subject: x", b"",
                                         b"Content-Type: multipart/mixed; boundary=q"]),
                        st.binary(max_size=400))

    @hypothesis_settings(max_examples=25, deadline=None,
                         suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(min_size=1, max_size=600), mailish))
    def check(raw: bytes) -> None:
        response = asyncio.run_coroutine_threadsafe(post(hub, raw), loop).result(30)
        if not raw.strip():
            assert response.status_code == 400
            return
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["outcome"] in OUTCOMES
        if body["outcome"] in {"stored", "duplicate"}:
            item = asyncio.run_coroutine_threadsafe(
                item_for(hub.services, body["message_id"]), loop).result(30)
            assert item is not None and item.data["raw"]["size"] == len(raw)
            assert isinstance(item.data["flags"], list)

    await asyncio.to_thread(check)


async def test_a_sender_address_too_long_to_be_an_identity_is_kept_as_unknown(
        services: Services) -> None:
    raw, message_id = make_mail(sender=f"{'a' * 400}@example.jp")
    assert (await email_of(services).receive(raw)).outcome == "stored"
    item = await item_for(services, message_id)
    assert item is not None and "unknown_sender" in item.data["flags"]


def senderless(message_id: str, sender: str | None) -> bytes:
    """A mail whose From header is ``sender`` (None: no From header at all)."""
    head = [*([f"From: {sender}"] if sender is not None else []), f"To: {SUPPORT}",
            "Subject: 問い合わせ", f"Message-ID: {message_id}", "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(head) + f"\r\n\r\n{message_id} の件です\r\n").encode()


async def test_mail_without_a_usable_sender_gets_an_unreachable_customer_of_its_own(
        hub: RunningHub, sink: SmtpSink) -> None:
    hub.services.settings = hub.services.settings.with_changes(email_auto_ack="受け付けました")
    mails = {f"<no-sender-{n}@example.jp>": sender
             for n, sender in enumerate([None, "nobody", "", "<>", "Taro Yamada"])}
    for message_id, sender in mails.items():
        assert (await post(hub, senderless(message_id, sender))).json()["outcome"] == "stored"
    first = next(iter(mails))
    again = (await post(hub, senderless(first, None))).json()
    assert again["outcome"] == "duplicate"

    identities: list[Identity] = []
    conversations: list[int] = []
    for message_id in mails:
        item = await item_for(hub.services, message_id)
        assert item is not None and "unknown_sender" in item.data["flags"]
        async with hub.services.sessions() as session:
            identity = await session.get(Identity, item.identity_id)
        assert identity is not None and identity.kind == "email"
        identities.append(identity)
        conversations.append(item.conversation_id)
    assert len({i.value for i in identities}) == len({i.customer_id for i in identities}) == 5
    assert len(set(conversations)) == 5
    assert await count_items(hub.services, channel="email") == 5  # each stored once, nothing lost

    token = await token_for(hub)
    for identity in identities:
        profile = (await hub.api("GET", f"/api/customers/{identity.customer_id}", token)).json()
        assert profile["identities"] == [{"kind": "email", "value": identity.value,
                                          "verified": False, "reachable": False}]
    assert await _acks(hub.services) == []

    updates = Updates(hub.services)
    reply = await agent_reply(hub, conversations[0], "ご連絡ありがとうございます")
    failed = await updates.until(reply["id"], "failed")
    assert "cannot receive mail" in failed["error"]
    assert sink.received.empty()


async def test_unparseable_mail_is_stored_raw_and_flagged(services: Services,
                                                          monkeypatch: Any) -> None:
    import channels.email.parse as parse

    class Exploding:
        def __init__(self, **_: Any) -> None:
            pass

        def parsebytes(self, _: bytes) -> None:
            raise RecursionError("parser gave up")

    monkeypatch.setattr(parse, "BytesParser", Exploding)
    raw, message_id = make_mail(subject="壊れたメール")
    received = await email_of(services).receive(raw)
    assert (received.outcome, received.message_id) == ("stored", message_id)
    item = await item_for(services, message_id)
    assert item is not None
    assert "unparseable" in item.data["flags"]
    assert [a["name"] for a in item.attachments] == ["message.eml"]
    assert item.data["subject"] == "壊れたメール"
    path = services.files.path_for(item.attachments[0]["id"], "message.eml")
    assert path is not None and path.read_bytes() == raw


# --- bounces -------------------------------------------------------------------------


def dsn(original_id: str, recipient: str = "taro@example.jp") -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.jp>\r\n"
        f"To: {SUPPORT}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-1@mx.example.jp>\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n配送できませんでした。\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.jp\r\n"
        f"\r\nFinal-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        f"\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {original_id}\r\n"
        f"From: {SUPPORT}\r\nSubject: Re: x\r\n\r\n--B--\r\n").encode()


async def _sent_reply(hub: RunningHub, sink: SmtpSink) -> tuple[int, str]:
    raw, message_id = make_mail()
    await post(hub, raw)
    item = await item_for(hub.services, message_id)
    assert item is not None
    updates = Updates(hub.services)
    reply = await agent_reply(hub, item.conversation_id, "お返事です")
    await sink.next()
    sent = await updates.until(reply["id"], "sent")
    channel = hub.services.adapters["email"]
    assert isinstance(channel, EmailChannel)
    return sent["conversation_id"], channel.own.make(reply["id"])


async def test_a_dsn_marks_our_message_failed_with_the_reason(hub: RunningHub,
                                                              sink: SmtpSink) -> None:
    conversation_id, ours = await _sent_reply(hub, sink)
    body = (await post(hub, dsn(ours))).json()
    assert body["outcome"] == "bounce" and "5.1.1" in body["reason"]
    [reply] = [i for i in await timeline(hub, conversation_id) if i["direction"] == "out"]
    assert reply["delivery_status"] == "failed"
    assert "550 5.1.1 user unknown" in reply["error"]
    assert await item_for(hub.services, "<dsn-1@mx.example.jp>") is None


async def test_a_plain_text_japanese_bounce_quoting_our_id_is_applied(
        hub: RunningHub, sink: SmtpSink) -> None:
    conversation_id, ours = await _sent_reply(hub, sink)
    raw = (FIXTURES / "sisimai-lhost-mfilter-01.eml").read_bytes()
    raw = raw.replace(b"<000000000000000@exmaple.com>", ours.encode())
    body = (await post(hub, raw)).json()
    assert body["outcome"] == "bounce"
    [reply] = [i for i in await timeline(hub, conversation_id) if i["direction"] == "out"]
    assert reply["delivery_status"] == "failed" and "550 unknown user" in reply["error"]


async def test_a_bounce_for_mail_we_never_sent_is_kept_for_a_human(services: Services) -> None:
    received = await email_of(services).receive(dsn("<someone-else@example.org>"))
    assert received.outcome == "stored"
    item = await item_for(services, "<dsn-1@mx.example.jp>")
    assert item is not None and item.data["automatic"].startswith("auto-submitted")


# --- loops ---------------------------------------------------------------------------


async def test_our_own_mail_coming_back_is_not_stored(services: Services) -> None:
    channel = email_of(services)
    echo, _ = make_mail(message_id=channel.own.make(42))
    assert (await channel.receive(echo)).outcome == "ignored"
    selfie, _ = make_mail(sender=f"Support <{SUPPORT.upper()}>")
    assert (await channel.receive(selfie)).outcome == "ignored"
    assert await count_items(services, channel="email") == 0


async def _acks(services: Services) -> list[TimelineItem]:
    async with services.sessions() as session:
        rows = await session.execute(select(TimelineItem).where(
            TimelineItem.direction == "out"))
        return [i for i in rows.scalars() if i.data.get("auto_ack")]


async def test_machine_mail_is_stored_but_never_acknowledged(services: Services) -> None:
    services.settings = services.settings.with_changes(email_auto_ack="受け付けました")
    channel = email_of(services)
    machine = [{"Auto-Submitted": "auto-replied"}, {"Precedence": "bulk"},
               {"List-Id": "<news.example>"}, {"X-Autoreply": "yes"}]
    for number, headers in enumerate(machine):
        raw, message_id = make_mail(extra=headers, sender=f"robot{number}@example.jp")
        assert (await channel.receive(raw)).outcome == "stored"
        item = await item_for(services, message_id)
        assert item is not None and item.data["automatic"], headers
    daemon, _ = make_mail(sender="MAILER-DAEMON@mx.example.jp")
    assert (await channel.receive(daemon)).outcome == "stored"
    assert await _acks(services) == []


async def test_one_acknowledgement_per_customer_per_hour(hub: RunningHub,
                                                         sink: SmtpSink) -> None:
    hub.services.settings = hub.services.settings.with_changes(
        email_auto_ack="お問い合わせを受け付けました。")
    for number in range(3):
        raw, _ = make_mail(subject=f"質問{number}")
        assert (await post(hub, raw)).json()["outcome"] == "stored"
    other, _ = make_mail(sender="hanako@example.jp")
    await post(hub, other)
    acks = await _acks(hub.services)
    assert len(acks) == 2 and len({a.conversation_id for a in acks}) == 2
    first, second = await sink.next(), await sink.next()
    for mail in (first, second):
        assert b"Auto-Submitted: auto-replied" in mail.raw
    assert {first.recipients, second.recipients} == {("taro@example.jp",),
                                                     ("hanako@example.jp",)}


def test_fixture_dir_exists() -> None:
    assert Path(FIXTURES).is_dir()


async def test_attachments_over_the_size_limit_are_skipped_and_noted(
        services: Services) -> None:
    from email.mime.application import MIMEApplication
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    from tests.channels.test_email import CRLF

    services.settings = services.settings.with_changes(max_upload_bytes=1000)
    message = MIMEMultipart()
    message["From"], message["Message-ID"] = "taro@example.jp", "<big@example.jp>"
    message.attach(MIMEText("大きいファイルです", "plain", "utf-8"))
    for name, size in (("small.bin", 10), ("big.bin", 5000)):
        part = MIMEApplication(bytes(size))
        part.add_header("Content-Disposition", "attachment", filename=name)
        message.attach(part)
    assert (await email_of(services).receive(message.as_bytes(policy=CRLF))).outcome == "stored"
    item = await item_for(services, "<big@example.jp>")
    assert item is not None and [a["name"] for a in item.attachments] == ["small.bin"]
    assert item.data["skipped_attachments"] == [
        {"name": "big.bin", "size": 5000, "reason": "too_large"}]
    assert item.data["raw"]["size"] > 5000  # the raw message keeps everything
