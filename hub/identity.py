"""How channels know a person: normalising identity values, and joining customers.

Identities join a customer, strongest first: a one-time link code, the same verified
value, or an agent merge (audited, reversible).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
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
    Direction,
    Identity,
    IdentityKind,
    Status,
    TimelineItem,
    utcnow,
)

DEFAULT_PHONE_REGION = "JP"
# Customer.attributes: the display name was made up by the hub, not given by the person
PLACEHOLDER_NAME = "placeholder_name"
_GUEST_NAME = re.compile(r"Guest (\S{1,4})")
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


def guest_name(visitor: str) -> str:
    """The name of a visitor the hub knows nothing about: "Guest" and the end of their id."""
    return f"Guest {visitor[-4:].upper()}"


def guest_code(name: str | None) -> str | None:
    """"1A2B" when ``name`` is one ``guest_name`` gave ("Guest 1A2B"), else None."""
    found = _GUEST_NAME.fullmatch(name) if name is not None else None
    return found[1] if found else None


def is_guest_name(name: str | None) -> bool:
    """Whether ``name`` is one ``guest_name`` gives, not a person's name."""
    return guest_code(name) is not None


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
    # What the source knew that the target did not; the source's placeholder flag says its
    # own name was made up, nothing about the target's.
    moved["attributes"] = [k for k in source.attributes
                           if k not in target.attributes and k != PLACEHOLDER_NAME]
    target.attributes = {**{k: source.attributes[k] for k in moved["attributes"]},
                         **target.attributes}
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
    last_used = (await session.execute(
        select(TimelineItem.channel).where(TimelineItem.conversation_id == conversation.id,
                                           TimelineItem.direction == Direction.INBOUND)
        .order_by(TimelineItem.created_at.desc(), TimelineItem.id.desc()).limit(1)
    )).scalar_one_or_none()
    if last_used is not None:  # where a reply without a channel goes
        conversation.last_channel = last_used
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


# --- addresses a customer gives (unverified) and how they are proven -------------------

CLAIMS = "claimed_identities"  # Customer.attributes: "kind:value" the customer gave
GIVABLE_KINDS = frozenset({IdentityKind.EMAIL, IdentityKind.PHONE, IdentityKind.CRM})


def claim_key(kind: str, value: str) -> str:
    return f"{kind}:{value}"


def claims_of(customer: Customer) -> list[tuple[str, str]]:
    """What ``customer`` said is theirs (given in chat or by an agent), as (kind, value)."""
    found = customer.attributes.get(CLAIMS)
    pairs = []
    for entry in found if isinstance(found, list) else []:
        kind, _, value = str(entry).partition(":")
        if kind and value:
            pairs.append((kind, value))
    return pairs


def _add_claim(customer: Customer, kind: str, value: str) -> None:
    key = claim_key(kind, value)
    claims = [str(c) for c in customer.attributes.get(CLAIMS) or []]
    if key not in claims:  # reassigned, not mutated: the JSON column tracks assignments
        customer.attributes = {**customer.attributes, CLAIMS: [*claims, key][-20:]}


@dataclass(frozen=True)
class Given:
    """What became of an address a customer gave: stored on them (unverified), already
    theirs, or held by another customer (``holder_id``: the inbox suggests a merge)."""

    kind: str
    value: str
    identity: Identity | None
    holder_id: int | None = None
    created: bool = False


async def give_identity(session: AsyncSession, customer_id: int, kind: str, value: str, *,
                        actor_id: int | None = None, actor_type: str = "agent",
                        source: str = "agent") -> Given:
    """A customer gave an address (in chat, or to an agent): it becomes an *unverified*
    identity of theirs. Unverified, it never pulls another channel's messages in on its own
    (see ``unproven_claim``); a reply to our own mail or an agent verifies it. When another
    customer already holds the value, nothing moves: the claim is kept, so both customers'
    merge suggestions name each other."""
    if kind not in GIVABLE_KINDS:
        raise InvalidIdentity(f"{kind!r} identities cannot be given, only proven")
    value = normalize_identity(kind, value)
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise LookupError(f"customer {customer_id} not found")
    if customer.merged_into_id is not None:
        raise MergeError("customer was merged into another")
    _add_claim(customer, kind, value)
    existing = await find_identity(session, kind, value)
    if existing is None:
        identity = Identity(customer_id=customer_id, kind=kind, value=value, verified=False)
        session.add(identity)
        await session.flush()
        audit(session, "identity.added", "customer", customer_id, actor_id, actor_type,
              kind=kind, value=value, source=source)
        return Given(kind, value, identity, created=True)
    if existing.customer_id == customer_id:
        return Given(kind, value, existing)
    audit(session, "identity.claimed", "customer", customer_id, actor_id, actor_type,
          kind=kind, value=value, source=source, holder_id=existing.customer_id)
    return Given(kind, value, None, holder_id=existing.customer_id)


async def set_verified(session: AsyncSession, customer_id: int, kind: str, value: str,
                       verified: bool = True, *, actor_id: int | None = None,
                       actor_type: str = "agent", reason: str | None = None) -> Identity:
    """An agent (or a proof such as a reply to our own mail) vouches for an identity."""
    value = normalize_identity(kind, value)
    identity = await find_identity(session, kind, value)
    if identity is None or identity.customer_id != customer_id:
        raise LookupError(f"customer {customer_id} has no {kind} identity {value!r}")
    if identity.verified != verified:
        identity.verified = verified
        audit(session, "identity.verified" if verified else "identity.unverified",
              "customer", customer_id, actor_id, actor_type, kind=kind, value=value,
              **({"reason": reason} if reason else {}))
    return identity


async def has_spoken(session: AsyncSession, identity_id: int) -> bool:
    """Whether any message ever came from this identity (it is then its sender's own)."""
    found = await session.execute(select(TimelineItem.id).where(
        TimelineItem.identity_id == identity_id).limit(1))
    return found.first() is not None


async def unproven_claim(session: AsyncSession, kind: str, value: str) -> Identity | None:
    """The identity for ``value`` when it is only a claim: given (in chat or to an agent),
    never verified, and nothing ever came from it. A message from such a value must not
    join the customer who gave it (anyone can type any address)."""
    identity = await find_identity(session, kind, value)
    if identity is None or identity.verified or await has_spoken(session, identity.id or 0):
        return None
    return identity


async def release_claim(session: AsyncSession, identity: Identity, display_name: str,
                        placeholder: bool) -> Customer | None:
    """A message arrives from an unproven claim: the value moves to a customer of its own
    (the message's sender), and the giver keeps the claim, so the inbox suggests merging the
    two ("same e-mail address as …"). None when someone else moved it first."""
    giver_id = identity.customer_id
    sender = Customer(display_name=display_name[:200],
                      attributes={PLACEHOLDER_NAME: True} if placeholder else {})
    session.add(sender)
    await session.flush()
    moved = await session.execute(
        update(Identity).where(Identity.id == identity.id, Identity.customer_id == giver_id,
                               Identity.verified.is_(False))
        .values(customer_id=sender.id).execution_options(synchronize_session=False))
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return None
    giver = await session.get(Customer, giver_id)
    if giver is not None:
        _add_claim(giver, identity.kind, identity.value)
    audit(session, "identity.released", "customer", giver_id, actor_type="channel",
          kind=identity.kind, value=identity.value, to_customer_id=sender.id)
    return sender
