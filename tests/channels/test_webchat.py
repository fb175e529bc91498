"""Web chat over real Socket.IO: customer → inbox → reply → customer, on a live hub."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from tests.conftest import RunningHub
from tests.socket_client import Client


async def customer(hub: RunningHub, clients: list[Client], **auth: Any) -> Client:
    client = Client("/webchat")
    clients.append(client)
    await client.connect(hub.url, auth)
    return client


async def agent(hub: RunningHub, clients: list[Client]) -> Client:
    client = Client("/agent")
    clients.append(client)
    await client.connect(hub.url, {"token": await hub.login()})
    return client


async def test_chat_round_trip(hub: RunningHub, clients: list[Client]) -> None:
    inbox = await agent(hub, clients)
    chat = await customer(hub, clients, locale="ja")
    session = await chat.next("session")
    assert session["conversation_id"] is None and session["visitor_token"]

    ack = await chat.call("message", {"text": "配送状況を知りたいです", "client_id": "c-1"})
    assert ack["ok"] and ack["conversation_id"]
    opened = await chat.next("session")
    assert opened["conversation_id"] == ack["conversation_id"]

    created = await inbox.next("message.created")
    assert created["conversation_id"] == ack["conversation_id"]
    assert created["text"] == "配送状況を知りたいです"
    assert created["channel"] == "web" and created["sender_type"] == "customer"
    summary = await inbox.next("conversation.updated")
    assert summary["id"] == ack["conversation_id"] and summary["unread_count"] == 1

    token = await hub.login()
    reply = await hub.api("POST", f"/api/conversations/{ack['conversation_id']}/messages",
                          token, json={"text": "お調べします"})
    assert reply.status_code == 201
    received = await chat.next("message")
    assert received["text"] == "お調べします" and received["sender_type"] == "agent"
    assert received["id"] == reply.json()["id"]
    delivered = await inbox.next("message.updated")
    assert delivered["delivery_status"] == "sent"


async def test_a_first_message_sent_at_once_still_gets_the_last_word_on_its_ticket(
        hub: RunningHub, clients: list[Client]) -> None:
    """A client that writes before the greeting arrives: the greeting (no ticket yet) comes
    first, then the session that names the ticket the message opened — never the reverse."""
    for _ in range(5):
        client = await customer(hub, clients)
        ack = await client.call("message", {"text": "すぐに書きます"})
        sessions = []
        while not client.queue("session").empty():
            sessions.append(client.queue("session").get_nowait()["conversation_id"])
        assert sessions == [None, ack["conversation_id"]]
        assert (await client.next("history"))["items"] == []


async def test_reload_continues_the_same_customer_and_ticket(
        hub: RunningHub, clients: list[Client]) -> None:
    first = await customer(hub, clients)
    token = (await first.next("session"))["visitor_token"]
    ack = await first.call("message", {"text": "hello"})
    await first.sio.disconnect()

    again = await customer(hub, clients, visitor_token=token)
    session = await again.next("session")
    assert session["conversation_id"] == ack["conversation_id"]
    history = await again.next("history")
    assert [item["text"] for item in history["items"]] == ["hello"]
    second = await again.call("message", {"text": "still me"})
    assert second["conversation_id"] == ack["conversation_id"]


async def test_a_second_tab_shows_what_the_first_one_sent(hub: RunningHub,
                                                          clients: list[Client]) -> None:
    first = await customer(hub, clients)
    token = (await first.next("session"))["visitor_token"]
    second = await customer(hub, clients, visitor_token=token)
    await second.next("session")
    ack = await first.call("message", {"text": "別のタブからも見えますか", "client_id": "t-1"})
    shown = await second.next("message")
    assert shown["id"] == ack["id"] and shown["sender_type"] == "customer"
    assert shown["text"] == "別のタブからも見えますか"
    again = await first.call("message", {"text": "別のタブからも見えますか", "client_id": "t-1"})
    assert again["duplicate"] is True  # a resend is not shown twice
    await second.call("message", {"text": "こちらからも", "client_id": "t-2"})
    assert (await first.next("message"))["text"] == "こちらからも"
    assert first.queue("message").empty() and second.queue("message").empty()


async def test_resend_with_the_same_client_id_is_stored_once(
        hub: RunningHub, clients: list[Client]) -> None:
    chat = await customer(hub, clients)
    await chat.next("session")
    first = await chat.call("message", {"text": "once", "client_id": "abc-1"})
    again = await chat.call("message", {"text": "once", "client_id": "abc-1"})
    assert again["id"] == first["id"] and again["duplicate"] is True


async def test_a_quick_reply_names_the_message_it_was_pressed_under(
        hub: RunningHub, clients: list[Client]) -> None:
    chat = await customer(hub, clients)
    await chat.next("session")
    ack = await chat.call("message", {"text": "hello"})
    token = await hub.login()
    path = f"/api/conversations/{ack['conversation_id']}"
    reply = (await hub.api("POST", f"{path}/messages", token, json={"text": "hi"})).json()
    pressed = await chat.call("message", {"text": "解決した", "client_id": "q-1",
                                          "reply_to": reply["id"]})
    again = await chat.call("message", {"text": "解決した", "client_id": "q-1",
                                        "reply_to": reply["id"]})
    assert pressed["ok"] and again["duplicate"] and again["id"] == pressed["id"]
    timeline = (await hub.api("GET", path, token)).json()["timeline"]
    [item] = [i for i in timeline if i["id"] == pressed["id"]]
    assert item["data"]["reply_to"] == reply["id"] and item["text"] == "解決した"


async def test_history_never_shows_internal_notes(hub: RunningHub,
                                                  clients: list[Client]) -> None:
    chat = await customer(hub, clients)
    token = (await chat.next("session"))["visitor_token"]
    ack = await chat.call("message", {"text": "hello"})
    agent_token = await hub.login()
    await hub.api("POST", f"/api/conversations/{ack['conversation_id']}/messages", agent_token,
                  json={"text": "secret note", "internal": True})
    await chat.sio.disconnect()
    again = await customer(hub, clients, visitor_token=token)
    history = await again.next("history")
    assert "secret note" not in [item["text"] for item in history["items"]]


@pytest.mark.parametrize("token", ["forged.token", "x" * 5000, "eyJ2IjoiYSIsImV4cCI6MX0.abc"])
async def test_forged_visitor_token_is_refused(hub: RunningHub, clients: list[Client],
                                               token: str) -> None:
    client = Client("/webchat")
    clients.append(client)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(hub.url, {"visitor_token": token})
    error = await client.next("connect_error")
    assert error["data"]["code"] == "invalid_visitor_token"


async def test_expired_visitor_token_is_refused(hub: RunningHub, clients: list[Client]) -> None:
    expired = hub.services.signer.sign("visitor", {"v": "someone"}, ttl_seconds=-1)
    client = Client("/webchat")
    clients.append(client)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(hub.url, {"visitor_token": expired})


@pytest.mark.parametrize("payload,code", [
    ("just a string", "bad_payload"), ({"txt": "typo"}, "bad_payload"),
    ({"text": 42}, "bad_payload"), ({"text": "   "}, "empty_text"),
    ({"text": "あ" * 10_001}, "too_long"), (None, "bad_payload"),
    ({"text": "😀" * 10_001}, "too_long"),  # 120 KB as JSON escapes: refused, not cut off
    ({"text": "解決した", "reply_to": "12"}, "bad_payload"),
    ({"text": "解決した", "reply_to": True}, "bad_payload"),
    ({"text": "解決した", "reply_to": -1}, "bad_payload"),
    ({"text": "解決した", "reply_to": 2**70}, "bad_payload")])
async def test_malformed_messages_get_an_error_and_store_nothing(
        hub: RunningHub, clients: list[Client], payload: Any, code: str) -> None:
    chat = await customer(hub, clients)
    await chat.next("session")
    ack = await chat.call("message", payload)
    assert ack == {"ok": False, "error": {"code": code, "message": ack["error"]["message"]}}
    assert (await chat.next("error"))["code"] == code
    token = await hub.login()
    listing = (await hub.api("GET", "/api/conversations", token)).json()
    assert listing["items"] == []
    assert (await chat.call("message", {"text": "still alive"}))["ok"]


async def test_agent_socket_needs_a_valid_token(hub: RunningHub, clients: list[Client]) -> None:
    client = Client("/agent")
    clients.append(client)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(hub.url, {"token": "nope"})


async def test_typing_reaches_the_other_side(hub: RunningHub, clients: list[Client]) -> None:
    inbox = await agent(hub, clients)
    chat = await customer(hub, clients)
    await chat.next("session")
    ack = await chat.call("message", {"text": "hi"})
    await chat.sio.emit("typing", {"typing": True}, namespace="/webchat")
    typing = await inbox.next("typing")
    assert typing == {"conversation_id": ack["conversation_id"], "typing": True,
                      "sender_type": "customer"}
    assert (await inbox.call("typing", {"conversation_id": ack["conversation_id"]}))["ok"]
    assert (await chat.next("typing"))["sender_type"] == "agent"


async def test_product_context_lands_on_the_ticket(hub: RunningHub,
                                                   clients: list[Client]) -> None:
    chat = await customer(hub, clients, product="OMO-TEA-001", store="shibuya")
    await chat.next("session")
    ack = await chat.call("message", {"text": "このお茶の淹れ方は？"})
    token = await hub.login()
    detail = (await hub.api("GET", f"/api/conversations/{ack['conversation_id']}", token)).json()
    assert detail["product"] == "OMO-TEA-001" and detail["store"] == "shibuya"


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_image_upload(hub: RunningHub, clients: list[Client]) -> None:
    chat = await customer(hub, clients)
    token = (await chat.next("session"))["visitor_token"]
    response = await hub.http.post("/webchat/upload", data={"visitor_token": token},
                                   files={"file": ("photo.png", PNG, "image/png")})
    assert response.status_code == 201, response.text
    [attachment] = response.json()["attachments"]
    assert attachment["content_type"] == "image/png"
    stored = await hub.http.get(attachment["url"])
    assert stored.content == PNG
    assert stored.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("name,content,code", [
    ("evil.png", b"<script>alert(1)</script>", "unsupported_type"),
    ("big.png", PNG + b"\x00" * (10 * 1024 * 1024), "too_large")])
async def test_bad_uploads_are_refused(hub: RunningHub, clients: list[Client], name: str,
                                       content: bytes, code: str) -> None:
    chat = await customer(hub, clients)
    token = (await chat.next("session"))["visitor_token"]
    response = await hub.http.post("/webchat/upload", data={"visitor_token": token},
                                   files={"file": (name, content, "image/png")})
    assert response.status_code in {400, 413}
    if response.status_code == 400:
        assert response.json()["error"]["code"] == code
    agent_token = await hub.login()
    assert (await hub.api("GET", "/api/conversations", agent_token)).json()["items"] == []


async def test_upload_needs_a_valid_visitor_token(hub: RunningHub) -> None:
    response = await hub.http.post("/webchat/upload", data={"visitor_token": "forged.x"},
                                   files={"file": ("a.png", PNG, "image/png")})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_visitor_token"


async def test_the_ticket_says_whether_the_visitor_has_the_chat_open(
        hub: RunningHub, clients: list[Client], monkeypatch: pytest.MonkeyPatch) -> None:
    presence = hub.services.presence
    left = asyncio.Event()
    leave = presence.leave

    async def leave_and_tell(visitor: str, sid: str) -> None:
        await leave(visitor, sid)
        left.set()

    monkeypatch.setattr(presence, "leave", leave_and_tell)
    chat = await customer(hub, clients)
    await chat.next("session")
    asked = await chat.call("message", {"text": "見ていますか"})
    token = await hub.login()
    path = f"/api/conversations/{asked['conversation_id']}"
    assert (await hub.api("GET", path, token)).json()["customer"]["online"] is True
    await chat.sio.disconnect()
    await asyncio.wait_for(left.wait(), 5)  # the server learns of it a moment later
    assert (await hub.api("GET", path, token)).json()["customer"]["online"] is False


async def test_agents_hear_when_the_visitors_last_tab_closes_and_a_new_one_opens(
        hub: RunningHub, clients: list[Client]) -> None:
    inbox = await agent(hub, clients)
    first = await customer(hub, clients)
    token = (await first.next("session"))["visitor_token"]
    asked = await first.call("message", {"text": "二つのタブで見ています"})
    # the first message makes the visitor a customer, who is online
    arrived = await inbox.next("customer.presence")
    assert arrived["online"] is True
    second = await customer(hub, clients, visitor_token=token)
    await second.next("session")
    await first.sio.disconnect()  # one tab is still open: nothing to tell
    await second.sio.disconnect()
    ticket = (await hub.api("GET", f"/api/conversations/{asked['conversation_id']}",
                            await hub.login())).json()
    assert arrived["customer_id"] == ticket["customer"]["id"]
    gone = await inbox.next("customer.presence")
    assert gone == {"customer_id": ticket["customer"]["id"], "online": False}
    back = await customer(hub, clients, visitor_token=token)
    await back.next("session")
    assert (await inbox.next("customer.presence"))["online"] is True
    assert inbox.queue("customer.presence").empty()


async def test_a_merge_or_unmerge_tells_the_open_chat_its_ticket(
        hub: RunningHub, clients: list[Client]) -> None:
    from channels.base import Inbound

    chat = await customer(hub, clients)
    await chat.next("session")
    first = await chat.call("message", {"text": "返品について"})
    assert (await chat.next("session"))["conversation_id"] == first["conversation_id"]
    token = await hub.login()
    visitor = (await hub.api("GET", f"/api/conversations/{first['conversation_id']}",
                             token)).json()["customer"]["id"]
    mail = await hub.services.ingestor.ingest(Inbound(
        channel="email", identity_kind="email", identity_value="hanako@example.com",
        text="先日の注文の件です", external_id="<merge-1@example.com>"))
    mailer = mail.customer.id

    merged = await hub.api("POST", f"/api/customers/{mailer}/merge", token,
                           json={"other_id": visitor})
    assert merged.status_code == 200, merged.text
    now = (await chat.next("session"))["conversation_id"]
    assert (await chat.call("message", {"text": "続きです"}))["conversation_id"] == now

    restored = await hub.api("POST", f"/api/customers/{mailer}/unmerge", token,
                             json={"other_id": visitor})
    assert restored.status_code == 200, restored.text
    back = (await chat.next("session"))["conversation_id"]
    assert (await chat.call("message", {"text": "また私です"}))["conversation_id"] == back


async def test_pages_and_scripts_name_their_charset_once(hub: RunningHub) -> None:
    for path in ("/widget.js", "/chat", "/login", "/static/chat.js", "/healthz"):
        response = await hub.http.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].count("charset") <= 1, (
            path, response.headers["content-type"])
    widget = await hub.http.get("/widget.js")
    assert widget.headers["content-type"] == "text/javascript; charset=utf-8"


async def test_agents_hear_of_a_visitor_whose_chat_died_with_another_process(
        hub: RunningHub, clients: list[Client], monkeypatch: pytest.MonkeyPatch) -> None:
    """With Redis, a live process's presence sweep names the visitors a crashed process
    held (tests/hub/test_presence.py); the web chat tells the agents they are offline."""
    watched: list[Any] = []
    monkeypatch.setattr(hub.services.presence, "watch", watched.append)
    await hub.services.adapters["web"].start()
    [gone_with_a_process] = watched
    inbox = await agent(hub, clients)
    chat = await customer(hub, clients)
    token = (await chat.next("session"))["visitor_token"]
    await chat.call("message", {"text": "見ていますか"})
    assert (await inbox.next("customer.presence"))["online"] is True

    await gone_with_a_process(hub.services.adapters["web"].visitor_of(token))
    assert (await inbox.next("customer.presence"))["online"] is False
