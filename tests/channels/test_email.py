"""E-mail end to end: stdlib smtplib → the built-in SMTP server → tickets; agent replies →
the relay (a loopback aiosmtpd sink); threading, bounces, loops, the webhook."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from email.header import Header
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from channels.email import EmailChannel
from channels.email.parse import parse_message
from hub import events
from hub.models import Identity, OutboxItem, TimelineItem
from hub.services import Services
from hub.settings import Settings
from tests.conftest import RunningHub
from tests.fakes.smtp_sink import SmtpSink

SUPPORT = "support@example.com"
TOKEN = "hook-token-" + "y" * 20
CRLF = compat32.clone(linesep="\r\n")


def email_settings(database_url: str, tmp_path: Path, sink: SmtpSink) -> Settings:
    return Settings(database_url=database_url, secret_key="test-secret-" + "x" * 32,
                    data_dir=str(tmp_path / "data"), smtp_listen="127.0.0.1:0",
                    smtp_relay=sink.address, support_address=SUPPORT,
                    email_webhook_token=TOKEN)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, sink: SmtpSink) -> Settings:
    return email_settings(database_url, tmp_path, sink)


def make_mail(subject: str = "注文した商品について", body: str = "商品がまだ届きません。",
              sender: str = "Taro Yamada <Taro@Example.JP>", charset: str = "iso-2022-jp",
              message_id: str | None = None, in_reply_to: str | None = None,
              extra: dict[str, str] | None = None) -> tuple[bytes, str]:
    message = MIMEText(body, "plain", charset)
    message["Subject"] = Header(subject, charset)  # type: ignore[assignment]
    message["From"] = sender
    message["To"] = SUPPORT
    message_id = message_id or make_msgid(domain="example.jp")
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for name, value in (extra or {}).items():
        message[name] = value
    return message.as_bytes(policy=CRLF), message_id


@pytest.fixture
async def listening(services: Services) -> AsyncIterator[Services]:
    """The hub's services with the e-mail channel's SMTP listener running (no HTTP)."""
    channel = services.adapters["email"]
    assert isinstance(channel, EmailChannel)
    await channel.start()
    yield services
    await channel.stop()


def smtp_port(services: Services) -> int:
    channel = services.adapters["email"]
    assert isinstance(channel, EmailChannel) and channel.smtp is not None
    return channel.smtp.port


async def smtp_send(port: int, raw: bytes, sender: str = "taro@example.jp",
                    recipients: tuple[str, ...] = (SUPPORT,)) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            return client.sendmail(sender, list(recipients), raw)

    return await asyncio.to_thread(run)


async def item_for(services: Services, message_id: str) -> TimelineItem | None:
    async with services.sessions() as session:
        return (await session.execute(select(TimelineItem).where(
            TimelineItem.channel == "email",
            TimelineItem.external_id == message_id))).scalar_one_or_none()


async def email_identity(services: Services, address: str) -> Identity | None:
    async with services.sessions() as session:
        return (await session.execute(select(Identity).where(
            Identity.kind == "email", Identity.value == address))).scalar_one_or_none()


async def count_items(services: Services, **where: Any) -> int:
    async with services.sessions() as session:
        query = select(func.count()).select_from(TimelineItem).filter_by(**where)
        return int((await session.execute(query)).scalar_one())


class Updates:
    """Message updates from the bus, to wait on an item's delivery outcome."""

    def __init__(self, services: Services) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        services.bus.subscribe(self._on_event)

    async def _on_event(self, event: events.Event) -> None:
        if event.name == events.MESSAGE_UPDATED:
            await self.queue.put(event.payload)

    async def until(self, item_id: int, status: str | None = None,
                    within: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                payload = await self.queue.get()
                if payload["id"] == item_id and status in (None, payload["delivery_status"]):
                    return payload


_TOKENS: dict[tuple[str, int], str] = {}


async def token_for(hub: RunningHub) -> str:
    """Log in once per hub: argon2 is slow on purpose."""
    key = (hub.url, id(hub.services))
    if key not in _TOKENS:
        _TOKENS.clear()
        _TOKENS[key] = await hub.login()
    return _TOKENS[key]


async def agent_reply(hub: RunningHub, conversation_id: int, text: str,
                      channel: str | None = "email") -> dict[str, Any]:
    token = await token_for(hub)
    body: dict[str, Any] = {"text": text, **({"channel": channel} if channel else {})}
    response = await hub.api("POST", f"/api/conversations/{conversation_id}/messages", token,
                             json=body)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def timeline(hub: RunningHub, conversation_id: int) -> list[dict[str, Any]]:
    token = await token_for(hub)
    response = await hub.api("GET", f"/api/conversations/{conversation_id}", token)
    assert response.status_code == 200, response.text
    return list(response.json()["timeline"])


# --- the built-in SMTP server ------------------------------------------------------


async def test_japanese_mail_over_smtp_round_trips_exactly(hub: RunningHub) -> None:
    raw, message_id = make_mail(subject="【至急】注文番号１２３の件",
                                body="商品がまだ届きません。\n確認をお願いします。")
    refused = await smtp_send(smtp_port(hub.services), raw, sender="bounce@elsewhere.example")
    assert refused == {}
    item = await item_for(hub.services, message_id)  # 250 came after the commit
    assert item is not None
    assert item.text == "商品がまだ届きません。\n確認をお願いします。"
    assert item.data["subject"] == "【至急】注文番号１２３の件"
    [shown] = [i for i in await timeline(hub, item.conversation_id) if i["id"] == item.id]
    assert shown["text"] == item.text and shown["channel"] == "email"
    async with hub.services.sessions() as session:  # the header From is the customer
        identity = await session.get(Identity, item.identity_id)
    assert identity is not None and identity.value == "taro@example.jp"
    raw_file = await hub.http.get(item.data["raw"]["url"])
    assert raw_file.content.strip() == raw.strip()


async def test_other_recipients_are_refused_with_550(listening: Services) -> None:
    raw, _ = make_mail()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await smtp_send(smtp_port(listening), raw, recipients=("sales@example.com",))
    assert refused.value.recipients["sales@example.com"][0] == 550
    mixed = await smtp_send(smtp_port(listening), raw,
                            recipients=("SUPPORT@example.com", "sales@example.com"))
    assert mixed["sales@example.com"][0] == 550
    assert await count_items(listening, channel="email") == 1


async def test_oversized_mail_is_refused_with_552(listening: Services) -> None:
    def announce_size() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", smtp_port(listening), timeout=10) as client:
            client.ehlo()
            return client.mail("taro@example.jp", [f"SIZE={25 * 1024 * 1024 + 1}"])

    code, _ = await asyncio.to_thread(announce_size)
    assert code == 552


async def test_mail_over_the_limit_in_data_is_refused_with_552(services: Services) -> None:
    from channels.email.smtp import SmtpListener

    stored: list[bytes] = []

    async def deliver(raw: bytes, _: str | None) -> None:
        stored.append(raw)

    listener = SmtpListener("127.0.0.1", 0, [SUPPORT], deliver, "example.com", max_bytes=2000)
    await listener.start()
    try:
        raw, _ = make_mail(body=("long line " * 7 + "\n") * 100, charset="us-ascii")
        with pytest.raises(smtplib.SMTPDataError) as error:
            await asyncio.to_thread(_send_without_size, listener.port, raw)
        assert error.value.smtp_code == 552 and stored == []
    finally:
        await listener.stop()


def _send_without_size(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.helo()  # plain HELO: no SIZE announced, so the limit bites during DATA
        client.sendmail("taro@example.jp", [SUPPORT], raw)


async def test_a_redelivered_message_is_stored_once(listening: Services) -> None:
    raw, message_id = make_mail()
    port = smtp_port(listening)
    await smtp_send(port, raw)
    await smtp_send(port, raw)
    channel = listening.adapters["email"]
    assert (await channel.receive(raw)).outcome == "duplicate"  # type: ignore[attr-defined]
    assert await count_items(listening, channel="email", external_id=message_id) == 1


async def test_storage_failure_answers_451_so_the_sender_retries(listening: Services,
                                                                 monkeypatch: Any) -> None:
    async def broken(*_: Any) -> None:
        raise RuntimeError("database is down")

    monkeypatch.setattr(listening.ingestor, "ingest", broken)
    raw, _ = make_mail()
    with pytest.raises(smtplib.SMTPDataError) as error:
        await smtp_send(smtp_port(listening), raw)
    assert error.value.smtp_code == 451


# --- threading ---------------------------------------------------------------------


async def test_three_mail_thread_is_one_ticket_showing_only_new_text(
        hub: RunningHub, sink: SmtpSink) -> None:
    port = smtp_port(hub.services)
    first, first_id = make_mail(subject="返品について", body="返品したいです。")
    await smtp_send(port, first)
    item = await item_for(hub.services, first_id)
    assert item is not None
    updates = Updates(hub.services)
    reply = await agent_reply(hub, item.conversation_id,
                              "山田様\n承知しました。返品用の伝票をお送りします。")
    sent = parse_message((await sink.next()).raw)
    assert (await updates.until(reply["id"], "sent"))["delivery_status"] == "sent"
    assert sent.subject == f"Re: 返品について [#{item.conversation_id}]"
    assert sent.in_reply_to == first_id and sent.references == [first_id]
    assert sent.from_address == SUPPORT and sent.to == ["taro@example.jp"]
    assert sent.text == "山田様\n承知しました。返品用の伝票をお送りします。"
    assert sent.message_id and hub.services.adapters["email"].own.item_of(  # type: ignore[attr-defined]
        sent.message_id) == reply["id"]
    quoted = "\n".join(f"> {line}" for line in sent.text.split("\n"))
    body = (f"ありがとうございます。伝票を待っています。\n\n"
            f"2026年11月22日(日) 10:00 サポート <{SUPPORT}>:\n{quoted}\n")
    third, third_id = make_mail(subject=f"Re: {sent.subject}", body=body,
                                in_reply_to=sent.message_id)
    await smtp_send(port, third)
    answer = await item_for(hub.services, third_id)
    assert answer is not None and answer.conversation_id == item.conversation_id
    assert answer.text == "ありがとうございます。伝票を待っています。"
    assert answer.data["folded"] is True and quoted in answer.data["full_text"]
    shown = await timeline(hub, item.conversation_id)
    assert [i["direction"] for i in shown if i["type"] == "message"] == ["in", "out", "in"]


async def test_forged_in_reply_to_does_not_let_a_stranger_in(listening: Services,
                                                             sink: SmtpSink) -> None:
    port = smtp_port(listening)
    raw, first_id = make_mail()
    await smtp_send(port, raw)
    victim = await item_for(listening, first_id)
    assert victim is not None
    reply = await listening.tickets.reply(victim.conversation_id, "ご連絡ありがとうございます。",
                                          agent_id=None, channel="email")
    ours = parse_message((await sink.next()).raw).message_id
    assert ours is not None and reply.id
    forged, forged_id = make_mail(sender="mallory@evil.example", in_reply_to=ours,
                                  subject=f"Re: [#{victim.conversation_id}]")
    await smtp_send(port, forged)
    stranger = await item_for(listening, forged_id)
    assert stranger is not None
    assert stranger.conversation_id != victim.conversation_id
    assert stranger.data["thread_refused"] == victim.conversation_id


async def test_threading_hint_names_our_message_then_the_subject_tag(
        services: Services) -> None:
    channel = services.adapters["email"]
    assert isinstance(channel, EmailChannel)
    raw, _ = make_mail()
    stored = await channel.receive(raw)
    assert stored.conversation_id is not None
    tagged, _ = make_mail(subject=f"Re: 件名 [#{stored.conversation_id}]")
    async with services.sessions() as session:
        hint = await channel.receiver.thread_hint(session, parse_message(tagged),
                                                  "taro@example.jp")
        assert hint == (stored.conversation_id, None)
        missing, _ = make_mail(subject="Re: [#999999]")
        assert await channel.receiver.thread_hint(session, parse_message(missing),
                                                  "taro@example.jp") == (None, None)


async def _resolved_ticket(services: Services) -> tuple[EmailChannel, int]:
    """A customer's first mail, whose ticket an agent has resolved."""
    channel = services.adapters["email"]
    assert isinstance(channel, EmailChannel)
    first = await channel.receive(make_mail(subject="一件目")[0])
    assert first.conversation_id is not None
    await services.tickets.update(first.conversation_id, agent_id=None,
                                  changes={"status": "resolved"})
    return channel, first.conversation_id


async def test_subject_tag_reopens_the_named_ticket_not_the_newest(
        services: Services) -> None:
    from hub.models import Conversation

    channel, first_id = await _resolved_ticket(services)
    async with services.sessions() as session, session.begin():
        old = await session.get(Conversation, first_id)
        assert old is not None
        newest = Conversation(customer_id=old.customer_id, last_channel="email")
        session.add(newest)  # e.g. a ticket an agent opened for this customer since
        await session.flush()
        newest_id = newest.id
    tagged = await channel.receive(make_mail(subject=f"Re: [#{first_id}]")[0])
    assert tagged.conversation_id == first_id
    untagged = await channel.receive(make_mail(subject="別件です")[0])
    assert untagged.conversation_id in {first_id, newest_id}


async def test_subject_tag_of_a_long_closed_ticket_opens_a_follow_up(
        services: Services) -> None:
    from hub.models import Conversation

    channel, first_id = await _resolved_ticket(services)
    async with services.sessions() as session, session.begin():
        conversation = await session.get(Conversation, first_id)
        assert conversation is not None and conversation.resolved_at is not None
        conversation.resolved_at = conversation.resolved_at.replace(year=2000)
    tagged = await channel.receive(make_mail(subject=f"Re: [#{first_id}]")[0])
    assert tagged.conversation_id not in {None, first_id}


async def test_web_chat_customer_gets_the_reply_by_mail_and_answers_into_the_ticket(
        hub: RunningHub, sink: SmtpSink) -> None:
    from channels.base import Inbound

    web = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="visitor-1",
        text="メールで返事をください: Hanako@Example.JP"))
    given = await email_identity(hub.services, "hanako@example.jp")
    assert given is not None and given.customer_id == web.customer.id
    assert given.verified is False  # typed in chat: anyone can type any address
    await agent_reply(hub, web.conversation.id, "花子様、ご連絡ありがとうございます。")  # type: ignore[arg-type]
    sent = parse_message((await sink.next()).raw)
    assert sent.to == ["hanako@example.jp"] and sent.in_reply_to is None
    assert f"[#{web.conversation.id}]" in sent.subject
    answer, answer_id = make_mail(sender="Hanako <hanako@example.jp>", body="了解です。",
                                  subject=f"Re: {sent.subject}", in_reply_to=sent.message_id)
    await smtp_send(smtp_port(hub.services), answer)
    item = await item_for(hub.services, answer_id)
    assert item is not None and item.conversation_id == web.conversation.id
    proven = await email_identity(hub.services, "hanako@example.jp")  # our Message-ID proves it
    assert proven is not None and proven.verified and proven.customer_id == web.customer.id


# --- outbound: relay outcomes, attachments, injection -------------------------------


async def test_permanent_and_temporary_relay_failures(listening: Services,
                                                      sink: SmtpSink) -> None:
    raw, first_id = make_mail(sender="gone@example.jp")
    await smtp_send(smtp_port(listening), raw)
    item = await item_for(listening, first_id)
    assert item is not None
    updates = Updates(listening)
    sink.refuse["gone@example.jp"] = "550 5.1.1 no such user"
    failed = await listening.tickets.reply(item.conversation_id, "permanent", agent_id=None)
    result = await updates.until(failed.id, "failed")
    assert result["error"].startswith("550") and "no such user" in result["error"]
    sink.refuse["gone@example.jp"] = "451 4.3.0 try later"
    later = await listening.tickets.reply(item.conversation_id, "temporary", agent_id=None)
    result = await updates.until(later.id)
    assert result["delivery_status"] == "queued" and result["error"].startswith("451")
    async with listening.sessions() as session:
        row = (await session.execute(select(OutboxItem).where(
            OutboxItem.item_id == later.id))).scalar_one()
    assert row.status == "pending" and row.attempts == 1


async def test_unreachable_relay_is_retried(services: Services, sink: SmtpSink) -> None:
    channel = services.adapters["email"]
    assert isinstance(channel, EmailChannel)
    await sink.stop()
    from channels.base import Outbound

    result = await channel.send(Outbound(item_id=1, conversation_id=1, channel="email",
                                         recipient="taro@example.jp", text="hi",
                                         sender_type="agent"))
    assert not result.ok and result.retryable


async def test_header_injection_in_a_subject_stays_in_the_subject(
        services: Services, sink: SmtpSink) -> None:
    channel = services.adapters["email"]
    assert isinstance(channel, EmailChannel)
    stored = await channel.receive(make_mail()[0])
    assert stored.conversation_id is not None
    await services.tickets.reply(stored.conversation_id, "本文", agent_id=None,
                                 channel="email",
                                 data={"subject": "見積\r\nBcc: victim@example.org\r\n\r\nx"})
    sent = await sink.next()
    assert sent.recipients == ("taro@example.jp",)
    head = sent.raw.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in head and b"victim" not in head.split(b"Subject:")[0]
    assert parse_message(sent.raw).subject == (
        f"見積 Bcc: victim@example.org x [#{stored.conversation_id}]")


async def test_iso_2022_jp_can_be_chosen_for_legacy_clients(services: Services,
                                                            sink: SmtpSink) -> None:
    services.settings = services.settings.with_changes(email_charset="iso-2022-jp")
    channel = services.adapters["email"]
    assert isinstance(channel, EmailChannel)
    stored = await channel.receive(make_mail()[0])
    assert stored.conversation_id is not None
    await services.tickets.reply(stored.conversation_id, "ご返信いたします。", agent_id=None,
                                 channel="email")
    raw = (await sink.next()).raw
    assert b'charset="iso-2022-jp"' in raw and b"\x1b$B" in raw
    assert parse_message(raw).text == "ご返信いたします。"


async def test_attachments_in_and_out(listening: Services, sink: SmtpSink) -> None:
    from email.mime.application import MIMEApplication
    from email.mime.multipart import MIMEMultipart

    message = MIMEMultipart()
    message["From"], message["To"], message["Subject"] = "taro@example.jp", SUPPORT, "写真"
    message["Message-ID"] = "<with-file@example.jp>"
    message.attach(MIMEText("写真を送ります", "plain", "utf-8"))
    photo = MIMEApplication(b"\x89PNG\r\n\x1a\nfake", "png")
    photo.add_header("Content-Disposition", "attachment", filename=("utf-8", "", "写真.png"))
    message.attach(photo)
    await smtp_send(smtp_port(listening), message.as_bytes(policy=CRLF))
    item = await item_for(listening, "<with-file@example.jp>")
    assert item is not None and item.text == "写真を送ります"
    [attachment] = item.attachments
    assert attachment["name"] == "写真.png" and attachment["size"] == 12
    path = listening.files.path_for(attachment["id"], attachment["name"])
    assert path is not None and path.read_bytes() == b"\x89PNG\r\n\x1a\nfake"
    saved = listening.files.save("見積書.pdf", b"%PDF-1.4 fake", "application/pdf")
    from channels.base import Outbound

    channel = listening.adapters["email"]
    result = await channel.send(Outbound(
        item_id=10_000, conversation_id=item.conversation_id, channel="email",
        recipient="taro@example.jp", text="見積書です", sender_type="agent",
        attachments=(saved.as_dict(),)))
    assert result.ok and result.external_id
    sent = parse_message((await sink.next()).raw)
    assert sent.text == "見積書です" and sent.in_reply_to == "<with-file@example.jp>"
    assert [(a.name, a.data) for a in sent.attachments] == [("見積書.pdf", b"%PDF-1.4 fake")]


async def test_after_an_unmerge_a_reply_goes_out_on_a_channel_that_reaches_the_customer(
        services: Services, sink: SmtpSink) -> None:
    """A chat visitor merged into a mail customer wrote into the mail ticket, then the merge
    was undone: the ticket's last channel (web) left with the visitor, so a reply without
    a channel goes by e-mail, the channel this customer wrote on before."""
    from channels.base import Inbound
    from hub.identity import merge_customers, unmerge_customers

    channel = services.adapters["email"]
    assert isinstance(channel, EmailChannel)
    stored = await channel.receive(make_mail()[0])
    assert stored.conversation_id is not None
    chat = await services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="visitor-1", text="チャットです"))
    mailer = await _customer_of(services, stored.conversation_id)
    visitor = chat.customer.id
    async with services.sessions() as session, session.begin():
        await merge_customers(session, mailer, visitor, None)
    joined = await services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="visitor-1", text="続きです"))
    assert joined.conversation.id == stored.conversation_id  # last channel: web
    async with services.sessions() as session, session.begin():
        await unmerge_customers(session, mailer, None, visitor)

    reply = await services.tickets.reply(stored.conversation_id, "メールでお返事します。",
                                         agent_id=None)
    assert reply.channel == "email"
    sent = await sink.next()
    assert sent.recipients == ("taro@example.jp",)


async def _customer_of(services: Services, conversation_id: int) -> int:
    from hub.models import Conversation

    async with services.sessions() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation.customer_id
