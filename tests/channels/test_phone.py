"""Phone and SMS through a running hub: signed Twilio webhooks in, TwiML out, calls,
recordings and transcripts in the caller's ticket, SMS through a loopback fake Twilio."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from channels.base import Inbound, Outbound
from channels.phone import SmsChannel, parse
from channels.phone.client import make_client
from hub import calls, events, links
from hub.models import Identity, TimelineItem
from hub.services import Services
from hub.settings import Settings
from tests.conftest import RunningHub
from tests.fakes.loopback import url_of
from tests.fakes.twilio_api import FAKE_AUDIO, FakeTwilio
from tests.fakes.twilio_webhook import (
    ACCOUNT,
    CALLER,
    PUBLIC,
    SUPPORT,
    TOKEN,
    Twilio,
    call,
    tags,
)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, twilio_socket: socket.socket) -> Settings:
    return Settings(database_url=database_url, secret_key="test-secret-" + "x" * 32,
                    data_dir=str(tmp_path / "data"), public_url=PUBLIC,
                    twilio_account_sid=ACCOUNT, twilio_auth_token=TOKEN,
                    twilio_api_base=url_of(twilio_socket), twilio_phone_number=SUPPORT,
                    bot_enabled=False)  # the KB bot answers SMS itself; not this file's subject


@pytest.fixture
def fake(fake_twilio: FakeTwilio) -> FakeTwilio:
    return fake_twilio


async def count_items(services: Services) -> int:
    async with services.sessions() as session:
        return int((await session.execute(
            select(func.count()).select_from(TimelineItem))).scalar_one())


async def web_ticket(services: Services) -> tuple[int, str]:
    """A web chat ticket and the code its customer was shown for "continue by phone"."""
    result = await services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="visitor-1", text="注文について"))
    async with services.sessions() as session, session.begin():
        issued = await links.issue(session, services.signer, services.settings,
                                   result.conversation.id, "phone")  # type: ignore[arg-type]
    return result.conversation.id, issued.code  # type: ignore[return-value]


async def timeline(hub: RunningHub, conversation_id: int) -> list[dict[str, Any]]:
    """The ticket's timeline as the API serves it (GET /api/conversations/{id})."""
    detail = await hub.services.tickets.detail(conversation_id)
    return detail["timeline"]  # type: ignore[no-any-return]


def updates(services: Services, wanted: Callable[[dict[str, Any]], bool]) -> asyncio.Event:
    """An event set when an item update matching ``wanted`` is published."""
    seen = asyncio.Event()

    async def watch(event: events.Event) -> None:
        if event.name == events.MESSAGE_UPDATED and wanted(event.payload):
            seen.set()

    services.bus.subscribe(watch)
    return seen


# --- signatures and bad input ---------------------------------------------------------

PATHS = ["voice", "gather", "menu", "status", "recording", "transcription", "sms"]


async def test_bad_signatures_are_403_and_bad_input_400_storing_nothing(hub: RunningHub) -> None:
    twilio = Twilio(hub)
    params = {**call(), "CallStatus": "completed", "Body": "hi", "MessageSid": "SM1",
              "RecordingSid": "RE1", "RecordingStatus": "completed"}
    for name in PATHS:
        path = f"/webhooks/twilio/{name}"
        wrong = await twilio.post(path, params, signature="bm90IGEgc2lnbmF0dXJl")
        assert wrong.status_code == 403, name
        assert wrong.json()["error"]["code"] == "bad_signature"
        own_host = RequestValidator(TOKEN).compute_signature(hub.url + path, params)
        assert (await twilio.post(path, params, signature=own_host)).status_code == 403
        unsigned = await hub.http.post(path, data=params)
        assert unsigned.status_code == 403
    assert await count_items(hub.services) == 0
    no_from = {k: v for k, v in call().items() if k != "From"}
    response = await twilio.post("/webhooks/twilio/voice", no_from)
    assert response.status_code == 400 and response.json()["error"]["names"] == ["From"]
    assert (await twilio.post("/webhooks/twilio/status", {"CallSid": "CA1"})).status_code == 400
    assert (await twilio.post("/webhooks/twilio/sms", {"From": CALLER})).status_code == 400
    assert await count_items(hub.services) == 0

    # reports about calls we do not know are acknowledged and kept for reconciliation
    ringing = call(sid="CA" + "9" * 32, CallStatus="ringing", SequenceNumber="0")
    assert (await twilio.post("/webhooks/twilio/status", ringing)).status_code == 200
    recording = {"CallSid": "CA" + "8" * 32, "RecordingSid": "RE" + "8" * 32,
                 "RecordingStatus": "completed"}
    assert (await twilio.post("/webhooks/twilio/recording", recording)).status_code == 200
    kept = await calls.unmatched(hub.services.sessions)
    assert [k["CallSid"] for k in kept] == [ringing["CallSid"], recording["CallSid"]]
    hung_up = call(sid="CA" + "9" * 32, CallStatus="completed", SequenceNumber="2",
                   CallDuration="7")
    assert (await twilio.post("/webhooks/twilio/status", hung_up)).status_code == 200
    async with hub.services.sessions() as session:
        item = (await session.execute(select(TimelineItem))).scalar_one()
    assert item.kind == "call" and item.data["status"] == "completed"
    assert item.data["duration"] == 7

    withheld = call(sid="CA" + "7" * 32, caller="+266696687")  # "ANONYMOUS"
    answered = await twilio.twiml("/webhooks/twilio/voice", withheld)
    assert tags(answered) == ["Say", "Enqueue"]  # straight to an agent, no code to key in
    await twilio.post("/webhooks/twilio/status", {**withheld, "CallStatus": "completed"})
    assert await count_items(hub.services) == 1  # never a customer called "+266696687"
    assert [k["CallSid"] for k in await calls.unmatched(hub.services.sessions)][-2:] == [
        withheld["CallSid"]] * 2


async def test_twiml_answers_name_their_charset_once(hub: RunningHub) -> None:
    twilio = Twilio(hub)
    answers = [await twilio.post("/webhooks/twilio/voice", call()),
               await twilio.post("/webhooks/twilio/sms", sms("SM" + "5" * 32, "hello")),
               await twilio.post("/webhooks/twilio/status",
                                 call(CallStatus="completed", SequenceNumber="3"))]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers.get_list("content-type") == ["text/xml; charset=utf-8"]
    refused = await twilio.post("/webhooks/twilio/voice", call(), signature="bm9wZQ==")
    assert refused.headers.get_list("content-type") == ["application/json"]




# --- the IVR --------------------------------------------------------------------------

async def test_a_number_typed_in_web_chat_becomes_the_customers_unverified_phone(
        hub: RunningHub) -> None:
    typed = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="visitor-7",
        text="折り返しはこちらへ 090-1234-5678 注文番号 123456789012"))
    async with hub.services.sessions() as session:
        phones = (await session.execute(select(Identity).where(
            Identity.kind == "phone"))).scalars().all()
    assert [(p.value, p.verified, p.customer_id) for p in phones] == [
        (CALLER, False, typed.customer.id)]  # the order number is no phone
    notes = [i["data"] for i in await timeline(hub, typed.conversation.id)  # type: ignore[arg-type]
             if i["type"] == "system"]
    assert notes == [{"event": "identity_given", "kind": "phone", "value": CALLER,
                      "holder_id": None}]
    await hub.services.ingestor.ingest(Inbound(  # the hub's own number is never theirs
        channel="web", identity_kind="web", identity_value="visitor-7",
        text=f"そちらの番号 {SUPPORT} にかけました"))
    async with hub.services.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Identity).where(
            Identity.kind == "phone"))).scalar_one() == 1


async def test_chat_code_call_recording_and_transcript_share_one_ticket(
        hub: RunningHub) -> None:
    twilio = Twilio(hub)
    conversation_id, code = await web_ticket(hub.services)
    asked = await twilio.twiml("/webhooks/twilio/voice", call(caller="090-1234-5678"))
    gather = asked.find("Gather")
    assert gather is not None and gather.get("input") == "dtmf speech"
    assert gather.get("language") == "ja-JP"
    assert await count_items(hub.services) == 1  # nothing stored before the code

    joined = await twilio.twiml(gather.get("action", ""), call(Digits=code))
    assert tags(joined) == ["Say", "Say", "Start", "Gather", "Redirect"]
    async with hub.services.sessions() as session:
        phone = (await session.execute(select(Identity).where(
            Identity.kind == "phone"))).scalar_one()
    assert phone.value == CALLER and phone.verified

    sid = call()["CallSid"]
    published: list[dict[str, Any]] = []

    async def watch(event: events.Event) -> None:
        if event.name == events.MESSAGE_UPDATED and event.payload["type"] == "call":
            published.append(event.payload["data"])

    hub.services.bus.subscribe(watch)
    for status, sequence, duration in [("ringing", "0", None), ("completed", "3", "42"),
                                       ("in-progress", "2", None), ("completed", "3", "42"),
                                       ("in-progress", "2", None)]:
        params = call(CallStatus=status, SequenceNumber=sequence,
                      CallbackSource="call-progress-events")
        if duration:
            params["CallDuration"] = duration
        assert (await twilio.post("/webhooks/twilio/status", params)).status_code == 200
    # ringing was known from the voice webhook and repeats change nothing; the late
    # in-progress is recorded in events but the call stays completed (higher sequence)
    assert [d["status"] for d in published] == ["completed", "completed"]
    assert "in-progress" in published[-1]["events"]
    recording = {"AccountSid": ACCOUNT, "CallSid": sid, "RecordingSid": "RE" + "2" * 32,
                 "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/"
                                 f"Recordings/RE{'2' * 32}", "RecordingChannels": "2",
                 "RecordingSource": "StartCallRecordingTwiML"}
    await twilio.post("/webhooks/twilio/recording", {**recording,
                                                     "RecordingStatus": "in-progress"})
    for track, sequence, text in [("inbound_track", "1", "注文した商品がまだ届きません"),
                                  ("outbound_track", "2", "お調べいたします"),
                                  ("outbound_track", "2", "お調べいたします")]:  # redelivered
        await twilio.post("/webhooks/twilio/transcription", {
            "AccountSid": ACCOUNT, "CallSid": sid, "TranscriptionSid": "GT" + "3" * 32,
            "TranscriptionEvent": "transcription-content", "Track": track, "Final": "true",
            "SequenceId": sequence, "LanguageCode": "ja-JP",
            "TranscriptionData": f'{{"transcript": "{text}", "confidence": 0.93}}'})
    for _ in range(2):  # a redelivery is stored once
        await twilio.post("/webhooks/twilio/recording", {
            **recording, "RecordingStatus": "completed", "RecordingDuration": "40"})

    items = await timeline(hub, conversation_id)
    assert [(i["type"], i["channel"]) for i in items] == [
        ("message", "web"), ("system", "phone"), ("call", "phone"), ("recording", "phone"),
        ("transcript", "phone"), ("transcript", "phone")]
    assert items[1]["data"] == {"event": "channel_switched", "from": "web", "to": "phone"}
    call_item = items[2]
    assert call_item["data"]["status"] == "completed" and call_item["data"]["duration"] == 42
    assert set(call_item["data"]["events"]) == {"ringing", "in-progress", "completed"}
    assert items[3]["data"]["status"] == "completed" and items[3]["data"]["duration"] == 40
    assert [(i["data"]["speaker"], i["sender_type"], i["direction"]) for i in items[4:]] == [
        ("customer", "customer", "in"), ("agent", "agent", "out")]
    assert items[4]["text"] == "注文した商品がまだ届きません"
    assert [i["created_at"] for i in items] == sorted(i["created_at"] for i in items)


async def known_caller(hub: RunningHub) -> int:
    """A customer whose number is verified; returns their ticket."""
    known = await hub.services.ingestor.ingest(Inbound(
        channel="sms", identity_kind="phone", identity_value="09012345678", text="SMSです",
        identity_verified=True))
    return known.conversation.id  # type: ignore[return-value]


async def test_known_caller_skips_the_code_and_picks_from_the_menu(
        hub: RunningHub, fake: FakeTwilio) -> None:
    twilio = Twilio(hub)
    conversation_id = await known_caller(hub)
    root = await twilio.twiml("/webhooks/twilio/voice", call())
    assert tags(root) == ["Say", "Start", "Gather", "Redirect"]
    menu = root.find("Gather")
    assert menu is not None and menu.get("numDigits") == "1"
    items = await timeline(hub, conversation_id)
    assert [i["type"] for i in items] == ["message", "system", "call"]

    queued = await twilio.twiml(menu.get("action", ""), call(Digits="1"))
    assert tags(queued) == ["Say", "Enqueue"] and queued[1].text == "support"
    await hub.services.tickets.update(conversation_id, agent_id=None,
                                      changes={"assignee_id": 1})
    rung = await twilio.twiml(menu.get("action", ""), call(Digits="1"))
    assert tags(rung) == ["Say", "Dial", "Enqueue"]
    client = rung[1].find("Client")
    assert client is not None and (client.text or "").strip() == "agent-1"

    sent = updates(hub.services, lambda item: item["delivery_status"] == "sent")
    texted = await twilio.twiml(menu.get("action", ""), call(Digits="2"))
    assert tags(texted) == ["Say", "Hangup"]
    await asyncio.wait_for(sent.wait(), 10)
    assert len(fake.messages) == 1 and fake.messages[0]["To"] == CALLER
    assert f"{PUBLIC}/chat?link=" in fake.messages[0]["Body"]
    items = await timeline(hub, conversation_id)
    assert (items[-1]["sender_type"], items[-1]["channel"]) == ("bot", "sms")

    hub.services.settings = replace(hub.services.settings,  # open on no weekday: closed
                                    twilio_business_hours="09:00-18:00", business_days="")
    closed = await twilio.twiml("/webhooks/twilio/voice", call(sid="CA" + "4" * 32))
    assert tags(closed) == ["Say", "Start", "Record"]  # Twilio transcribes it live
    after = await twilio.twiml(closed[2].get("action", ""), call(sid="CA" + "4" * 32, Digits="#"))
    assert tags(after) == ["Say", "Hangup"]
    await leaves_a_voicemail(hub, twilio, "CA" + "4" * 32, conversation_id)
    own_engine = await twilio.twiml("/webhooks/twilio/voice", call(sid="CA" + "7" * 32))
    assert tags(own_engine) == ["Say", "Record"]  # the hook transcribes the recording instead


class FakeSpeechToText:
    def __init__(self) -> None:
        self.heard: list[tuple[bytes, str]] = []

    async def transcribe(self, audio: bytes, content_type: str, language: str) -> str:
        self.heard.append((audio, language))
        return "折り返しお願いします"


async def leaves_a_voicemail(hub: RunningHub, twilio: Twilio, call_sid: str,
                             conversation_id: int) -> None:
    """The voicemail's recording joins the ticket; the speech-to-text hook transcribes it."""
    stt = FakeSpeechToText()
    hub.services.adapters["phone"].speech_to_text = stt  # type: ignore[attr-defined]
    transcribed = asyncio.Event()

    async def watch(event: events.Event) -> None:
        if event.name == events.MESSAGE_CREATED and event.payload["type"] == "transcript":
            transcribed.set()

    hub.services.bus.subscribe(watch)
    report = {"AccountSid": ACCOUNT, "CallSid": call_sid, "RecordingSid": "RE" + "6" * 32,
              "RecordingStatus": "completed", "RecordingSource": "RecordVerb",
              "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/"
                              f"Recordings/RE{'6' * 32}", "RecordingDuration": "12"}
    for _ in range(2):
        assert (await twilio.post("/webhooks/twilio/recording", report)).status_code == 200
    await asyncio.wait_for(transcribed.wait(), 10)
    items = await timeline(hub, conversation_id)
    assert [i["type"] for i in items][-3:] == ["call", "recording", "transcript"]
    assert items[-2]["data"]["voicemail"] is True
    assert items[-1]["text"] == "折り返しお願いします"
    assert stt.heard == [(FAKE_AUDIO, "ja-JP")]


async def test_wrong_or_resolved_codes_twice_continue_as_a_new_caller(
        hub: RunningHub) -> None:
    twilio = Twilio(hub)
    conversation_id, code = await web_ticket(hub.services)
    english = await twilio.twiml("/webhooks/twilio/gather?attempt=1&lang=ja", call(Digits="9"))
    gather = english.find("Gather")
    assert gather is not None and gather.get("language") == "en-US"
    assert gather.get("action", "").endswith("attempt=1&lang=en")

    await hub.services.tickets.update(conversation_id, agent_id=None,
                                      changes={"status": "resolved"})
    first = await twilio.twiml(gather.get("action", ""),
                               call(SpeechResult=f"my code is {code}", Confidence="0.8"))
    assert tags(first) == ["Say", "Gather", "Redirect"]
    assert "could not find" in (first[0].text or "")
    retry = first.find("Gather")
    assert retry is not None and retry.get("action", "").endswith("attempt=2&lang=en")
    second = await twilio.twiml(retry.get("action", ""), call())  # no input at all
    assert "Start" in tags(second)

    items = await timeline(hub, conversation_id)
    assert [i["type"] for i in items] == ["message", "system"]  # only "resolved"
    async with hub.services.sessions() as session:
        phone = (await session.execute(select(Identity).where(
            Identity.kind == "phone"))).scalar_one()
        web = (await session.execute(select(Identity).where(
            Identity.kind == "web"))).scalar_one()
    assert not phone.verified and phone.customer_id != web.customer_id


# --- SMS ------------------------------------------------------------------------------

def sms(sid: str, body: str, sender: str = CALLER) -> dict[str, str]:
    return {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "MessageSid": sid,
            "SmsSid": sid, "From": sender, "To": SUPPORT, "Body": body, "NumMedia": "0",
            "NumSegments": "1"}


async def test_sms_in_and_reply_out(hub: RunningHub, fake: FakeTwilio) -> None:
    twilio = Twilio(hub)
    first = await twilio.post("/webhooks/twilio/sms", sms("SM" + "1" * 32, "荷物が届きません"))
    assert first.status_code == 200 and ET.fromstring(first.text).tag == "Response"
    await twilio.post("/webhooks/twilio/sms", sms("SM" + "1" * 32, "荷物が届きません"))
    await twilio.post("/webhooks/twilio/sms", sms("SM" + "2" * 32, "追跡番号は?",
                                                   sender="090-1234-5678"))
    token = await hub.login()
    inbox = (await hub.api("GET", "/api/conversations?channel=sms", token)).json()["items"]
    assert len(inbox) == 1
    conversation_id = inbox[0]["id"]
    items = await timeline(hub, conversation_id)
    assert [i["text"] for i in items] == ["荷物が届きません", "追跡番号は?"]
    assert items[0]["data"]["encoding"] == "UCS-2"

    sent = updates(hub.services, lambda item: item["delivery_status"] == "sent")
    reply = await hub.api("POST", f"/api/conversations/{conversation_id}/messages", token,
                          json={"text": "お調べします"})
    assert reply.status_code == 201 and reply.json()["channel"] == "sms"
    await asyncio.wait_for(sent.wait(), 10)
    assert [(m["To"], m["From"], m["Body"]) for m in fake.messages] == [
        (CALLER, SUPPORT, "お調べします")]
    assert fake.messages[0]["StatusCallback"] == f"{PUBLIC}/webhooks/twilio/sms/status"

    report = {"AccountSid": ACCOUNT, "MessageSid": fake.messages[0]["Sid"],
              "MessageStatus": "delivered", "To": CALLER, "From": SUPPORT}
    assert (await twilio.post("/webhooks/twilio/sms/status", report)).status_code == 200
    items = await timeline(hub, conversation_id)
    assert items[-1]["delivery_status"] == "delivered"

    web_conversation, code = await web_ticket(hub.services)
    other = "+819087654321"
    await twilio.post("/webhooks/twilio/sms", sms("SM" + "3" * 32, f"コード{code}", other))
    moved = await timeline(hub, web_conversation)
    assert [(i["type"], i["channel"]) for i in moved] == [
        ("message", "web"), ("system", "sms"), ("message", "sms")]


async def test_a_text_reply_after_a_call_leaves_and_is_labelled_as_sms(
        hub: RunningHub, fake: FakeTwilio) -> None:
    twilio = Twilio(hub)
    conversation_id = await known_caller(hub)
    await twilio.twiml("/webhooks/twilio/voice", call())  # the customer last used the phone
    relabelled = updates(hub.services, lambda item: item["channel"] == "sms"
                         and item["delivery_status"] == "sent")
    token = await hub.login()
    reply = await hub.api("POST", f"/api/conversations/{conversation_id}/messages", token,
                          json={"text": "先ほどのお電話の件です"})
    assert reply.status_code == 201 and reply.json()["channel"] == "phone"  # queued
    await asyncio.wait_for(relabelled.wait(), 10)
    assert [(m["To"], m["Body"]) for m in fake.messages] == [(CALLER, "先ほどのお電話の件です")]
    items = await timeline(hub, conversation_id)
    assert [(i["type"], i["channel"], i["direction"]) for i in items][-2:] == [
        ("call", "phone", "in"), ("message", "sms", "out")]

    report = {"AccountSid": ACCOUNT, "MessageSid": fake.messages[0]["Sid"],
              "MessageStatus": "delivered", "To": CALLER, "From": SUPPORT}
    assert (await twilio.post("/webhooks/twilio/sms/status", report)).status_code == 200
    assert (await timeline(hub, conversation_id))[-1]["delivery_status"] == "delivered"


@pytest.fixture
def plain_settings(twilio_socket: socket.socket) -> Settings:
    return Settings(twilio_account_sid=ACCOUNT, twilio_auth_token=TOKEN,
                    twilio_api_base=url_of(twilio_socket), twilio_phone_number=SUPPORT)


async def test_sms_send_failures_are_retryable_or_not(plain_settings: Settings,
                                                      fake: FakeTwilio) -> None:
    channel = SmsChannel(SimpleNamespace(settings=plain_settings),  # type: ignore[arg-type]
                         make_client(plain_settings))
    outbound = Outbound(item_id=1, conversation_id=1, channel="sms", recipient=CALLER,
                        text="hi", sender_type="agent")
    for status, retryable in [(429, True), (500, True), (503, True), (400, False)]:
        fake.fail_next(status)
        result = await channel.send(outbound)
        assert not result.ok and result.retryable is retryable, status
        assert result.error and str(status) in result.error
    assert fake.messages == []
    sent = await channel.send(outbound)
    assert sent.ok and sent.external_id == fake.messages[0]["Sid"]
    wrong = SmsChannel(SimpleNamespace(settings=plain_settings),  # type: ignore[arg-type]
                       make_client(replace(plain_settings, twilio_auth_token="wrong")))
    refused = await wrong.send(outbound)
    assert not refused.ok and not refused.retryable and "401" in (refused.error or "")


# --- MMS ------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(200))
JPEG = b"\xff\xd8\xff\xe0" + b"jpeg-bytes" * 20


def mms(sid: str, body: str, *media: tuple[str, str]) -> dict[str, str]:
    """An inbound MMS: ``media`` are (MediaUrl, MediaContentType) pairs."""
    form = {**sms(sid, body), "NumMedia": str(len(media))}
    for index, (url, content_type) in enumerate(media):
        form[f"MediaUrl{index}"] = url
        form[f"MediaContentType{index}"] = content_type
    return form


def sms_adapter(hub: RunningHub) -> SmsChannel:
    return hub.services.adapters["sms"]  # type: ignore[return-value]


async def test_mms_pictures_are_stored_with_the_message_once(hub: RunningHub,
                                                             fake: FakeTwilio) -> None:
    twilio = Twilio(hub)
    sid = "MM" + "1" * 32
    form = mms(sid, "箱が潰れていました", (fake.add_media(sid, PNG, "image/png"), "image/png"),
               (fake.add_media(sid, JPEG, "image/jpeg"), "image/jpeg"))
    answered = await twilio.post("/webhooks/twilio/sms", form)
    assert answered.status_code == 200
    # the text is committed when the webhook answers; the pictures follow
    [conversation] = (await hub.api("GET", "/api/conversations", await hub.login())).json()[
        "items"]
    [item] = await timeline(hub, conversation["id"])
    assert item["text"] == "箱が潰れていました" and item["data"]["media"]["files"][0]["url"]
    await sms_adapter(hub).drain()
    [item] = await timeline(hub, conversation["id"])
    assert item["data"]["media"]["status"] == "stored"
    assert [(a["content_type"], a["size"]) for a in item["attachments"]] == [
        ("image/png", len(PNG)), ("image/jpeg", len(JPEG))]
    served = await hub.http.get(item["attachments"][0]["url"])
    assert served.status_code == 200 and served.content == PNG
    assert all("twilio" not in a["url"] for a in item["attachments"])

    again = await twilio.post("/webhooks/twilio/sms", form)  # Twilio redelivers
    assert again.status_code == 200
    await sms_adapter(hub).drain()
    assert len(await timeline(hub, conversation["id"])) == 1
    assert len(fake.media_gets) == 2  # each picture fetched once


async def test_mms_too_large_or_not_a_picture_is_refused_keeping_the_text(
        hub: RunningHub, fake: FakeTwilio) -> None:
    twilio = Twilio(hub)
    channel = sms_adapter(hub)
    channel.media.max_bytes = 1000
    channel.media.retries = ()
    sid = "MM" + "2" * 32
    big = b"\x89PNG\r\n\x1a\n" + b"x" * 5000
    fake_png = b"<svg onload=alert(1)>" + b" " * 50  # declared a PNG, is not one
    video = fake.add_media(sid, b"\x00\x00\x00\x18ftypmp42", "video/mp4")
    form = mms(sid, "写真を送ります", (fake.add_media(sid, big, "image/png"), "image/png"),
               (video, "video/mp4"),
               (fake.add_media(sid, fake_png, "image/png"), "image/png"),
               (fake.add_media(sid, PNG, "image/png"), "image/png"),
               (f"https://evil.example.com/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}/"
                "Media/ME1", "image/png"))
    stored = updates(hub.services, lambda item: item["data"].get("media", {}).get(
        "status") == "partial")
    assert (await twilio.post("/webhooks/twilio/sms", form)).status_code == 200
    await asyncio.wait_for(stored.wait(), 10)
    token = await hub.login()
    [conversation] = (await hub.api("GET", "/api/conversations", token)).json()["items"]
    [item] = await timeline(hub, conversation["id"])
    assert item["text"] == "写真を送ります"
    assert [a["size"] for a in item["attachments"]] == [len(PNG)]
    reason = item["data"]["media"]["reason"]
    assert "#1: larger than 1000 bytes" in reason and "#2: video/mp4 is not accepted" in reason
    assert "#3: only PNG, JPEG, GIF or WebP" in reason
    assert "#5: not a media URL of this account" in reason
    assert not any(rest.endswith(video.rsplit("/", 1)[1]) for rest in fake.media_gets)

    sid = "MM" + "3" * 32
    fake.fail_next(404)
    lost = mms(sid, "", (fake.add_media(sid, PNG, "image/png"), "image/png"))
    assert (await twilio.post("/webhooks/twilio/sms", lost)).status_code == 200
    await channel.drain()
    last = (await timeline(hub, conversation["id"]))[-1]
    assert last["attachments"] == [] and last["data"]["media"]["status"] == "failed"
    assert "404" in last["data"]["media"]["reason"]


def test_mms_parameters_parse_to_pending_media() -> None:
    inbound = parse.sms_inbound(mms("MM" + "4" * 32, "", ("https://x/1", "IMAGE/JPEG"),
                                    ("", "image/png")))
    assert inbound.attachments == ()
    assert inbound.data["media"] == {"provider": "twilio", "status": "pending",
                                     "files": [{"url": "https://x/1",
                                                "content_type": "image/jpeg"}]}
    assert "media" not in parse.sms_inbound(sms("SM" + "4" * 32, "hi")).data


async def test_agent_pictures_go_out_as_mms_media_urls(plain_settings: Settings,
                                                       fake: FakeTwilio) -> None:
    channel = SmsChannel(SimpleNamespace(settings=plain_settings),  # type: ignore[arg-type]
                         make_client(plain_settings))
    picture = {"id": "k" * 32, "name": "map.png", "content_type": "image/png", "size": 10,
               "url": f"/files/{'k' * 32}/map.png"}
    document = {**picture, "name": "a.pdf", "content_type": "application/pdf",
                "url": f"/files/{'k' * 32}/a.pdf"}
    outbound = Outbound(item_id=1, conversation_id=1, channel="sms", recipient=CALLER,
                        text="", sender_type="agent", attachments=(picture, document))
    sent = await channel.send(outbound)
    assert sent.ok
    [message] = fake.messages
    assert message["MediaUrl"] == f"{plain_settings.public_url}/files/{'k' * 32}/map.png"
    assert "Body" not in message
    await channel.stop()


# --- agents: click-to-call, recordings, softphone token ------------------------------

async def test_click_to_call_stays_in_the_ticket_and_its_recording_plays_for_agents(
        hub: RunningHub, fake: FakeTwilio) -> None:
    twilio = Twilio(hub)
    conversation_id = await known_caller(hub)
    token = await hub.login()
    placed = await hub.api("POST", f"/api/conversations/{conversation_id}/calls", token)
    assert placed.status_code == 201, placed.text
    item = placed.json()
    assert (item["type"], item["direction"], item["sender_type"]) == ("call", "out", "agent")
    [created] = fake.calls
    assert (created["To"], created["From"]) == (CALLER, SUPPORT)
    assert created["Url"] == f"{PUBLIC}/webhooks/twilio/outbound?agent={item['agent_id']}"
    assert created["StatusCallback"] == f"{PUBLIC}/webhooks/twilio/status"

    leg = {**call(sid=created["Sid"]), "Direction": "outbound-api", "From": SUPPORT,
           "To": CALLER}
    answered = await twilio.twiml(created["Url"], leg)
    assert tags(answered) == ["Say", "Start", "Dial"]
    dialed = answered[2].find("Client")
    assert dialed is not None and (dialed.text or "").strip() == f"agent-{item['agent_id']}"
    await asyncio.gather(*(  # concurrent reports about one call keep every event
        twilio.post("/webhooks/twilio/status", {**leg, "CallStatus": status,
                                                "SequenceNumber": sequence,
                                                "CallDuration": "65"})
        for status, sequence in [("completed", "3"), ("in-progress", "2"),
                                 ("initiated", "0"), ("ringing", "1")]))
    await twilio.post("/webhooks/twilio/recording", {
        "AccountSid": ACCOUNT, "CallSid": created["Sid"], "RecordingSid": "RE" + "5" * 32,
        "RecordingStatus": "completed", "RecordingDuration": "60",
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/"
                        f"RE{'5' * 32}"})
    items = await timeline(hub, conversation_id)
    assert [i["type"] for i in items][-3:] == ["system", "call", "recording"]
    assert items[-3]["data"]["to"] == "phone"
    assert items[-2]["data"]["status"] == "completed" and items[-2]["data"]["duration"] == 65
    assert set(items[-2]["data"]["events"]) == {"queued", "initiated", "ringing", "in-progress",
                                                "completed"}
    token_list = await hub.api("GET", "/api/conversations", token)
    assert len(token_list.json()["items"]) == 1  # never a new ticket

    path = f"/api/recordings/{items[-1]['id']}"
    audio = await hub.api("GET", path, token)
    assert audio.status_code == 200 and audio.content == FAKE_AUDIO
    assert audio.headers["content-type"].startswith("audio/mpeg")
    assert (await hub.http.get(path)).status_code == 401
    not_a_recording = await hub.api("GET", f"/api/recordings/{items[-2]['id']}", token)
    assert not_a_recording.status_code == 404

    sent = updates(hub.services, lambda item: item["delivery_status"] == "sent")
    reply = await hub.api("POST", f"/api/conversations/{conversation_id}/messages", token,
                          json={"text": "先ほどのお電話の件です"})
    assert reply.json()["channel"] == "phone"  # the last contact was a call: sent as SMS
    await asyncio.wait_for(sent.wait(), 10)
    assert [(m["To"], m["Body"]) for m in fake.messages] == [(CALLER, "先ほどのお電話の件です")]
    await twilio.post("/webhooks/twilio/sms/status", {
        "AccountSid": ACCOUNT, "MessageSid": fake.messages[0]["Sid"], "MessageStatus": "failed",
        "ErrorCode": "30006"})
    failed = (await timeline(hub, conversation_id))[-1]
    assert failed["delivery_status"] == "failed" and "30006" in failed["error"]
    assert failed["channel"] == "sms"


async def test_browser_softphone_token_queue_and_outgoing_call(hub: RunningHub) -> None:
    twilio = Twilio(hub)
    conversation_id = await known_caller(hub)
    agent_leg = {"AccountSid": ACCOUNT, "CallSid": "CA" + "c" * 32, "From": "client:agent-1",
                 "Direction": "inbound", "CallStatus": "ringing"}
    pick_up = await twilio.twiml("/webhooks/twilio/client", agent_leg)
    queue = pick_up.find("Dial/Queue")
    assert queue is not None and queue.text == "support"

    dialing = await twilio.twiml("/webhooks/twilio/client", {
        **agent_leg, "To": "090-1234-5678", "conversation_id": str(conversation_id)})
    dial = dialing.find("Dial")
    assert dial is not None and dial.get("callerId") == SUPPORT
    assert dial.get("record") == "record-from-answer-dual"
    number = dial.find("Number")
    assert number is not None and number.text == CALLER
    customer_leg = {**call(sid="CA" + "d" * 32), "Direction": "outbound-dial",
                    "From": SUPPORT, "To": CALLER, "ParentCallSid": agent_leg["CallSid"]}
    consent = await twilio.twiml(number.get("url", ""), customer_leg)
    assert tags(consent) == ["Say"]
    await twilio.post(number.get("statusCallback", ""),
                      {**customer_leg, "CallStatus": "completed", "SequenceNumber": "3",
                       "CallDuration": "31"})
    items = await timeline(hub, conversation_id)
    assert (items[-1]["type"], items[-1]["direction"], items[-1]["agent_id"]) == (
        "call", "out", 1)
    assert items[-1]["data"]["status"] == "completed" and items[-1]["data"]["duration"] == 31
    no_ticket = await twilio.twiml("/webhooks/twilio/client", {
        **agent_leg, "CallSid": "CA" + "e" * 32, "To": CALLER, "conversation_id": "424242"})
    assert no_ticket.find("Dial/Number") is not None  # the call goes out; its reports are kept

    token = await hub.login()
    assert (await hub.http.get("/api/voice/token")).status_code == 401
    unset = await hub.api("GET", "/api/voice/token", token)
    assert unset.status_code == 422
    hub.services.settings = replace(
        hub.services.settings, twilio_api_key_sid="SK" + "b" * 32,
        twilio_api_key_secret="api-key-secret-" + "s" * 32, twilio_twiml_app_sid="AP" + "c" * 32)
    issued = (await hub.api("GET", "/api/voice/token", token)).json()
    payload = issued["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iss"] == "SK" + "b" * 32 and claims["sub"] == ACCOUNT
    assert claims["grants"]["identity"] == issued["identity"] == "agent-1"
    voice = claims["grants"]["voice"]
    assert voice["incoming"]["allow"] is True
    assert voice["outgoing"]["application_sid"] == "AP" + "c" * 32
    counted = await hub.api("POST", "/api/sms/segments", token, json={"text": "あ" * 71})
    assert counted.json() == {"encoding": "UCS-2", "units": 71, "segments": 2}
    schema = (await hub.http.get("/schema/openapi.json")).json()["paths"]
    assert {f"/webhooks/twilio/{name}" for name in PATHS} <= set(schema)
    assert {"/api/voice/token", "/api/conversations/{conversation_id}/calls"} <= set(schema)


async def test_erasing_a_caller_deletes_their_recordings_at_twilio_too(
        hub: RunningHub, fake: FakeTwilio) -> None:
    sid = "RE" + "7" * 32
    recorded = await hub.services.ingestor.ingest(Inbound(
        channel="phone", identity_kind="phone", identity_value=CALLER, kind="recording",
        text="", external_id=sid, data={
            "recording_url": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/"
                             f"Recordings/{sid}", "call_sid": "CA" + "7" * 32}))
    lead = await hub.login("lead@example.com", "lead-password")
    erased = await hub.api("DELETE", f"/api/customers/{recorded.customer.id}", lead)
    assert erased.status_code == 200, erased.text
    assert erased.json()["provider_recordings"] == 1
    assert erased.json()["provider_recordings_deleted"] == 1
    assert fake.deleted_recordings == [sid]
