"""Agent merges are audited and reversible: unmerge puts every row back where it was."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from hub import db
from hub.identity import (
    PLACEHOLDER_NAME,
    MergeError,
    give_identity,
    merge_customers,
    unmerge_customers,
)
from hub.models import (
    AuditEvent,
    Conversation,
    Customer,
    Identity,
    TimelineItem,
    utcnow,
)
from tests.conftest import RunningHub

_names = itertools.count()

def _ticket(status: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"status": status,
                                  "messages": st.integers(min_value=0, max_value=4)})


# A customer has at most one unresolved ticket (ingest keeps it so), plus resolved ones.
tickets = st.tuples(
    st.lists(_ticket(st.sampled_from(["open", "pending"])), max_size=1),
    st.lists(_ticket(st.just("resolved")), max_size=2),
).map(lambda parts: [*parts[1], *parts[0]])
person = st.fixed_dictionaries({
    "identities": st.lists(st.sampled_from(["web", "line", "email", "phone"]), min_size=1,
                           max_size=3, unique=True),
    "tickets": tickets,
    "attributes": st.dictionaries(st.sampled_from(["plan", "city", "lang"]),
                                  st.text(max_size=5), max_size=2),
})


async def _make_customer(session: Any, spec: dict[str, Any]) -> int:
    tag = next(_names)
    customer = Customer(display_name=f"customer {tag}", attributes=spec["attributes"])
    session.add(customer)
    await session.flush()
    for kind in spec["identities"]:
        value = {"email": f"c{tag}@example.com", "phone": f"+8190{tag:08d}"}.get(
            kind, f"{kind}-{tag}")
        session.add(Identity(customer_id=customer.id, kind=kind, value=value))
    for number, spec_ticket in enumerate(spec["tickets"]):
        conversation = Conversation(
            customer_id=customer.id, status=spec_ticket["status"],
            resolved_at=utcnow() if spec_ticket["status"] == "resolved" else None)
        session.add(conversation)
        await session.flush()
        session.add_all([TimelineItem(conversation_id=conversation.id, channel="web",
                                      direction="in", sender_type="customer",
                                      text=f"{tag}/{number}/{n}")
                         for n in range(spec_ticket["messages"])])
    await session.flush()
    return customer.id  # type: ignore[return-value]


async def _snapshot(session: Any, customer_ids: list[int]) -> dict[str, Any]:
    conversations = (await session.execute(select(Conversation).where(
        Conversation.customer_id.in_(customer_ids)))).scalars().all()
    owner = {c.id: c.customer_id for c in conversations}
    items = (await session.execute(select(TimelineItem).where(
        TimelineItem.conversation_id.in_(list(owner) or [0])))).scalars().all()
    identities = (await session.execute(select(Identity).where(
        Identity.customer_id.in_(customer_ids)))).scalars().all()
    customers = (await session.execute(select(Customer).where(
        Customer.id.in_(customer_ids)))).scalars().all()
    return {
        "item_customer": {i.id: owner[i.conversation_id] for i in items},
        "item_conversation": {i.id: i.conversation_id for i in items},
        "conversations": {c.id: (c.customer_id, c.status, c.merged_into_id)
                          for c in conversations},
        "identities": {i.id: i.customer_id for i in identities},
        "attributes": {c.id: c.attributes for c in customers},
        "merged_into": {c.id: c.merged_into_id for c in customers},
    }


async def _merge_and_unmerge(url: str, target: dict[str, Any], source: dict[str, Any]) -> None:
    engine = db.create_engine(url)
    sessions = db.session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            target_id = await _make_customer(session, target)
            source_id = await _make_customer(session, source)
        ids = [target_id, source_id]
        async with sessions() as session:
            before = await _snapshot(session, ids)
        async with sessions() as session, session.begin():
            await merge_customers(session, target_id, source_id, actor_id=None)
        async with sessions() as session:
            merged = await _snapshot(session, ids)
            open_tickets = (await session.execute(select(Conversation).where(
                Conversation.customer_id == target_id, Conversation.status != "resolved",
                Conversation.merged_into_id.is_(None)))).scalars().all()
        assert set(merged["item_customer"].values()) <= {target_id}
        assert set(merged["identities"].values()) <= {target_id}
        assert len(open_tickets) <= 1
        async with sessions() as session, session.begin():
            await unmerge_customers(session, target_id, actor_id=None)
        async with sessions() as session:
            after = await _snapshot(session, ids)
        assert after == before
    finally:
        await engine.dispose()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=person, source=person)
def test_merge_then_unmerge_restores_every_message_to_its_customer(
        database_url: str, target: dict[str, Any], source: dict[str, Any]) -> None:
    asyncio.run(_merge_and_unmerge(database_url, target, source))


async def test_merge_folds_two_open_tickets_into_one(hub: RunningHub) -> None:
    from channels.base import Inbound

    token = await hub.login()
    web = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="pc", text="from the PC"))
    mail = await hub.services.ingestor.ingest(Inbound(
        channel="email", identity_kind="email", identity_value="h@example.jp", text="by mail"))
    response = await hub.api("POST", f"/api/customers/{web.customer.id}/merge", token,
                             json={"other_id": mail.customer.id})
    assert response.status_code == 200, response.text
    profile = response.json()
    assert {i["kind"] for i in profile["identities"]} == {"web", "email"}
    detail = (await hub.api("GET", f"/api/conversations/{web.conversation.id}", token)).json()
    assert [i["text"] for i in detail["timeline"]] == ["from the PC", "by mail"]
    assert detail["channels"] == ["email", "web"]
    assert detail["last_channel"] == "email"  # a reply without a channel goes by mail
    async with hub.services.sessions() as session:
        actions = (await session.execute(select(AuditEvent.action))).scalars().all()
    assert "customer.merge" in actions

    undone = await hub.api("POST", f"/api/customers/{web.customer.id}/unmerge", token)
    assert undone.status_code == 200 and undone.json()["restored_id"] == mail.customer.id
    detail = (await hub.api("GET", f"/api/conversations/{web.conversation.id}", token)).json()
    assert [i["text"] for i in detail["timeline"]] == ["from the PC"]
    assert detail["last_channel"] == "web"
    other = (await hub.api("GET", f"/api/conversations/{mail.conversation.id}", token)).json()
    assert [i["text"] for i in other["timeline"]] == ["by mail"]
    assert other["status"] == "open"


async def test_merge_refuses_self_and_unknown(hub: RunningHub) -> None:
    from channels.base import Inbound

    token = await hub.login()
    web = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="pc", text="hi"))
    same = await hub.api("POST", f"/api/customers/{web.customer.id}/merge", token,
                         json={"other_id": web.customer.id})
    assert same.status_code == 400
    unknown = await hub.api("POST", f"/api/customers/{web.customer.id}/merge", token,
                            json={"other_id": 999999})
    assert unknown.status_code == 404
    nothing = await hub.api("POST", f"/api/customers/{web.customer.id}/unmerge", token)
    assert nothing.status_code == 404


async def test_merged_customer_cannot_be_merged_again(services: Any) -> None:
    async with services.sessions() as session, session.begin():
        spec = {"identities": ["web"], "tickets": [], "attributes": {}}
        a, b, c = [await _make_customer(session, spec) for _ in range(3)]
        await merge_customers(session, a, b, None)
        with pytest.raises(MergeError):
            await merge_customers(session, c, b, None)


# --- merge suggestions rest on a shared identity or a real name (D7) -------------------

async def _suggested(hub: RunningHub, customer_id: int) -> dict[int, str]:
    response = await hub.api("GET", f"/api/customers/{customer_id}/suggestions",
                             await hub.login())
    assert response.status_code == 200, response.text
    return {item["id"]: item["reason"] for item in response.json()["items"]}


async def _visitor(hub: RunningHub, value: str, kind: str = "web",
                   name: str | None = None) -> int:
    from channels.base import Inbound

    result = await hub.services.ingestor.ingest(Inbound(
        channel=kind, identity_kind=kind, identity_value=value,
        text="hello", display_name=name))
    return result.customer.id  # type: ignore[return-value]


async def test_anonymous_guests_are_never_suggested_on_their_names(hub: RunningHub) -> None:
    guests = [await _visitor(hub, f"visitor-{n}a1b") for n in range(3)]  # all "Guest A1B…"
    mail = [await _visitor(hub, f"taro{n}@example.com", "email") for n in range(2)]
    flag_lost = await _visitor(hub, "visitor-3a1b")
    async with hub.services.sessions() as session, session.begin():
        customer = await session.get(Customer, flag_lost)
        assert customer is not None and customer.display_name == "Guest 3A1B"
        customer.attributes = {}  # still the hub's guest name, whatever the flags say
    # a real name, but one that every "Guest …" resembles (WRatio 85)
    hotel = await _visitor(hub, "front@hotel.example", "email", name="Guest Relations Team")
    for customer_id in [*guests, *mail, flag_lost, hotel]:
        assert await _suggested(hub, customer_id) == {}


async def test_real_names_are_still_suggested_and_shared_identities_always(
        hub: RunningHub) -> None:
    first = await _visitor(hub, "visitor-1", name="山田 太郎")
    second = await _visitor(hub, "U" + "3" * 32, "line", name="山田太郎")
    guest = await _visitor(hub, "visitor-2")
    mail = await _visitor(hub, "hanako@example.jp", "email")
    async with hub.services.sessions() as session, session.begin():
        await give_identity(session, guest, "email", "hanako@example.jp")
    assert await _suggested(hub, first) == {second: "similar_name"}
    assert await _suggested(hub, guest) == {mail: "same_identity"}
    assert await _suggested(hub, mail) == {guest: "same_identity"}


async def test_a_real_name_stays_real_after_absorbing_a_guest(hub: RunningHub) -> None:
    """The guest's placeholder flag describes the guest's made-up name, not the target's:
    merged in, it must not turn the target's real name into a placeholder."""
    named = await _visitor(hub, "visitor-9", name="山田 太郎")
    guest = await _visitor(hub, "visitor-8")
    merged = await hub.api("POST", f"/api/customers/{named}/merge", await hub.login(),
                           json={"other_id": guest})
    assert merged.status_code == 200, merged.text
    async with hub.services.sessions() as session:
        customer = await session.get(Customer, named)
        assert customer is not None and PLACEHOLDER_NAME not in customer.attributes
    other = await _visitor(hub, "U" + "4" * 32, "line", name="山田太郎")
    assert await _suggested(hub, other) == {named: "similar_name"}
