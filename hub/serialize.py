"""The JSON shapes of the API and the socket events, in one place."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from hub.identity import guest_code
from hub.models import Agent, Conversation, Customer, Identity, TimelineItem
from hub.rows import CustomerRow, ItemRow, TicketRow

Item = TimelineItem | ItemRow
Ticket = Conversation | TicketRow
Person = Customer | CustomerRow


@functools.lru_cache(maxsize=4096)  # several per event, and a batch's items share their time
def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with microseconds and a Z, so times sort as strings."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elif moment.utcoffset():
        moment = moment.astimezone(UTC)
    # isoformat is several times cheaper than strftime, and this runs for every event
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def customer_name(customer: Person) -> str:
    return customer.display_name or f"#{customer.id}"


def customer_brief(customer: Person) -> dict[str, Any]:
    """``guest_code``: "1A2B" when the name is the hub's "Guest 1A2B" for an anonymous
    visitor (else null), so the inbox can say it in the agent's language."""
    return {"id": customer.id, "display_name": customer_name(customer),
            "guest_code": guest_code(customer.display_name)}


def identity_json(identity: Identity) -> dict[str, Any]:
    return {"kind": identity.kind, "value": identity.value, "verified": identity.verified,
            "reachable": identity.reachable}


def agent_json(agent: Agent) -> dict[str, Any]:
    return {"id": agent.id, "email": agent.email, "name": agent.name, "role": agent.role,
            "locale": agent.locale}


def item_json(item: Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "conversation_id": item.conversation_id,
        "type": item.kind,
        "channel": item.channel,
        "direction": item.direction,
        "sender_type": item.sender_type,
        "agent_id": item.agent_id,
        "text": item.text,
        "attachments": item.attachments,
        "data": item.data,
        "internal": item.direction == "internal",
        "delivery_status": item.delivery_status,
        "error": item.error,
        "created_at": iso(item.created_at),
    }


def conversation_summary(conversation: Ticket, customer: Person) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "customer": customer_brief(customer),
        "status": conversation.status,
        "assignee_id": conversation.assignee_id,
        "channels": conversation.channels,
        "last_channel": conversation.last_channel,
        "tags": conversation.tags,
        "product": conversation.product_sku,
        "store": conversation.store_id,
        "locale": conversation.locale,
        "handoff": conversation.bot_state.get("mode", "bot"),
        "unread_count": conversation.unread_count,
        "last_message": {"id": conversation.last_item_id, "text": conversation.last_preview},
        "last_activity_at": iso(conversation.last_activity_at),
        "created_at": iso(conversation.created_at),
        "first_response_at": iso(conversation.first_response_at),
        "resolved_at": iso(conversation.resolved_at),
    }


def customer_item_json(item: Item) -> dict[str, Any]:
    """What a customer may see of a timeline item: never internal notes or agent ids."""
    return {
        "id": item.id,
        "conversation_id": item.conversation_id,
        "type": item.kind,
        "channel": item.channel,
        "sender_type": item.sender_type,
        "text": item.text,
        "attachments": item.attachments,
        "created_at": iso(item.created_at),
    }
