"""Which customer a mail joins: an address a customer only *gave* (typed in web chat, or
told an agent) is unverified and never pulls mail in by itself; a reply to our own mail, or
an agent, verifies it; otherwise the mail keeps its own customer and the inbox suggests the
merge ("same e-mail address as …")."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from channels.base import Inbound
from channels.email import EmailChannel
from channels.email.parse import parse_message
from hub import events
from hub.ingest import IngestResult
from hub.models import AuditEvent, Customer, TimelineItem
from hub.services import Services
from hub.settings import Settings
from tests.channels.test_email import (
    agent_reply,
    email_identity,
    email_settings,
    make_mail,
    timeline,
    token_for,
)
from tests.conftest import RunningHub
from tests.fakes.smtp_sink import SmtpSink
from tests.socket_client import Client


@pytest.fixture
def settings(database_url: str, tmp_path: Path, sink: SmtpSink) -> Settings:
    return email_settings(database_url, tmp_path, sink).with_changes(bot_enabled=False)


def email_of(services: Services) -> EmailChannel:
    channel = services.adapters["email"]
    assert isinstance(channel, EmailChannel)
    return channel


async def chat(services: Services, text: str, visitor: str = "visitor-1") -> IngestResult:
    return await services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value=visitor, text=text))


async def audit_actions(services: Services) -> list[str]:
    async with services.sessions() as session:
        return list((await session.execute(
            select(AuditEvent.action).order_by(AuditEvent.id))).scalars())


async def suggestions(hub: RunningHub, customer_id: int) -> list[dict[str, Any]]:
    response = await hub.api("GET", f"/api/customers/{customer_id}/suggestions",
                             await token_for(hub))
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_fresh_mail_from_an_address_given_in_chat_keeps_its_own_customer(
        hub: RunningHub) -> None:
    web = await chat(hub.services, "返事はこちらへ hanako@example.jp")
    assert web.customer.id is not None and web.conversation.id is not None
    notes = [i for i in await timeline(hub, web.conversation.id) if i["type"] == "system"]
    assert [n["data"]["event"] for n in notes] == ["identity_given"]
    assert notes[0]["data"]["value"] == "hanako@example.jp"

    stored = await email_of(hub.services).receive(
        make_mail(sender="Hanako <hanako@example.jp>", subject="別件")[0])
    assert stored.conversation_id not in {None, web.conversation.id}
    owner = await email_identity(hub.services, "hanako@example.jp")
    assert owner is not None and owner.customer_id != web.customer.id
    assert owner.verified is False

    [from_web] = await suggestions(hub, web.customer.id)
    assert from_web == {"id": owner.customer_id, "display_name": "Hanako", "score": 100.0,
                        "reason": "same_identity", "kind": "email",
                        "value": "hanako@example.jp"}
    [from_mail] = await suggestions(hub, owner.customer_id)
    assert from_mail["id"] == web.customer.id and from_mail["reason"] == "same_identity"

    merged = await hub.api("POST", f"/api/customers/{web.customer.id}/merge",
                           await token_for(hub), json={"other_id": owner.customer_id})
    assert merged.status_code == 200, merged.text
    assert {"kind": "email", "value": "hanako@example.jp", "verified": False,
            "reachable": True} in merged.json()["identities"]
    shown = await timeline(hub, web.conversation.id)
    assert [i["channel"] for i in shown if i["type"] == "message"] == ["web", "email"]
    assert await suggestions(hub, web.customer.id) == []
    actions = await audit_actions(hub.services)
    assert actions == ["identity.added", "identity.released", "customer.merge"]


async def test_a_reply_to_our_mail_proves_the_address_but_a_subject_tag_does_not(
        hub: RunningHub, sink: SmtpSink) -> None:
    web = await chat(hub.services, "hanako@example.jp に返信ください")
    assert web.conversation.id is not None
    await agent_reply(hub, web.conversation.id, "承知しました。")
    ours = parse_message((await sink.next()).raw)
    tagged, _ = make_mail(sender="hanako@example.jp", subject=f"Re: {ours.subject}")
    by_tag = await email_of(hub.services).receive(tagged)  # no In-Reply-To: not a proof
    assert by_tag.conversation_id != web.conversation.id
    released = await email_identity(hub.services, "hanako@example.jp")
    assert released is not None and released.customer_id != web.customer.id
    async with hub.services.sessions() as session:
        item = await session.get(TimelineItem, by_tag.item_id)
    assert item is not None and item.data["thread_refused"] == web.conversation.id


async def test_an_address_another_customer_holds_is_not_stored_twice(
        hub: RunningHub) -> None:
    first = await email_of(hub.services).receive(make_mail(sender="taro@example.jp")[0])
    holder = await email_identity(hub.services, "taro@example.jp")
    assert holder is not None and first.conversation_id is not None
    web = await chat(hub.services, "taro@example.jp です", visitor="visitor-2")
    assert web.customer.id is not None and web.conversation.id is not None
    still = await email_identity(hub.services, "taro@example.jp")
    assert still is not None and still.customer_id == holder.customer_id
    [note] = [i for i in await timeline(hub, web.conversation.id) if i["type"] == "system"]
    assert note["data"]["holder_id"] == holder.customer_id
    assert [s["id"] for s in await suggestions(hub, web.customer.id)] == [holder.customer_id]
    assert [s["id"] for s in await suggestions(hub, holder.customer_id)] == [web.customer.id]
    again = await email_of(hub.services).receive(make_mail(sender="taro@example.jp")[0])
    assert again.conversation_id == first.conversation_id  # the holder's mail stays theirs


async def test_agent_adds_and_verifies_an_address_then_mail_joins_the_customer(
        hub: RunningHub) -> None:
    web = await chat(hub.services, "電話で話した者です")
    customer_id = web.customer.id
    token = await token_for(hub)
    added = await hub.api("POST", f"/api/customers/{customer_id}/identities", token,
                          json={"kind": "email", "value": " Jiro@Example.JP "})
    assert added.status_code == 200, added.text
    assert added.json()["conflict"] is None
    assert {"kind": "email", "value": "jiro@example.jp", "verified": False,
            "reachable": True} in added.json()["identities"]
    verified = await hub.api("POST", f"/api/customers/{customer_id}/identities/verify", token,
                             json={"kind": "email", "value": "JIRO@example.jp"})
    assert verified.status_code == 200, verified.text
    assert {"kind": "email", "value": "jiro@example.jp", "verified": True,
            "reachable": True} in verified.json()["identities"]
    stored = await email_of(hub.services).receive(make_mail(sender="jiro@example.jp")[0])
    assert stored.conversation_id == web.conversation.id
    async with hub.services.sessions() as session:
        audit = (await session.execute(select(AuditEvent).where(
            AuditEvent.action == "identity.verified"))).scalar_one()
        assert audit.actor_type == "agent" and audit.actor_id is not None
        assert audit.subject_id == customer_id and audit.data["value"] == "jiro@example.jp"


async def test_agent_identity_api_refuses_what_it_cannot_do(hub: RunningHub) -> None:
    web = await chat(hub.services, "こんにちは")
    other = await email_of(hub.services).receive(make_mail(sender="taken@example.jp")[0])
    assert other.conversation_id is not None
    token = await token_for(hub)
    path = f"/api/customers/{web.customer.id}/identities"
    bad = await hub.api("POST", path, token, json={"kind": "email", "value": "not-an-address"})
    assert bad.status_code == 400
    line = await hub.api("POST", path, token, json={"kind": "line", "value": "U123"})
    assert line.status_code == 400  # LINE and web identities are proven, never typed
    missing = await hub.api("POST", "/api/customers/999999/identities", token,
                            json={"kind": "email", "value": "a@example.jp"})
    assert missing.status_code == 404
    taken = await hub.api("POST", path, token, json={"kind": "email", "value": "taken@example.jp"})
    assert taken.status_code == 200
    holder = await email_identity(hub.services, "taken@example.jp")
    assert holder is not None
    assert taken.json()["conflict"]["customer_id"] == holder.customer_id
    not_theirs = await hub.api("POST", f"{path}/verify", token,
                               json={"kind": "email", "value": "taken@example.jp"})
    assert not_theirs.status_code == 404
    async with hub.services.sessions() as session:
        held = await session.get(Customer, holder.customer_id)
        assert held is not None and held.merged_into_id is None
    assert (await hub.http.post(path, json={"kind": "email", "value": "a@b.jp"})).status_code == 401


async def test_a_visitor_who_left_gets_the_reply_by_mail_and_answers_into_the_ticket(
        hub: RunningHub, sink: SmtpSink) -> None:
    web = await chat(hub.services, "今日は時間がないので hanako@example.jp に返事をください")
    assert web.conversation.id is not None
    sent = await agent_reply(hub, web.conversation.id, "在庫を確認しました。", channel=None)
    assert sent["channel"] == "web"  # the channel the customer used last
    mail = parse_message((await sink.next()).raw)  # nobody had the chat open
    assert mail.text.startswith("在庫を確認しました。")
    assert f"[#{web.conversation.id}]" in mail.subject
    items = await timeline(hub, web.conversation.id)
    copy = next(i for i in items if i["channel"] == "email")
    assert copy["data"]["copy_of"] == sent["id"] and copy["sender_type"] == "agent"
    answer, _ = make_mail(sender="hanako@example.jp", subject=f"Re: {mail.subject}",
                          in_reply_to=mail.message_id)
    back = await email_of(hub.services).receive(answer)
    assert back.conversation_id == web.conversation.id
    _, history = await hub.services.tickets.customer_view("web", "visitor-1")
    assert [i["text"] for i in history if i["sender_type"] == "agent"] == ["在庫を確認しました。"]


async def test_a_visitor_still_in_the_chat_gets_no_mail(hub: RunningHub, sink: SmtpSink,
                                                         clients: list[Client]) -> None:
    delivered: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def watch(event: events.Event) -> None:  # runs after the follow-up's handler
        if event.name == events.MESSAGE_UPDATED and event.payload["channel"] == "web":
            await delivered.put(event.payload)

    hub.services.bus.subscribe(watch)
    tab = Client("/webchat")
    clients.append(tab)
    await tab.connect(hub.url, {})
    await tab.next("session")
    asked = await tab.call("message", {"text": "返事は hanako@example.jp でも"})
    sent = await agent_reply(hub, asked["conversation_id"], "こちらでご案内します。",
                             channel=None)
    assert (await tab.next("message"))["text"] == "こちらでご案内します。"
    assert (await asyncio.wait_for(delivered.get(), 10))["id"] == sent["id"]
    items = await timeline(hub, asked["conversation_id"])
    assert [i["channel"] for i in items if i["sender_type"] == "agent"] == ["web"]
