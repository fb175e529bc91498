"""Continue on LINE, end to end on a live hub: web chat (Socket.IO) → link code → signed LINE
webhook carrying the code → one ticket, two channels, in order → the agent's reply goes out
on LINE. Also the supervisors' quota view and LINE account link."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import socketio
from sqlalchemy import select

from channels.line import LineChannel
from hub.models import Identity
from hub.settings import Settings
from tests.conftest import RunningHub
from tests.fakes.line_api import PUSH, REPLY, FakeLine, line_settings
from tests.fakes.line_webhook import (
    body,
    event,
    headers,
    text,
    user_id,
)

TIMEOUT = 10


@pytest.fixture
def settings(database_url: str, tmp_path: Path, fake_line: FakeLine) -> Settings:
    return line_settings(database_url, tmp_path, fake_line, line_basic_id="@omohub")


async def webhook(hub: RunningHub, *events: dict[str, Any]) -> None:
    raw = body(*events)
    response = await hub.http.post("/webhooks/line", content=raw, headers=headers(raw))
    assert response.status_code == 200, response.text


async def web_chat_link(hub: RunningHub,
                        first: str = "PCで見ている商品について") -> tuple[int, str, str]:
    """A web visitor writes ``first``, then presses "LINEで続ける": (ticket, code, link)."""
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(hub.url, namespaces=["/webchat"], transports=["websocket"],
                         wait_timeout=TIMEOUT)
    try:
        ack = await client.call("message", {"text": first},
                                namespace="/webchat", timeout=TIMEOUT)
        link = await client.call("link", {"target": "line"}, namespace="/webchat",
                                 timeout=TIMEOUT)
    finally:
        await client.disconnect()
    assert ack["ok"] and link["ok"], (ack, link)
    return ack["conversation_id"], link["code"], link["url"]


async def test_web_chat_continues_on_line(hub: RunningHub, fake_line: FakeLine) -> None:
    conversation_id, code, url = await web_chat_link(hub)
    assert url.startswith("https://line.me/R/oaMessage/%40omohub/?") and code in url
    line_user = user_id(300)
    await webhook(hub, text(line_user, f"引き継ぎコード {code}"))
    await webhook(hub, text(line_user, "続きはLINEで"))

    token = await hub.login()
    ticket = (await hub.api("GET", f"/api/conversations/{conversation_id}", token)).json()
    assert ticket["channels"] == ["web", "line"]
    timeline = [(i["channel"], i["type"], i["text"] or i["data"].get("event"))
                for i in ticket["timeline"]]
    assert timeline == [("web", "message", "PCで見ている商品について"),
                        ("line", "system", "channel_switched"),
                        ("line", "message", f"引き継ぎコード {code}"),
                        ("line", "message", "続きはLINEで")]
    identities = {(i["kind"], i["verified"]) for i in ticket["customer"]["identities"]}
    assert ("line", True) in identities

    sent = await hub.api("POST", f"/api/conversations/{conversation_id}/messages", token,
                         json={"text": "LINEでご案内します"})
    assert sent.status_code in {200, 201}, sent.text
    await fake_line.wait_for(lambda f: len(f.deliveries) == 1)
    [reply] = fake_line.deliveries
    assert reply.path == REPLY and reply.texts == ["LINEでご案内します"]


async def test_a_line_user_with_a_ticket_of_their_own_still_moves_the_web_chat(
        hub: RunningHub) -> None:
    """Their earlier LINE ticket folds into the web one, and the timeline still says the
    conversation moved from web chat to LINE when the code arrives."""
    conversation_id, code, _ = await web_chat_link(hub)
    line_user = user_id(310)
    await webhook(hub, text(line_user, "先週の注文について"))  # their own LINE ticket
    await webhook(hub, text(line_user, f"引き継ぎコード {code}"))

    token = await hub.login()
    ticket = (await hub.api("GET", f"/api/conversations/{conversation_id}", token)).json()
    switches = [i["data"] for i in ticket["timeline"]
                if i["data"].get("event") == "channel_switched"]
    assert [(s["from"], s["to"]) for s in switches] == [("web", "line")]
    assert [i["text"] for i in ticket["timeline"] if i["type"] == "message"] == [
        "PCで見ている商品について", "先週の注文について", f"引き継ぎコード {code}"]


async def test_wrong_or_reused_code_changes_no_customer(hub: RunningHub) -> None:
    conversation_id, code, _ = await web_chat_link(hub)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    await webhook(hub, text(user_id(301), f"コード {wrong}"))
    await webhook(hub, text(user_id(302), f"引き継ぎコード {code}"))
    await webhook(hub, text(user_id(303), f"引き継ぎコード {code}"))  # reused
    async with hub.services.sessions() as session:
        rows = (await session.execute(select(Identity))).scalars().all()
    web_customer = next(i.customer_id for i in rows if i.kind == "web")
    joined = {i.value for i in rows if i.customer_id == web_customer and i.kind == "line"}
    assert joined == {user_id(302)}
    token = await hub.login()
    mine = (await hub.api("GET", f"/api/conversations/{conversation_id}", token)).json()
    assert [i["text"] for i in mine["timeline"] if i["channel"] == "line"
            and i["type"] == "message"] == [f"引き継ぎコード {code}"]


async def test_supervisors_see_the_push_quota(hub: RunningHub, fake_line: FakeLine) -> None:
    fake_line.quota = 5000
    await webhook(hub, text(user_id(310), "質問"))
    channel = hub.services.adapters["line"]
    assert isinstance(channel, LineChannel)
    from channels.base import Outbound

    assert (await channel.send(Outbound(10**6, 0, "line", user_id(310), "push", "agent"))).ok
    lead = await hub.login("lead@example.com", "lead-password")
    quota = await hub.api("GET", "/api/line/quota", lead)
    assert quota.json() == {"type": "limited", "limit": 5000, "used": 1}
    agent = await hub.login()
    assert (await hub.api("GET", "/api/line/quota", agent)).status_code == 403
    assert (await hub.http.get("/api/line/quota")).status_code == 401


async def test_account_link_joins_the_customer_who_logged_in(hub: RunningHub,
                                                            fake_line: FakeLine) -> None:
    conversation_id, _, _ = await web_chat_link(hub)
    async with hub.services.sessions() as session:
        web = (await session.execute(select(Identity).where(Identity.kind == "web"))).scalar_one()
    line_user = user_id(320)
    token = await hub.login()
    issued = await hub.api("POST", "/api/line/account-link/token", token,
                           json={"user_id": line_user})
    assert issued.status_code == 201 and fake_line.to(f"/v2/bot/user/{line_user}/linkToken")
    nonce = await hub.api("POST", "/api/line/account-link/nonce", token, json={
        "customer_id": web.customer_id, "link_token": issued.json()["link_token"]})
    answer = nonce.json()
    assert answer["redirect_url"].startswith(
        "https://access.line.me/dialog/bot/accountLink?linkToken=")
    linked = event("accountLink", line_user, link={"result": "ok", "nonce": answer["nonce"]})
    await webhook(hub, linked)
    replayed = event("accountLink", user_id(321), link={"result": "ok",
                                                         "nonce": answer["nonce"]})
    await webhook(hub, replayed)  # a nonce works once
    async with hub.services.sessions() as session:
        rows = (await session.execute(select(Identity).where(Identity.kind == "line"))).all()
    owners = {i.value: i.customer_id for (i,) in rows}
    assert owners[line_user] == web.customer_id
    assert owners[user_id(321)] != web.customer_id
    ticket = (await hub.api("GET", f"/api/conversations/{conversation_id}", token)).json()
    assert ticket["timeline"][-1]["data"]["event"] == "line_account_linked"
    assert fake_line.to(PUSH) == []
