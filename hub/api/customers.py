"""Customer profiles, merge suggestions, and audited merge / unmerge."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody
from rapidfuzz import fuzz, process
from sqlalchemy import select

from hub import events
from hub.api.deps import ServicesDep
from hub.identity import merge_customers, unmerge_customers
from hub.models import Agent, Conversation, Customer, Identity
from hub.serialize import conversation_summary, customer_name, identity_json, iso

SUGGESTION_SCAN = 5000


class MergeBody(msgspec.Struct):
    other_id: int


class UnmergeBody(msgspec.Struct):
    other_id: int | None = None


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
        "id": customer.id, "display_name": customer_name(customer),
        "identities": [identity_json(i) for i in identities],
        "attributes": {k: v for k, v in customer.attributes.items() if k != "placeholder_name"},
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

    @get("/{customer_id:int}/suggestions")
    async def merge_suggestions(self, customer_id: FromPath[int],
                                services: ServicesDep) -> dict[str, Any]:
        """Other customers who look like the same person (fuzzy name and contact match)."""
        async with services.sessions() as session:
            customer = await session.get(Customer, customer_id)
            if customer is None:
                raise LookupError(f"customer {customer_id} not found")
            others = (await session.execute(
                select(Customer.id, Customer.display_name).where(
                    Customer.id != customer_id, Customer.merged_into_id.is_(None))
                .order_by(Customer.id.desc()).limit(SUGGESTION_SCAN))).all()
        choices = {row.id: row.display_name for row in others if row.display_name}
        matches = process.extract(customer.display_name, choices, scorer=fuzz.WRatio,
                                  limit=5, score_cutoff=80)
        return {"items": [{"id": key, "display_name": name, "score": round(score, 1)}
                          for name, score, key in matches]}

    @post("/{customer_id:int}/merge", status_code=200)
    async def merge(self, customer_id: FromPath[int], data: JSONBody[MergeBody],
                    request: Request[Agent, str, Any], services: ServicesDep) -> dict[str, Any]:
        async with services.sessions() as session, session.begin():
            merge = await merge_customers(session, customer_id, data.other_id, request.user.id)
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
        await _announce_customer(services, customer_id)
        await _announce_customer(services, merge.source_id)
        profile = await customer_profile(services, customer_id)
        return {**profile, "restored_id": merge.source_id}


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
