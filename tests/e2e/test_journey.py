"""The product's promise, end to end on one running hub, through the public surface only:
a customer chats on the website from a PC, continues on LINE from the train with the code
the chat showed, then phones the call center and keys in the next code. The agent sees one
customer and one ticket holding all of it in order, and the reply goes out on the channel
the customer is using now."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from hub import events
from hub.settings import Settings
from tests.conftest import RunningHub
from tests.fakes.line_api import FakeLine, line_settings
from tests.fakes.line_webhook import body, headers, text, user_id
from tests.fakes.loopback import url_of
from tests.fakes.twilio_api import FakeTwilio
from tests.fakes.twilio_webhook import ACCOUNT, CALLER, PUBLIC, SUPPORT, TOKEN, Twilio, call
from tests.socket_client import Client

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(database_url: str, tmp_path: Path, fake_line: FakeLine,
             twilio_socket: socket.socket) -> Settings:
    return line_settings(database_url, tmp_path, fake_line, line_basic_id="@omohub",
                         public_url=PUBLIC, twilio_account_sid=ACCOUNT,
                         twilio_auth_token=TOKEN, twilio_api_base=url_of(twilio_socket),
                         twilio_phone_number=SUPPORT)


async def _on_the_website(hub: RunningHub, clients: list[Client]) -> tuple[int, str]:
    """The PC chat: a question, then "LINEで続ける"; returns the ticket and the text that the
    deep link (or its QR code) puts in the customer's LINE message box."""
    chat = Client("/webchat")
    clients.append(chat)
    await chat.connect(hub.url, {"locale": "ja"})
    await chat.next("session")
    asked = await chat.call("message", {"text": "PCから: 注文した靴のサイズを変えたい"})
    link = await chat.call("link", {"target": "line"})
    assert asked["ok"] and link["ok"], (asked, link)
    prefilled = unquote(urlsplit(link["url"]).query)
    assert link["code"] in prefilled
    return asked["conversation_id"], prefilled


async def _on_line(hub: RunningHub, prefilled: str) -> None:
    """From the train: the deep link's message as it was prefilled, then the question."""
    line_user = user_id(4242)
    for words in (prefilled, "電車から: 25.5cmに変えられますか"):
        raw = body(text(line_user, words))
        response = await hub.http.post("/webhooks/line", content=raw, headers=headers(raw))
        assert response.status_code == 200, response.text


async def _on_the_phone(hub: RunningHub, token: str, conversation_id: int) -> None:
    """The agent gives a phone code; the customer calls from an unknown number, keys it in,
    and talks (Twilio's real-time transcription posts what they say)."""
    issued = await hub.api("POST", f"/api/conversations/{conversation_id}/links", token,
                           json={"target": "phone"})
    assert issued.status_code in {200, 201}, issued.text
    twilio = Twilio(hub)
    asked = await twilio.twiml("/webhooks/twilio/voice", call(caller="090-1234-5678"))
    gather = asked.find("Gather")
    assert gather is not None
    await twilio.twiml(gather.get("action", ""), call(Digits=issued.json()["code"]))
    await twilio.post("/webhooks/twilio/transcription", {
        "AccountSid": ACCOUNT, "CallSid": call()["CallSid"], "TranscriptionSid": "GT" + "5" * 32,
        "TranscriptionEvent": "transcription-content", "Track": "inbound_track",
        "Final": "true", "SequenceId": "1", "LanguageCode": "ja-JP",
        "TranscriptionData": '{"transcript": "電話で: 在庫はありますか", "confidence": 0.9}'})
    done = call(CallStatus="completed", SequenceNumber="3", CallDuration="65")
    assert (await twilio.post("/webhooks/twilio/status", done)).status_code == 200


def _story(ticket: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(i["channel"], i["type"], i["text"] or i["data"].get("event", ""))
            for i in ticket["timeline"]]


async def test_web_then_line_then_phone_is_one_customer_and_one_ticket(
        hub: RunningHub, clients: list[Client], fake_line: FakeLine,
        fake_twilio: FakeTwilio) -> None:
    conversation_id, prefilled = await _on_the_website(hub, clients)
    await _on_line(hub, prefilled)
    token = await hub.login()
    await _on_the_phone(hub, token, conversation_id)

    ticket = (await hub.api("GET", f"/api/conversations/{conversation_id}", token)).json()
    assert ticket["channels"] == ["web", "line", "phone"]
    assert _story(ticket) == [
        ("web", "message", "PCから: 注文した靴のサイズを変えたい"),
        ("line", "system", "channel_switched"),
        ("line", "message", prefilled),
        ("line", "message", "電車から: 25.5cmに変えられますか"),
        ("phone", "system", "channel_switched"),
        ("phone", "call", ""),
        ("phone", "transcript", "電話で: 在庫はありますか"),
    ]
    times = [i["created_at"] for i in ticket["timeline"]]
    assert times == sorted(times)
    identities = {(i["kind"], i["value"], i["verified"])
                  for i in ticket["customer"]["identities"]}
    assert {("line", user_id(4242), True), ("phone", CALLER, True)} <= identities
    assert {kind for kind, _, _ in identities} == {"web", "line", "phone"}
    inbox = (await hub.api("GET", "/api/conversations", token)).json()["items"]
    assert [item["id"] for item in inbox] == [conversation_id]  # one ticket, nothing else

    # The reply goes back on the channel the customer used last, the phone: a text reply
    # on a phone ticket reaches the caller as an SMS to the number they called from.
    delivered = asyncio.Event()

    async def watch(event: events.Event) -> None:
        if event.name == events.MESSAGE_UPDATED and event.payload["delivery_status"] == "sent":
            delivered.set()

    hub.services.bus.subscribe(watch)
    sent = await hub.api("POST", f"/api/conversations/{conversation_id}/messages", token,
                         json={"text": "在庫がございます。交換を手配しました。"})
    assert sent.status_code in {200, 201}, sent.text
    assert sent.json()["channel"] == "phone"
    await asyncio.wait_for(delivered.wait(), 10)
    [sms] = fake_twilio.messages
    assert sms["To"] == CALLER and sms["Body"] == "在庫がございます。交換を手配しました。"
    assert fake_line.deliveries == []  # not on the channel they left

    # What the customer said on all three channels is one story in the VOC export too.
    lead = await hub.login("lead@example.com", "lead-password")
    export = await hub.api("GET", "/api/export/voc?format=jsonl", lead)
    said = [(row["channel"], row["text"]) for row in map(json.loads, export.text.splitlines())]
    assert said == [("web", "PCから: 注文した靴のサイズを変えたい"), ("line", prefilled),
                    ("line", "電車から: 25.5cmに変えられますか"),
                    ("phone", "電話で: 在庫はありますか")]
