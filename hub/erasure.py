"""Erasing a customer for good (GDPR art. 17, an APPI deletion request).

Everything the hub keeps about the person goes in one transaction: the customer record,
every identity, every ticket with its whole timeline, replies still waiting in the outbox,
link codes, merge records, the failed link attempts of their identities, and the files
stored for their timeline (uploads, LINE and MMS media, raw e-mail). Customers merged into
them are the same person and go with them. The audit log keeps that it happened — who, which
customer number, how many rows — never what was erased, and the addresses that earlier audit
entries about them name are blanked. Agents' inboxes are told that the tickets are gone.

Call recordings live with Twilio (the hub only streams them): once the rows are gone, the
phone channel deletes them there too; the answer says how many there were and how many
went (a failure is logged, and the count tells whoever erases to finish it by hand).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub import events
from hub.files import FileStore
from hub.identity import audit
from hub.models import (
    AuditEvent,
    Conversation,
    Customer,
    CustomerMerge,
    Identity,
    ItemKind,
    LinkAttempt,
    LinkCode,
    OutboxItem,
    TimelineItem,
)
from hub.tickets import TicketError

log = logging.getLogger(__name__)

ERASED = "[erased]"
AUDIT_KEYS_WITH_VALUES = ("value", "identity")  # e.g. identity.added's address
FILE_URL_PREFIX = "/files/"
_RECORDING_SID = re.compile(r"/Recordings/(RE[0-9a-fA-F]{32})")


@dataclass
class Erasure:
    """What one erasure removed (counts only: the audit entry repeats them)."""

    customer_id: int
    deleted: dict[str, int] = field(default_factory=dict)
    conversation_ids: list[int] = field(default_factory=list)
    audit_entries_redacted: int = 0
    provider_recordings: int = 0  # call recordings the provider (Twilio) holds
    recording_sids: list[str] = field(default_factory=list)  # theirs, to delete there
    provider_recordings_deleted: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "deleted": self.deleted,
                "audit_entries_redacted": self.audit_entries_redacted,
                "provider_recordings": self.provider_recordings,
                "provider_recordings_deleted": self.provider_recordings_deleted}


async def erase_customer(session: AsyncSession, files: FileStore, customer_id: int,
                         actor_id: int | None) -> Erasure:
    """Delete the customer and everything keyed to them, within ``session``'s transaction;
    their files are removed last, just before the caller commits (see ``_remove_files``)."""
    people = await _same_person(session, customer_id)
    tickets = _conversations_of(people).with_for_update()  # no new item joins them meanwhile
    erasure = Erasure(customer_id,
                      conversation_ids=list((await session.execute(tickets)).scalars()))
    stored, erasure.recording_sids = await _media_of(session, people)
    erasure.provider_recordings = len(erasure.recording_sids)
    await _detach_survivors(session, people)
    erasure.deleted = await _delete_rows(session, people)
    erasure.audit_entries_redacted = await _redact_audit(session, people)
    erasure.deleted["files"] = await _remove_files(files, stored)
    audit(session, "customer.erased", "customer", customer_id, actor_id, **erasure.deleted,
          audit_entries_redacted=erasure.audit_entries_redacted,
          provider_recordings=erasure.provider_recordings)
    return erasure


async def announce_erasure(bus: events.EventBus, erasure: Erasure) -> None:
    """After the commit: every agent's inbox drops the erased tickets."""
    for conversation_id in erasure.conversation_ids:
        payload = {"id": conversation_id, "customer_id": erasure.customer_id}
        await bus.publish(events.Event(events.CONVERSATION_DELETED, payload, conversation_id))


async def _same_person(session: AsyncSession, customer_id: int) -> list[int]:
    """The customer and every customer merged into them (at any depth), locked against
    concurrent writes (on PostgreSQL; SQLite has one writer at a time anyway)."""
    customer = await session.get(Customer, customer_id, with_for_update=True)
    if customer is None:
        raise LookupError(f"customer {customer_id} not found")
    if customer.merged_into_id is not None:
        raise TicketError("merged_customer", f"customer {customer_id} was merged into "
                          f"customer {customer.merged_into_id}: erase that customer", 409)
    people, newest = [customer_id], [customer_id]
    while newest:
        newest = list((await session.execute(select(Customer.id).where(
            Customer.merged_into_id.in_(newest)).with_for_update())).scalars())
        people += newest
    return people


def _conversations_of(people: list[int]) -> Any:
    return select(Conversation.id).where(Conversation.customer_id.in_(people))


def _items_of(people: list[int]) -> Any:
    return select(TimelineItem.id).where(
        TimelineItem.conversation_id.in_(_conversations_of(people)))


def _identities_of(people: list[int]) -> Any:
    return select(Identity.id).where(Identity.customer_id.in_(people))


async def _media_of(session: AsyncSession,
                    people: list[int]) -> tuple[list[dict[str, Any]], list[str]]:
    """The stored files the timeline refers to (attachments, raw mail: any ``/files/`` url),
    and the ids of the call recordings the provider keeps."""
    rows = await session.execute(
        select(TimelineItem.kind, TimelineItem.attachments, TimelineItem.data).where(
            TimelineItem.conversation_id.in_(_conversations_of(people))))
    stored: list[dict[str, Any]] = []
    recordings: list[str] = []
    for kind, attachments, data in rows:
        stored += _file_refs([attachments, data])
        found = _RECORDING_SID.search(str(data.get("recording_url") or ""))
        if kind == ItemKind.RECORDING and found and found[1] not in recordings:
            recordings.append(found[1])
    return stored, recordings


def _file_refs(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [ref for entry in value for ref in _file_refs(entry)]
    if not isinstance(value, dict):
        return []
    if str(value.get("url", "")).startswith(FILE_URL_PREFIX):
        return [value]
    return _file_refs(list(value.values()))


async def _detach_survivors(session: AsyncSession, people: list[int]) -> None:
    """Rows that stay but point at what goes (another ticket folded into one of theirs, an
    item or a code another customer holds that names their identity) let go of it."""
    conversations, identities = _conversations_of(people), _identities_of(people)
    await _run(session, update(Conversation).where(
        Conversation.merged_into_id.in_(conversations)).values(merged_into_id=None))
    await _run(session, update(TimelineItem).where(
        TimelineItem.identity_id.in_(identities),
        TimelineItem.conversation_id.not_in(conversations)).values(identity_id=None))
    await _run(session, update(LinkCode).where(
        LinkCode.used_by_identity_id.in_(identities)).values(used_by_identity_id=None))


async def _delete_rows(session: AsyncSession, people: list[int]) -> dict[str, int]:
    """Children before parents, so every foreign key holds at each statement."""
    conversations = _conversations_of(people)
    senders = [f"{kind}:{value}"[:340] for kind, value in (await session.execute(
        select(Identity.kind, Identity.value).where(Identity.customer_id.in_(people)))).all()]
    deleted = {
        "outbox": await _run(session, delete(OutboxItem).where(
            OutboxItem.item_id.in_(_items_of(people)))),
        "items": await _run(session, delete(TimelineItem).where(
            TimelineItem.conversation_id.in_(conversations))),
        "link_codes": await _run(session, delete(LinkCode).where(or_(
            LinkCode.customer_id.in_(people), LinkCode.conversation_id.in_(conversations)))),
        "merges": await _run(session, delete(CustomerMerge).where(or_(
            CustomerMerge.target_id.in_(people), CustomerMerge.source_id.in_(people)))),
        "conversations": await _run(session, delete(Conversation).where(
            Conversation.customer_id.in_(people))),
        "link_attempts": await _run(session, delete(LinkAttempt).where(
            LinkAttempt.sender.in_(senders))) if senders else 0,
        "identities": await _run(session, delete(Identity).where(
            Identity.customer_id.in_(people))),
    }
    deleted["customers"] = await _run(session, delete(Customer).where(Customer.id.in_(people)))
    return deleted


async def _redact_audit(session: AsyncSession, people: list[int]) -> int:
    """Earlier audit entries about them keep what happened, not the addresses involved."""
    entries = (await session.execute(select(AuditEvent).where(
        AuditEvent.subject_type == "customer", AuditEvent.subject_id.in_(people)))).scalars()
    redacted = 0
    for entry in entries:
        named = [key for key in AUDIT_KEYS_WITH_VALUES if key in entry.data]
        if named:  # reassigned, not mutated: the JSON column tracks assignments
            entry.data = {**entry.data, **dict.fromkeys(named, ERASED)}
            redacted += 1
    await session.flush()
    return redacted


async def _remove_files(files: FileStore, stored: list[dict[str, Any]]) -> int:
    """Remove the stored files; returns how many were there.

    This runs after every row is deleted and before the commit, on purpose: should the
    commit fail, the rows are still there and a second erasure finishes the job; the other
    order could leave files that nothing refers to any more, which nobody would ever find."""
    return await asyncio.to_thread(_unlink_all, files, stored)


def _unlink_all(files: FileStore, stored: list[dict[str, Any]]) -> int:
    removed = 0
    for ref in stored:
        key, _, name = ref["url"][len(FILE_URL_PREFIX):].partition("/")
        path = files.path_for(key, name)  # checks the key and name: never outside the store
        if path is None:
            continue
        path.unlink()
        removed += 1
        try:
            path.parent.rmdir()  # each upload has a folder of its own
        except OSError:
            log.warning("file folder %s not empty after erasure", key)
    return removed


async def _run(session: AsyncSession, statement: Any) -> int:
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]
