"""The shapes every channel adapter speaks, and the protocol an adapter implements.

Adapters turn provider payloads into ``Inbound`` and turn ``Outbound`` into provider calls;
the hub never sees a provider payload and never imports an adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size: int
    url: str
    id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "content_type": self.content_type,
                "size": self.size, "url": self.url}


@dataclass(frozen=True)
class Inbound:
    """One thing a customer sent, in the one shape the hub ingests from every channel."""

    channel: str
    identity_kind: str
    identity_value: str
    text: str = ""
    external_id: str | None = None
    display_name: str | None = None
    identity_verified: bool = False
    attachments: tuple[Attachment, ...] = ()
    occurred_at: datetime | None = None
    kind: str = "message"
    data: dict[str, Any] = field(default_factory=dict)
    product_sku: str | None = None
    store_id: str | None = None
    locale: str | None = None
    # A ticket the provider's threading points at (e-mail In-Reply-To, a link code). The
    # hub honours it only when that ticket belongs to the same customer.
    conversation_hint: int | None = None


@dataclass(frozen=True)
class StatusUpdate:
    """A provider telling us what happened to something we sent."""

    channel: str
    external_id: str
    status: str
    error: str | None = None


@dataclass(frozen=True)
class Outbound:
    """A reply leaving the hub for one customer on one channel."""

    item_id: int
    conversation_id: int
    channel: str
    recipient: str
    text: str
    sender_type: str
    attachments: tuple[dict[str, Any], ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class SendResult:
    ok: bool
    external_id: str | None = None
    retryable: bool = False
    error: str | None = None
    # Delivered, but nobody was there to see it (a chat whose tabs are all closed): the
    # hub may follow up on a channel that reaches the customer later (hub/follow_up.py).
    recipient_away: bool = False
    # The channel it left on when the adapter handed it to another one (a text reply on a
    # phone ticket goes out as SMS); the outbox relabels the item so the timeline says so.
    channel: str | None = None


@dataclass(frozen=True)
class Capabilities:
    text_limit: int
    media_types: tuple[str, ...] = ()
    quick_replies: bool = False
    reply_window_seconds: int | None = None
    identity_kind: str = ""


@runtime_checkable
class ChannelAdapter(Protocol):
    name: str
    capabilities: Capabilities

    async def send(self, outbound: Outbound) -> SendResult: ...

    # Optional: ``async start()`` / ``async stop()`` for adapters with listeners or
    # connections of their own; the hub calls them after migrations and on shutdown.

