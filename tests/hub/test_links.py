"""Continue on another channel: a one-time code joins the new identity to the ticket."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from channels.base import Inbound
from hub import links
from hub.models import AuditEvent, Conversation, Identity, LinkCode, utcnow
from hub.services import Services
from hub.settings import Settings
from tests.conftest import RunningHub

LINE_USER = "U" + "4" * 32


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, secret_key="test-secret-" + "x" * 32,
                    data_dir=str(tmp_path / "data"), line_basic_id="@omohub",
                    twilio_phone_number="+81312345678")


async def _web_ticket(services: Services, visitor: str = "pc-visitor") -> tuple[int, int]:
    result = await services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value=visitor, text="PCから質問です"))
    return result.customer.id, result.conversation.id  # type: ignore[return-value]


async def _issue(services: Services, conversation_id: int, target: str = "line") -> str:
    async with services.sessions() as session, session.begin():
        issued = await links.issue(session, services.signer, services.settings,
                                   conversation_id, target)
    return issued.code


async def _redeem(services: Services, code: str, kind: str = "line",
                  value: str = LINE_USER) -> links.Redeemed | None:
    async with services.sessions() as session, session.begin():
        return await links.redeem(session, services.signer, code, kind, value)


async def test_code_moves_the_ticket_to_line(services: Services) -> None:
    customer_id, conversation_id = await _web_ticket(services)
    code = await _issue(services, conversation_id)
    redeemed = await _redeem(services, code)
    assert redeemed is not None and redeemed.customer_id == customer_id
    on_line = await services.ingestor.ingest(Inbound(
        channel="line", identity_kind="line", identity_value=LINE_USER,
        text=f"引き継ぎコード {code}"))
    assert on_line.conversation.id == conversation_id
    assert [i.data["event"] for i in on_line.system_items] == ["channel_switched"]
    assert on_line.system_items[0].data["from"] == "web"


async def test_used_wrong_and_expired_codes_change_nothing(services: Services) -> None:
    _, conversation_id = await _web_ticket(services)
    code = await _issue(services, conversation_id)
    assert await _redeem(services, code) is not None
    assert await _redeem(services, code, value="U" + "5" * 32) is None  # reused
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert await _redeem(services, wrong, value="U" + "6" * 32) is None
    fresh = await _issue(services, conversation_id)
    async with services.sessions() as session, session.begin():
        await session.execute(update(LinkCode).values(expires_at=utcnow() - timedelta(1)))
    assert await _redeem(services, fresh, value="U" + "7" * 32) is None
    async with services.sessions() as session:
        kinds = (await session.execute(select(Identity.value).where(
            Identity.kind == "line"))).scalars().all()
    assert kinds == [LINE_USER]


async def test_guessing_is_rate_limited(services: Services) -> None:
    _, conversation_id = await _web_ticket(services)
    code = await _issue(services, conversation_id)
    for guess in range(links.MAX_FAILED_ATTEMPTS):
        wrong = f"{(int(code) + 1 + guess) % 10**6:06d}"
        assert await _redeem(services, wrong) is None
    assert await _redeem(services, code) is None  # even the right code, for a while
    assert await _redeem(services, code, value="U" + "8" * 32) is not None  # others unaffected


async def test_code_of_a_resolved_ticket_never_joins(services: Services) -> None:
    _, conversation_id = await _web_ticket(services)
    code = await _issue(services, conversation_id)
    async with services.sessions() as session, session.begin():
        await session.execute(update(Conversation).values(status="resolved",
                                                          resolved_at=utcnow()))
    assert await _redeem(services, code) is None


async def test_known_line_customer_is_merged_and_audited(services: Services) -> None:
    line_result = await services.ingestor.ingest(Inbound(
        channel="line", identity_kind="line", identity_value=LINE_USER, text="LINEの履歴"))
    customer_id, conversation_id = await _web_ticket(services)
    code = await _issue(services, conversation_id)
    redeemed = await _redeem(services, code)
    assert redeemed is not None and redeemed.customer_id == customer_id
    async with services.sessions() as session:
        identity = (await session.execute(select(Identity).where(
            Identity.kind == "line"))).scalar_one()
        actions = (await session.execute(select(AuditEvent.action))).scalars().all()
        old = await session.get(Conversation, line_result.conversation.id)
    assert identity.customer_id == customer_id and identity.verified
    assert {"customer.merge", "link.redeemed"} <= set(actions)
    assert old is not None and old.merged_into_id == conversation_id


@given(st.integers(min_value=0, max_value=999_999), st.sampled_from(["", "コード ", "code: "]),
       st.booleans())
def test_code_is_found_in_a_message(number: int, prefix: str, full_width: bool) -> None:
    code = f"{number:06d}"
    wide = str.maketrans("0123456789", "０１２３４５６７８９")
    shown = code.translate(wide) if full_width else code
    assert links.find_code(f"{prefix}{shown} です") == code


@pytest.mark.parametrize("text", ["", "1234567", "12345", "注文番号 12-3456"])
def test_no_code_in_other_numbers(text: str) -> None:
    assert links.find_code(text) is None


async def test_links_api(hub: RunningHub) -> None:
    token = await hub.login()
    _, conversation_id = await _web_ticket(hub.services)
    path = f"/api/conversations/{conversation_id}/links"
    line = (await hub.api("POST", path, token, json={"target": "line"})).json()
    assert len(line["code"]) == 6 and line["code"].isdigit()
    assert line["url"].startswith("https://line.me/R/oaMessage/%40omohub/?")
    assert line["qr_svg"].startswith("<svg") and line["expires_at"].endswith("Z")
    phone = (await hub.api("POST", path, token, json={"target": "phone"})).json()
    assert phone["url"] == "tel:+81312345678"
    web = (await hub.api("POST", path, token, json={"target": "web"})).json()
    assert web["url"].endswith(f"/chat?link={web['code']}")
    bad = await hub.api("POST", path, token, json={"target": "fax"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_target"
    missing = await hub.api("POST", "/api/conversations/424242/links", token,
                            json={"target": "line"})
    assert missing.status_code == 404


async def test_web_link_continues_the_ticket_in_another_browser(hub: RunningHub) -> None:
    import socketio

    _, conversation_id = await _web_ticket(hub.services)
    code = await _issue(hub.services, conversation_id, "web")
    phone_browser = socketio.AsyncClient(reconnection=False)
    sessions: list[dict[str, object]] = []
    phone_browser.on("session", sessions.append, namespace="/webchat")
    await phone_browser.connect(hub.url, namespaces=["/webchat"], auth={"link": code},
                                transports=["websocket"], wait_timeout=10)  # not 1 s under load
    try:
        ack = await phone_browser.call("message", {"text": "スマホから続けます"},
                                       namespace="/webchat", timeout=10)
        assert ack["conversation_id"] == conversation_id
        issued = await phone_browser.call("link", {"target": "line"}, namespace="/webchat",
                                          timeout=10)
        assert issued["ok"] and issued["url"].startswith("https://line.me/")
    finally:
        await phone_browser.disconnect()


@pytest.mark.parametrize("text", ["注文番号 123456 の配送状況を教えてください",
                                  "Order 123456 has not arrived yet, can you check please?"])
def test_numbers_in_sentences_are_not_code_attempts(text: str) -> None:
    assert links.find_code(text) is None


@pytest.mark.parametrize("text", ["引き継ぎコード 123456", "123456", "コードは１２３４５６です",
                                  "my code is 123456, thanks"])
def test_messages_presenting_a_code(text: str) -> None:
    assert links.find_code(text) == "123456"
