"""The data model: one customer, many identities, one continuous ticket per customer.

Every row that appears in a ticket's timeline (message, call, recording, transcript,
video session, system event) lives in ``timeline_items`` so one ordered query shows it.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, always hands back aware UTC datetimes (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # On SQLite each of the two steps above is one more call per value on top of the
    # dialect's own text conversion, on every row ingest reads and writes: one function
    # does both, with the dialect's storage format ("2026-11-22 12:00:00.123456").

    def bind_processor(self, dialect: sa.Dialect) -> Any:
        return _sqlite_text if dialect.name == "sqlite" else super().bind_processor(dialect)

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> Any:
        if dialect.name == "sqlite":
            return _sqlite_datetime
        return super().result_processor(dialect, coltype)


@functools.lru_cache(maxsize=4096)  # formatting costs a microsecond; a batch shares its time
def _sqlite_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


def _sqlite_datetime(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:  # stored without a zone, in UTC: parsed with one, ten times cheaper than .replace()
        value = datetime.fromisoformat(text + "+00:00")
    except ValueError:  # written with a zone of its own
        value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time(nullable: bool = False, index: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_type=UTCDateTime, nullable=True, index=index)
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=index)


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_type=sa.JSON, nullable=False)


class Channel(StrEnum):
    WEB = "web"
    LINE = "line"
    EMAIL = "email"
    PHONE = "phone"
    SMS = "sms"
    VIDEO = "video"


class IdentityKind(StrEnum):
    WEB = "web"
    LINE = "line"
    EMAIL = "email"
    PHONE = "phone"
    CRM = "crm"


class Status(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"


class ItemKind(StrEnum):
    MESSAGE = "message"
    CALL = "call"
    RECORDING = "recording"
    TRANSCRIPT = "transcript"
    VIDEO = "video"
    SYSTEM = "system"


class Direction(StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"
    INTERNAL = "internal"


class SenderType(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    BOT = "bot"
    SYSTEM = "system"


class Delivery(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Customer(SQLModel, table=True):
    __tablename__ = "customers"

    id: int | None = Field(default=None, primary_key=True)
    display_name: str = Field(default="", max_length=200, index=True)
    attributes: dict[str, Any] = _json(dict)
    merged_into_id: int | None = Field(default=None, foreign_key="customers.id")
    created_at: datetime = _time()
    updated_at: datetime = _time()


class Identity(SQLModel, table=True):
    __tablename__ = "identities"
    __table_args__ = (sa.UniqueConstraint("kind", "value", name="uq_identity_kind_value"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", index=True)
    kind: str = Field(max_length=16)
    value: str = Field(max_length=320)
    verified: bool = False
    reachable: bool = True
    created_at: datetime = _time()


class Agent(SQLModel, table=True):
    __tablename__ = "agents"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    name: str = Field(default="", max_length=200)
    password_hash: str = Field(max_length=200)
    role: str = Field(default=Role.AGENT, max_length=16)
    locale: str = Field(default="ja", max_length=8)
    active: bool = True
    created_at: datetime = _time()


class Conversation(SQLModel, table=True):
    """The ticket. It belongs to a customer, never to a channel."""

    __tablename__ = "conversations"
    __table_args__ = (
        sa.Index("ix_conversations_status_activity", "status", "last_activity_at", "id"),
        sa.Index("ix_conversations_assignee_activity", "assignee_id", "last_activity_at", "id"),
        sa.Index("ix_conversations_activity", "last_activity_at", "id"),
        sa.Index("ix_conversations_customer_status", "customer_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id")
    status: str = Field(default=Status.OPEN, max_length=16)
    assignee_id: int | None = Field(default=None, foreign_key="agents.id")
    tags: list[str] = _json(list)
    channels: list[str] = _json(list)
    last_channel: str = Field(default=Channel.WEB, max_length=16)
    product_sku: str | None = Field(default=None, max_length=64)
    store_id: str | None = Field(default=None, max_length=64)
    locale: str | None = Field(default=None, max_length=8)
    bot_state: dict[str, Any] = _json(dict)
    unread_count: int = 0
    last_item_id: int | None = None
    last_preview: str = Field(default="", max_length=200)
    merged_into_id: int | None = Field(default=None, foreign_key="conversations.id")
    first_response_at: datetime | None = _time(nullable=True)
    resolved_at: datetime | None = _time(nullable=True)
    created_at: datetime = _time()
    last_activity_at: datetime = _time()


class TimelineItem(SQLModel, table=True):
    """A message, call, recording, transcript, video session or system event."""

    __tablename__ = "timeline_items"
    __table_args__ = (
        sa.UniqueConstraint("channel", "external_id", name="uq_item_channel_external_id"),
        sa.Index("ix_items_conversation_time", "conversation_id", "created_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id")
    kind: str = Field(default=ItemKind.MESSAGE, max_length=16)
    channel: str = Field(max_length=16)
    direction: str = Field(max_length=8)
    sender_type: str = Field(max_length=16)
    agent_id: int | None = Field(default=None, foreign_key="agents.id")
    identity_id: int | None = Field(default=None, foreign_key="identities.id")
    text: str = Field(default="", sa_type=sa.Text)
    attachments: list[dict[str, Any]] = _json(list)
    data: dict[str, Any] = _json(dict)
    external_id: str | None = Field(default=None, max_length=255)
    delivery_status: str = Field(default=Delivery.RECEIVED, max_length=16)
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime = _time()


class OutboxItem(SQLModel, table=True):
    """A reply waiting to leave; written in the same transaction as its timeline item."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="timeline_items.id", unique=True)
    channel: str = Field(max_length=16)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = _time()
    lease_until: datetime | None = _time(nullable=True)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = _time()
    sent_at: datetime | None = _time(nullable=True)


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    actor_type: str = Field(max_length=16)
    actor_id: int | None = None
    action: str = Field(max_length=64, index=True)
    subject_type: str = Field(max_length=32)
    subject_id: int | None = None
    data: dict[str, Any] = _json(dict)
    created_at: datetime = _time(index=True)


class CustomerMerge(SQLModel, table=True):
    """What a merge moved, so that unmerge can put every row back."""

    __tablename__ = "customer_merges"

    id: int | None = Field(default=None, primary_key=True)
    target_id: int = Field(foreign_key="customers.id", index=True)
    source_id: int = Field(foreign_key="customers.id", index=True)
    actor_id: int | None = Field(default=None, foreign_key="agents.id")
    moved: dict[str, Any] = _json(dict)
    created_at: datetime = _time()
    undone_at: datetime | None = _time(nullable=True)


class Product(SQLModel, table=True):
    __tablename__ = "products"

    sku: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    name_en: str = Field(default="", max_length=200)
    price: int = 0
    currency: str = Field(default="JPY", max_length=3)
    image_url: str = Field(default="", max_length=500)
    description: str = Field(default="", sa_type=sa.Text)


class Store(SQLModel, table=True):
    __tablename__ = "stores"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    address: str = Field(default="", max_length=500)


class LinkCode(SQLModel, table=True):
    """A one-time code that carries a ticket from one channel to another."""

    __tablename__ = "link_codes"

    id: int | None = Field(default=None, primary_key=True)
    code_digest: str = Field(max_length=64, unique=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True)
    customer_id: int = Field(foreign_key="customers.id")
    target: str = Field(max_length=16)
    created_by: int | None = Field(default=None, foreign_key="agents.id")
    created_at: datetime = _time()
    expires_at: datetime = _time()
    used_at: datetime | None = _time(nullable=True)
    used_by_identity_id: int | None = Field(default=None, foreign_key="identities.id")


class LinkAttempt(SQLModel, table=True):
    """Failed code attempts per sender, so guessing six digits stays impractical."""

    __tablename__ = "link_attempts"

    id: int | None = Field(default=None, primary_key=True)
    sender: str = Field(max_length=340, index=True)
    created_at: datetime = _time(index=True)


class Article(SQLModel, table=True):
    """A knowledge-base article as published to the bot (Markdown files are the source).

    The row holds the text the bot answers from while the article is published (version
    ``version``). An edit of a published article does not touch it: it is kept as a newer
    version, the pending draft ``draft_version``, until it is published (its text copied
    here) or discarded. An unpublished article has no pending draft: it is edited in place.
    """

    __tablename__ = "kb_articles"
    __table_args__ = (sa.UniqueConstraint("slug", "locale", name="uq_article_slug_locale"),)

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=120)
    locale: str = Field(max_length=8)
    title: str = Field(max_length=300)
    body: str = Field(default="", sa_type=sa.Text)
    questions: list[str] = _json(list)
    products: list[str] = _json(list)
    tags: list[str] = _json(list)
    published: bool = True
    version: int = 1
    draft_version: int | None = None  # the pending edit of a published article, if any
    updated_by: int | None = Field(default=None, foreign_key="agents.id")
    updated_at: datetime = _time()


class ArticleVersion(SQLModel, table=True):
    """One version of an article, whole (history is append-only: never edited or deleted)."""

    __tablename__ = "kb_article_versions"

    id: int | None = Field(default=None, primary_key=True)
    article_id: int = Field(foreign_key="kb_articles.id", index=True)
    version: int
    title: str = Field(max_length=300)
    body: str = Field(default="", sa_type=sa.Text)
    locale: str = Field(default="", max_length=8)
    questions: list[str] = _json(list)
    products: list[str] = _json(list)
    tags: list[str] = _json(list)
    published: bool = True
    draft: bool = False  # saved as a draft over the live text of a published article
    updated_by: int | None = Field(default=None, foreign_key="agents.id")
    created_at: datetime = _time()
