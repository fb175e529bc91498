"""How channels know a person: normalising identity values, and joining customers.

Identities join a customer, strongest first: a one-time link code, the same verified
value, or an agent merge (audited, reversible).
"""

from __future__ import annotations

import unicodedata
from email.utils import parseaddr
from typing import Any

import phonenumbers
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.models import (
    AuditEvent,
    Conversation,
    Customer,
    CustomerMerge,
    Identity,
    IdentityKind,
    Status,
    TimelineItem,
    utcnow,
)

DEFAULT_PHONE_REGION = "JP"
_MAX_VALUE = 320


class InvalidIdentity(ValueError):
    pass


def normalize_email(value: str) -> str:
    _, address = parseaddr(unicodedata.normalize("NFKC", value).strip())
    address = address.strip().lower()
    local, _, domain = address.rpartition("@")
    if not local or not domain or "." not in domain or " " in address:
        raise InvalidIdentity(f"not an e-mail address: {value!r}")
    return address


def normalize_phone(value: str, region: str = DEFAULT_PHONE_REGION) -> str:
    text = unicodedata.normalize("NFKC", value).strip()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentity(f"not a phone number: {value!r}") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidIdentity(f"not a phone number: {value!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_identity(kind: str, value: str) -> str:
    """The one canonical spelling of an identity value, or ``InvalidIdentity``."""
    if kind == IdentityKind.EMAIL:
        return normalize_email(value)
    if kind == IdentityKind.PHONE:
        return normalize_phone(value)
    if kind not in {k.value for k in IdentityKind}:
        raise InvalidIdentity(f"unknown identity kind: {kind!r}")
    cleaned = unicodedata.normalize("NFC", value).strip()
    if not cleaned or len(cleaned) > _MAX_VALUE or any(ord(c) < 32 for c in cleaned):
        raise InvalidIdentity(f"bad {kind} identity value")
    return cleaned


async def find_identity(session: AsyncSession, kind: str, value: str) -> Identity | None:
    result = await session.execute(
        select(Identity).where(Identity.kind == kind, Identity.value == value)
    )
    return result.scalar_one_or_none()


async def join_identity(session: AsyncSession, customer_id: int, kind: str,
                        value: str) -> Identity:
    """A proven identity (a redeemed code, an account link) joins ``customer_id``: created
    verified, or — when it is another customer's — by merging that customer in (audited)."""
    identity = await find_identity(session, kind, value)
    if identity is None:
        identity = Identity(customer_id=customer_id, kind=kind, value=value, verified=True)
        session.add(identity)
        await session.flush()
        return identity
    if identity.customer_id != customer_id:
        await merge_customers(session, customer_id, identity.customer_id, actor_id=None)
        await session.refresh(identity)
    identity.verified = True
    return identity


def audit(session: AsyncSession, action: str, subject_type: str, subject_id: int | None,
          actor_id: int | None = None, actor_type: str = "agent", **data: Any) -> None:
    session.add(AuditEvent(actor_type=actor_type, actor_id=actor_id, action=action,
                           subject_type=subject_type, subject_id=subject_id, data=data))


class MergeError(ValueError):
    pass


async def merge_customers(session: AsyncSession, target_id: int, source_id: int,
                          actor_id: int | None) -> CustomerMerge:
    """Move ``source`` into ``target``; record every moved row so unmerge can undo it."""
    target, source = await _merge_pair(session, target_id, source_id)
    identity_ids = await _ids(session, select(Identity.id).where(Identity.customer_id == source_id))
    conversations = list((await session.execute(
        select(Conversation).where(Conversation.customer_id == source_id)
    )).scalars())
    moved: dict[str, Any] = {"identities": identity_ids,
                             "conversations": [c.id for c in conversations],
                             "items": {}, "folded": {}, "attributes": []}
    await session.execute(
        update(Identity).where(Identity.customer_id == source_id).values(customer_id=target_id)
    )
    for conversation in conversations:
        conversation.customer_id = target_id
    await _fold_open_tickets(session, target_id, conversations, moved)
    moved["attributes"] = [k for k in source.attributes if k not in target.attributes]
    target.attributes = {**source.attributes, **target.attributes}
    source.merged_into_id = target_id
    merge = CustomerMerge(target_id=target_id, source_id=source_id, actor_id=actor_id,
                          moved=moved)
    session.add(merge)
    await session.flush()
    audit(session, "customer.merge", "customer", target_id, actor_id,
          source_id=source_id, merge_id=merge.id)
    return merge


async def _merge_pair(session: AsyncSession, target_id: int,
                      source_id: int) -> tuple[Customer, Customer]:
    if target_id == source_id:
        raise MergeError("a customer cannot be merged into itself")
    target = await session.get(Customer, target_id)
    source = await session.get(Customer, source_id)
    if target is None or source is None:
        raise LookupError("customer not found")
    if target.merged_into_id or source.merged_into_id:
        raise MergeError("customer was already merged into another")
    return target, source


async def _fold_open_tickets(session: AsyncSession, target_id: int,
                             source_conversations: list[Conversation],
                             moved: dict[str, Any]) -> None:
    """One customer has one open ticket: fold the source's open ticket into the target's."""
    source_ids = {c.id for c in source_conversations}
    open_target = (await session.execute(
        select(Conversation).where(
            Conversation.customer_id == target_id, Conversation.status != Status.RESOLVED,
            Conversation.merged_into_id.is_(None), Conversation.id.not_in(source_ids or {0}),
        ).order_by(Conversation.last_activity_at.desc()).limit(1)
    )).scalar_one_or_none()
    if open_target is None:
        return
    for conversation in source_conversations:
        if conversation.status == Status.RESOLVED or conversation.merged_into_id:
            continue
        items = list((await session.execute(
            select(TimelineItem).where(TimelineItem.conversation_id == conversation.id)
        )).scalars())
        for item in items:
            moved["items"][str(item.id)] = conversation.id
            item.conversation_id = open_target.id
        moved["folded"][str(conversation.id)] = conversation.status
        conversation.merged_into_id = open_target.id
        conversation.status = Status.RESOLVED
        await refresh_conversation(session, conversation)
    await refresh_conversation(session, open_target)


async def unmerge_customers(session: AsyncSession, target_id: int, actor_id: int | None,
                            source_id: int | None = None) -> CustomerMerge:
    """Undo the latest (or the named) merge into ``target``: every row goes back."""
    query = select(CustomerMerge).where(CustomerMerge.target_id == target_id,
                                        CustomerMerge.undone_at.is_(None))
    if source_id is not None:
        query = query.where(CustomerMerge.source_id == source_id)
    merge = (await session.execute(
        query.order_by(CustomerMerge.id.desc()).limit(1))).scalar_one_or_none()
    if merge is None:
        raise LookupError("no merge to undo")
    moved = merge.moved
    for item_id, conversation_id in moved["items"].items():
        item = await session.get(TimelineItem, int(item_id))
        if item is not None:
            item.conversation_id = conversation_id
    for conversation_id in moved["conversations"]:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None:
            continue
        conversation.customer_id = merge.source_id
        if str(conversation_id) in moved["folded"]:
            conversation.status = moved["folded"][str(conversation_id)]
            conversation.merged_into_id = None
    if moved["identities"]:
        await session.execute(update(Identity).where(Identity.id.in_(moved["identities"]))
                              .values(customer_id=merge.source_id))
    await _restore_attributes(session, merge)
    await session.flush()
    for conversation_id in {*moved["conversations"], *moved["items"].values()}:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is not None:
            await refresh_conversation(session, conversation)
    for conversation in (await session.execute(select(Conversation).where(
            Conversation.customer_id == target_id))).scalars():
        await refresh_conversation(session, conversation)
    merge.undone_at = utcnow()
    audit(session, "customer.unmerge", "customer", target_id, actor_id,
          source_id=merge.source_id, merge_id=merge.id)
    return merge


async def _restore_attributes(session: AsyncSession, merge: CustomerMerge) -> None:
    target = await session.get(Customer, merge.target_id)
    source = await session.get(Customer, merge.source_id)
    assert target is not None and source is not None
    target.attributes = {k: v for k, v in target.attributes.items()
                         if k not in merge.moved.get("attributes", [])}
    source.merged_into_id = None


async def refresh_conversation(session: AsyncSession, conversation: Conversation) -> None:
    """Recompute a ticket's denormalised summary from its timeline."""
    await session.flush()
    last = (await session.execute(
        select(TimelineItem).where(TimelineItem.conversation_id == conversation.id)
        .order_by(TimelineItem.created_at.desc(), TimelineItem.id.desc()).limit(1)
    )).scalar_one_or_none()
    channels = (await session.execute(
        select(TimelineItem.channel).where(TimelineItem.conversation_id == conversation.id,
                                           TimelineItem.kind != "system").distinct()
    )).scalars()
    conversation.channels = sorted(set(channels))
    conversation.last_item_id = last.id if last else None
    conversation.last_preview = preview(last.text) if last else ""
    if last is not None:
        conversation.last_activity_at = last.created_at


async def _ids(session: AsyncSession, query: Any) -> list[int]:
    return list((await session.execute(query)).scalars())


def preview(text: str, limit: int = 140) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


async def set_reachable(session: AsyncSession, kind: str, value: str,
                        reachable: bool) -> Identity | None:
    """Mark an identity (un)reachable, e.g. a LINE user who blocked or re-added the
    account; None when we never saw it. Ingesting a message from it marks it reachable."""
    identity = await find_identity(session, kind, value)
    if identity is not None and identity.reachable != reachable:
        identity.reachable = reachable
        audit(session, "identity.reachable" if reachable else "identity.unreachable",
              "customer", identity.customer_id, actor_type="channel", kind=kind)
    return identity
