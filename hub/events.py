"""In-process event bus: actions publish after commit, subscribers (realtime, bot, routing)
react. Realtime is a notification, never the source of truth."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MESSAGE_CREATED = "message.created"
MESSAGE_UPDATED = "message.updated"
CONVERSATION_UPDATED = "conversation.updated"
CONVERSATION_DELETED = "conversation.deleted"  # {"id", "customer_id"}: erased, drop it
TYPING = "typing"
# {"customer_id", "other_id", "unmerged"}: other was merged into customer_id, or restored
CUSTOMER_MERGED = "customer.merged"
CUSTOMER_PRESENCE = "customer.presence"  # {"customer_id", "online"}: a chat opened or closed


@dataclass(frozen=True)
class Event:
    name: str
    payload: dict[str, Any]
    conversation_id: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Event], Awaitable[None]]


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def publish(self, event: Event) -> None:
        for handler in self._handlers:
            try:
                await handler(event)
            except Exception:  # a subscriber's failure must never undo a committed write
                log.exception("event handler failed for %s", event.name)
