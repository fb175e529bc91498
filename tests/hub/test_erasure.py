"""Erasing a customer (GDPR art. 17 / APPI): everything keyed to them goes, in one
transaction, files included; supervisors only; audited without personal data; agents' inboxes
are told. Runs on SQLite and PostgreSQL (the ``hub`` fixture's databases)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, or_, select

from channels.base import Inbound
from hub import erasure
from hub.identity import give_identity
from hub.models import (
    Agent,
    AuditEvent,
    Conversation,
    Customer,
    CustomerMerge,
    Identity,
    LinkAttempt,
    LinkCode,
    OutboxItem,
    TimelineItem,
)
from hub.security import hash_password
from tests.conftest import RunningHub
from tests.socket_client import Client

LINE_USER = "U" + "e" * 32


@dataclass
class Person:
    customer_id: int
    merged_id: int
    conversation_ids: list[int]
    files: list[Path]


async def _lead(hub: RunningHub) -> str:
    return await hub.login("lead@example.com", "lead-password")


async def _person(hub: RunningHub) -> Person:
    """A customer with all the hub keeps: a web chat with a picture, an agent's reply (an
    outbox row), a link code, a recording, an address given (audited), a failed link attempt,
    and a LINE customer merged into them whose mail-like raw file is stored too."""
    services, ingest = hub.services, hub.services.ingestor.ingest
    picture = services.files.save("photo.png", b"\x89PNG\r\n\x1a\n...", "image/png")
    raw = services.files.save("message.eml", b"From: hanako@example.jp", "message/rfc822")
    web = await ingest(Inbound(channel="web", identity_kind="web", identity_value="v-erase",
                               text="山田花子です。写真です", display_name="山田 花子",
                               attachments=(picture,)))
    line = await ingest(Inbound(channel="line", identity_kind="line", identity_value=LINE_USER,
                                text="LINEからも", data={"raw": raw.as_dict()}))
    conversation_id: int = web.conversation.id  # type: ignore[assignment]
    await services.tickets.reply(conversation_id, "お調べします", agent_id=None)
    lead = await _lead(hub)
    link = await hub.api("POST", f"/api/conversations/{conversation_id}/links", lead,
                         json={"target": "web"})
    assert link.status_code in {200, 201}, link.text
    merged = await hub.api("POST", f"/api/customers/{web.customer.id}/merge", lead,
                           json={"other_id": line.customer.id})
    assert merged.status_code == 200, merged.text
    async with services.sessions() as session, session.begin():
        session.add(TimelineItem(conversation_id=conversation_id, kind="recording",
                                 channel="phone", direction="in", sender_type="customer",
                                 data={"recording_url": "https://api.twilio.com/2010-04-01/Accounts/"
                                                        f"AC{'0' * 32}/Recordings/RE{'1' * 32}"}))
        session.add(LinkAttempt(sender=f"line:{LINE_USER}"))
        await give_identity(session, web.customer.id,  # type: ignore[arg-type]
                            "email", "hanako@example.jp")
    conversations = {web.conversation.id, line.conversation.id}
    paths = [services.files.path_for(a.id, a.name) for a in (picture, raw)]
    assert all(path is not None for path in paths)
    return Person(web.customer.id, line.customer.id,  # type: ignore[arg-type]
                  sorted(conversations), paths)  # type: ignore[arg-type]


async def _bystander(hub: RunningHub) -> int:
    result = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="v-stays", text="I stay"))
    return result.customer.id  # type: ignore[return-value]


async def _left_of(hub: RunningHub, person: Person) -> dict[str, int]:
    """Rows that still name the person, table by table."""
    people = [person.customer_id, person.merged_id]
    conversations = person.conversation_ids
    checks: dict[str, Any] = {
        "customers": select(Customer).where(Customer.id.in_(people)),
        "identities": select(Identity).where(Identity.customer_id.in_(people)),
        "conversations": select(Conversation).where(Conversation.id.in_(conversations)),
        "items": select(TimelineItem).where(TimelineItem.conversation_id.in_(conversations)),
        "outbox": select(OutboxItem),
        "link_codes": select(LinkCode),
        "link_attempts": select(LinkAttempt),
        "merges": select(CustomerMerge).where(or_(CustomerMerge.target_id.in_(people),
                                                  CustomerMerge.source_id.in_(people))),
    }
    async with hub.services.sessions() as session:
        return {name: int((await session.execute(select(func.count()).select_from(
            query.subquery()))).scalar_one()) for name, query in checks.items()}


async def test_a_supervisor_erases_a_customer_and_everything_keyed_to_them(
        hub: RunningHub, clients: list[Client]) -> None:
    person = await _person(hub)
    bystander = await _bystander(hub)
    inbox = Client("/agent")
    clients.append(inbox)
    await inbox.connect(hub.url, {"token": await hub.login()})

    response = await hub.api("DELETE", f"/api/customers/{person.customer_id}",
                             await _lead(hub))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_id"] == person.customer_id
    assert body["deleted"] == {"customers": 2, "identities": 3, "conversations": 2,
                               "items": 4, "outbox": 1, "link_codes": 1, "link_attempts": 1,
                               "merges": 1, "files": 2}
    assert body["provider_recordings"] == 1 and body["audit_entries_redacted"] == 1
    assert body["provider_recordings_deleted"] == 0  # no phone channel here to ask
    assert await _left_of(hub, person) == dict.fromkeys(
        ["customers", "identities", "conversations", "items", "outbox", "link_codes",
         "link_attempts", "merges"], 0)
    assert not any(path.exists() or path.parent.exists() for path in person.files)
    gone = {(await inbox.next("conversation.deleted"))["id"] for _ in person.conversation_ids}
    assert gone == set(person.conversation_ids)

    lead = await _lead(hub)
    assert (await hub.api("GET", f"/api/customers/{person.customer_id}", lead)).status_code \
        == 404
    stays = await hub.api("GET", f"/api/customers/{bystander}", lead)
    assert stays.status_code == 200 and len(stays.json()["conversations"]) == 1


async def test_the_audit_log_records_the_erasure_without_personal_data(hub: RunningHub) -> None:
    person = await _person(hub)
    await hub.api("DELETE", f"/api/customers/{person.customer_id}", await _lead(hub))
    async with hub.services.sessions() as session:
        entries = (await session.execute(select(AuditEvent).where(
            AuditEvent.subject_type == "customer",
            AuditEvent.subject_id == person.customer_id))).scalars().all()
        lead_id = (await session.execute(select(Agent.id).where(
            Agent.email == "lead@example.com"))).scalar_one()
    [erased] = [e for e in entries if e.action == "customer.erased"]
    assert erased.actor_id == lead_id and erased.data["items"] == 4
    everything = msgspec.json.encode([e.data for e in entries]).decode()
    for personal in ("hanako", "山田", "花子", LINE_USER, "v-erase"):
        assert personal not in everything
    [added] = [e for e in entries if e.action == "identity.added"]
    assert added.data["value"] == "[erased]" and added.data["kind"] == "email"


async def test_only_supervisors_and_admins_erase(hub: RunningHub, agent_hashes: Any) -> None:
    customer_id = await _bystander(hub)
    agent = await hub.api("DELETE", f"/api/customers/{customer_id}", await hub.login())
    assert agent.status_code == 403 and agent.json()["error"]["code"] == "forbidden"
    for unknown_id in (999999, 2**63):
        unknown = await hub.api("DELETE", f"/api/customers/{unknown_id}", await _lead(hub))
        assert unknown.status_code in {400, 404}, unknown.text
        assert unknown.json()["error"]["code"] in {"not_found", "out_of_range"}
    assert (await hub.http.delete(f"/api/customers/{customer_id}")).status_code == 401

    async with hub.services.sessions() as session, session.begin():
        session.add(Agent(email="admin@example.com", name="Admin", role="admin",
                          password_hash=hash_password("admin-password")))
    admin = await hub.login("admin@example.com", "admin-password")
    erased = await hub.api("DELETE", f"/api/customers/{customer_id}", admin)
    assert erased.status_code == 200 and erased.json()["deleted"]["customers"] == 1
    again = await hub.api("DELETE", f"/api/customers/{customer_id}", admin)
    assert again.status_code == 404


async def test_a_customer_merged_into_another_is_erased_through_that_one(
        hub: RunningHub) -> None:
    person = await _person(hub)
    response = await hub.api("DELETE", f"/api/customers/{person.merged_id}", await _lead(hub))
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "merged_customer" and str(person.customer_id) in error["message"]
    assert (await _left_of(hub, person))["customers"] == 2  # nothing was touched


async def test_rows_of_other_customers_let_go_of_what_is_erased(hub: RunningHub) -> None:
    """A ticket folded into one of theirs, and an item elsewhere naming their identity,
    stay (they are someone else's) but no longer point at the erased rows."""
    person = await _person(hub)
    bystander = await _bystander(hub)
    async with hub.services.sessions() as session, session.begin():
        identity_id = (await session.execute(select(Identity.id).where(
            Identity.customer_id == person.customer_id).limit(1))).scalar_one()
        folded = Conversation(customer_id=bystander, status="resolved",
                              merged_into_id=person.conversation_ids[0])
        session.add(folded)
        await session.flush()
        session.add(TimelineItem(conversation_id=folded.id, channel="web", direction="in",
                                 sender_type="customer", identity_id=identity_id, text="x"))
    response = await hub.api("DELETE", f"/api/customers/{person.customer_id}",
                             await _lead(hub))
    assert response.status_code == 200, response.text
    async with hub.services.sessions() as session:
        kept = await session.get(Conversation, folded.id)
        item = (await session.execute(select(TimelineItem).where(
            TimelineItem.conversation_id == folded.id))).scalar_one()
    assert kept is not None and kept.merged_into_id is None and item.identity_id is None


async def test_an_erasure_that_fails_midway_changes_nothing(
        hub: RunningHub, monkeypatch: pytest.MonkeyPatch) -> None:
    person = await _person(hub)
    before = await _left_of(hub, person)

    async def broken(*_: object) -> int:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(erasure, "_redact_audit", broken)
    response = await hub.api("DELETE", f"/api/customers/{person.customer_id}",
                             await _lead(hub))
    assert response.status_code == 500
    assert await _left_of(hub, person) == before  # one transaction: all or nothing
    assert all(path.exists() for path in person.files)  # files go only at the very end


async def test_the_route_is_in_the_openapi_schema(hub: RunningHub) -> None:
    schema = (await hub.http.get("/schema/openapi.json")).json()
    erase = schema["paths"]["/api/customers/{customer_id}"]["delete"]
    assert "200" in erase["responses"] and "GDPR" in erase["summary"]
    assert "conversation.deleted" in erase["description"]
