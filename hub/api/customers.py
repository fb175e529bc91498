"""Customer profiles, identities an agent adds or verifies, merge suggestions (same
identity first, then similar real names), audited merge / unmerge, and erasure."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, JSONBody
from rapidfuzz import fuzz, process
from sqlalchemy import Select, String, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.phone import PhoneChannel
from hub import events
from hub.api.deps import ServicesDep
from hub.auth import SUPERVISORS, require_role
from hub.db import pair_in, pair_params
from hub.erasure import announce_erasure, erase_customer
from hub.identity import (
    CLAIMS,
    PLACEHOLDER_NAME,
    claim_key,
    claims_of,
    give_identity,
    is_guest_name,
    merge_customers,
    set_verified,
    unmerge_customers,
)
from hub.models import Agent, Conversation, Customer, Identity
from hub.serialize import (
    conversation_summary,
    customer_brief,
    customer_name,
    identity_json,
    iso,
)

SUGGESTION_SCAN = 5000


class MergeBody(msgspec.Struct):
    other_id: int


class UnmergeBody(msgspec.Struct):
    other_id: int | None = None


class IdentityBody(msgspec.Struct):
    kind: str
    value: str


class VerifyBody(msgspec.Struct):
    kind: str
    value: str
    verified: bool = True


HIDDEN_ATTRIBUTES = {PLACEHOLDER_NAME, CLAIMS}
ERASURE = (
    "Supervisors and admins. Deletes the customer, their identities, their tickets with "
    "every timeline item, stored files, replies waiting in the outbox, link codes, merge "
    "records, and the customers merged into them, in one transaction. Answers "
    "`customer_id`, `deleted` (counts per kind), `audit_entries_redacted` (earlier audit "
    "entries whose address was blanked) and `provider_recordings` (call recordings Twilio "
    "still holds: delete them there). Audited as `customer.erased` (counts only); agents "
    "receive `conversation.deleted` `{\"id\", \"customer_id\"}` per ticket. A customer "
    "merged into another answers 409: erase the one they were merged into.")


async def customer_profile(services: ServicesDep, customer_id: int) -> dict[str, Any]:
    async with services.sessions() as session:
        customer = await session.get(Customer, customer_id)
        if customer is None:
            raise LookupError(f"customer {customer_id} not found")
        identities = (await session.execute(
            select(Identity).where(Identity.customer_id == customer_id))).scalars().all()
        conversations = (await session.execute(
            select(Conversation).where(Conversation.customer_id == customer_id)
            .order_by(Conversation.last_activity_at.desc()))).scalars().all()
    return {
        **customer_brief(customer), "identities": [identity_json(i) for i in identities],
        "attributes": {k: v for k, v in customer.attributes.items()
                       if k not in HIDDEN_ATTRIBUTES},
        "merged_into_id": customer.merged_into_id, "created_at": iso(customer.created_at),
        "conversations": [conversation_summary(c, customer) for c in conversations],
    }


class CustomerController(Controller):
    path = "/customers"
    tags: ClassVar[list[str]] = ["customers"]

    @get("/{customer_id:int}")
    async def get_customer(self, customer_id: FromPath[int],
                           services: ServicesDep) -> dict[str, Any]:
        return await customer_profile(services, customer_id)

    @delete("/{customer_id:int}", status_code=200, tags=["supervisors"],
            summary="Erase a customer for good (GDPR art. 17, APPI)", description=ERASURE)
    async def erase(self, customer_id: FromPath[int], request: Request[Agent, str, Any],
                    services: ServicesDep) -> dict[str, Any]:
        require_role(request.user, *SUPERVISORS)
        async with services.sessions() as session, session.begin():
            erasure = await erase_customer(session, services.files, customer_id,
                                           request.user.id)
        await announce_erasure(services.bus, erasure)
        phone = services.adapters.get("phone")
        if erasure.recording_sids and isinstance(phone, PhoneChannel):
            erasure.provider_recordings_deleted = await phone.delete_recordings(
                erasure.recording_sids)
        return erasure.as_json()

    @get("/{customer_id:int}/suggestions")
    async def merge_suggestions(self, customer_id: FromPath[int],
                                services: ServicesDep) -> dict[str, Any]:
        """Other customers who may be the same person: first those sharing an identity with
        this one (one holds an address the other gave: `reason` `same_identity`, with `kind`
        and `value`), then similar names (`reason` `similar_name`, fuzzy `score`). Names are
        compared only when they are real: never "Guest 1A2B" or an address standing in for
        a name, on either side."""
        async with services.sessions() as session:
            customer = await session.get(Customer, customer_id)
            if customer is None:
                raise LookupError(f"customer {customer_id} not found")
            items = await identity_matches(session, customer)
            if has_real_name(customer):
                items += await similar_names(session, customer, {item["id"] for item in items})
        return {"items": items}

    @post("/{customer_id:int}/identities", status_code=200)
    async def add_identity(self, customer_id: FromPath[int], data: JSONBody[IdentityBody],
                           request: Request[Agent, str, Any],
                           services: ServicesDep) -> dict[str, Any]:
        """An agent adds an address the customer gave (`email`, `phone` or `crm`), stored
        **unverified** and audited. When another customer already holds it, nothing is
        stored twice: the answer's `conflict` names that customer, and both customers'
        suggestions show the match for a merge."""
        async with services.sessions() as session, session.begin():
            given = await give_identity(session, customer_id, data.kind, data.value,
                                        actor_id=request.user.id)
            holder = (await session.get(Customer, given.holder_id)
                      if given.holder_id is not None else None)
        await _announce_customer(services, customer_id)
        profile = await customer_profile(services, customer_id)
        conflict = ({"customer_id": holder.id, "display_name": customer_name(holder),
                     "kind": given.kind, "value": given.value} if holder else None)
        return {**profile, "conflict": conflict}

    @post("/{customer_id:int}/identities/verify", status_code=200)
    async def verify_identity(self, customer_id: FromPath[int], data: JSONBody[VerifyBody],
                              request: Request[Agent, str, Any],
                              services: ServicesDep) -> dict[str, Any]:
        """An agent marks one of the customer's identities verified (or not); audited. A
        verified e-mail address joins the sender's mail to this customer automatically."""
        async with services.sessions() as session, session.begin():
            await set_verified(session, customer_id, data.kind, data.value, data.verified,
                               actor_id=request.user.id)
        await _announce_customer(services, customer_id)
        return await customer_profile(services, customer_id)

    @post("/{customer_id:int}/merge", status_code=200)
    async def merge(self, customer_id: FromPath[int], data: JSONBody[MergeBody],
                    request: Request[Agent, str, Any], services: ServicesDep) -> dict[str, Any]:
        async with services.sessions() as session, session.begin():
            merge = await merge_customers(session, customer_id, data.other_id, request.user.id)
        await _announce_merge(services, customer_id, data.other_id, unmerged=False)
        await _announce_customer(services, customer_id)
        profile = await customer_profile(services, customer_id)
        return {**profile, "merge_id": merge.id}

    @post("/{customer_id:int}/unmerge", status_code=200)
    async def unmerge(self, customer_id: FromPath[int], request: Request[Agent, str, Any],
                      services: ServicesDep,
                      data: JSONBody[UnmergeBody | None] = None) -> dict[str, Any]:
        source_id = data.other_id if data else None
        async with services.sessions() as session, session.begin():
            merge = await unmerge_customers(session, customer_id, request.user.id, source_id)
        await _announce_merge(services, customer_id, merge.source_id, unmerged=True)
        await _announce_customer(services, customer_id)
        await _announce_customer(services, merge.source_id)
        profile = await customer_profile(services, customer_id)
        return {**profile, "restored_id": merge.source_id}


async def _announce_merge(services: ServicesDep, customer_id: int, other_id: int,
                          unmerged: bool) -> None:
    """Open chat windows of either customer learn which ticket they now write into."""
    await services.bus.publish(events.Event(events.CUSTOMER_MERGED, {
        "customer_id": customer_id, "other_id": other_id, "unmerged": unmerged}))


async def _announce_customer(services: ServicesDep, customer_id: int) -> None:
    async with services.sessions() as session:
        customer = await session.get(Customer, customer_id)
        conversations = (await session.execute(select(Conversation).where(
            Conversation.customer_id == customer_id))).scalars().all()
    for conversation in conversations:
        await services.bus.publish(events.Event(
            events.CONVERSATION_UPDATED,
            conversation_summary(conversation, customer),  # type: ignore[arg-type]
            conversation.id))


def identity_match_query(customer_id: int) -> Select[Any]:
    """Other live customers' identities among the pairs bound with ``pair_params``."""
    return (select(Identity.kind, Identity.value, Customer)
            .join(Customer, Customer.id == Identity.customer_id)
            .where(pair_in(Identity.kind, Identity.value), Customer.id != customer_id,
                   Customer.merged_into_id.is_(None)))


async def identity_matches(session: AsyncSession, customer: Customer) -> list[dict[str, Any]]:
    """Customers holding a value this one gave, and customers who gave a value this one
    holds (an address typed in chat that mail then came from, unproven)."""
    found: dict[int, dict[str, Any]] = {}
    claims = claims_of(customer)
    if claims:
        rows = (await session.execute(identity_match_query(customer.id),
                                      pair_params(claims))).all()
        for kind, value, other in rows:
            found.setdefault(other.id, _identity_match(other, kind, value))
    held = (await session.execute(select(Identity.kind, Identity.value).where(
        Identity.customer_id == customer.id).limit(20))).all()
    for kind, value in held:
        needle = json.dumps(claim_key(kind, value))  # as the JSON column spells it
        rows = (await session.execute(select(Customer).where(
            cast(Customer.attributes, String).contains(needle, autoescape=True),
            Customer.id != customer.id, Customer.merged_into_id.is_(None)).limit(5))).scalars()
        for other in rows:
            if (kind, value) in claims_of(other):
                found.setdefault(other.id, _identity_match(other, kind, value))
    return list(found.values())


def has_real_name(customer: Customer) -> bool:
    """A name a person gave: not the hub's "Guest 1A2B", nor an address standing in for a
    name (``placeholder_name``). Only real names are compared for merge suggestions: two
    anonymous visitors' names are alike without saying anything about who they are."""
    return (bool(customer.display_name) and not customer.attributes.get(PLACEHOLDER_NAME)
            and not is_guest_name(customer.display_name))


async def similar_names(session: AsyncSession, customer: Customer,
                        listed: set[int]) -> list[dict[str, Any]]:
    """Other customers with a real name like this one's (fuzzy), best first."""
    placeholder = Customer.attributes[PLACEHOLDER_NAME].as_boolean()
    others = (await session.execute(
        select(Customer.id, Customer.display_name).where(
            Customer.id != customer.id, Customer.merged_into_id.is_(None),
            Customer.display_name != "", or_(placeholder.is_(None), placeholder.is_(False)))
        .order_by(Customer.id.desc()).limit(SUGGESTION_SCAN))).all()
    choices = {row.id: row.display_name for row in others
               if row.id not in listed and not is_guest_name(row.display_name)}
    matches = process.extract(customer.display_name, choices, scorer=fuzz.WRatio,
                              limit=5, score_cutoff=80)
    return [{"id": key, "display_name": name, "score": round(score, 1),
             "reason": "similar_name"} for name, score, key in matches]


def _identity_match(other: Customer, kind: str, value: str) -> dict[str, Any]:
    return {"id": other.id, "display_name": customer_name(other), "score": 100.0,
            "reason": "same_identity", "kind": kind, "value": value}
