"""Turning an ``Outbound`` into LINE message objects: split, batch, key (pure)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from linebot.v3.messaging import (
    ImageMessage,
    Message,
    MessageAction,
    QuickReply,
    QuickReplyItem,
    TextMessage,
)

from channels.base import Outbound

TEXT_LIMIT = 5000  # LINE counts UTF-16 code units
MAX_PER_CALL = 5
MAX_QUICK_REPLIES = 13
QUICK_LABEL_LIMIT = 20
IMAGE_TYPES = {"image/jpeg", "image/png"}
RETRY_NAMESPACE = uuid.UUID("6b1f7c52-3c59-5b0e-9c55-0b0d7f1e4a11")


def _units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pieces of at most ``limit`` UTF-16 units, cut after a line break or space if one is
    in the last fifth of a piece; never inside a surrogate pair."""
    pieces: list[str] = []
    rest = text
    while rest:
        end, units = 0, 0
        while end < len(rest) and units + _units(rest[end]) <= limit:
            units += _units(rest[end])
            end += 1
        if end < len(rest):
            cut = max(rest.rfind("\n", 0, end), rest.rfind(" ", 0, end))
            end = cut + 1 if cut >= end * 4 // 5 else end
        pieces.append(rest[:end])
        rest = rest[end:]
    return pieces


def quick_reply(options: Iterable[Any]) -> QuickReply | None:
    items = []
    for option in list(options)[:MAX_QUICK_REPLIES]:
        text = str(option.get("text", "")) if isinstance(option, dict) else str(option)
        label = str(option.get("label", text)) if isinstance(option, dict) else text
        if text.strip():
            items.append(QuickReplyItem(action=MessageAction(
                label=label[:QUICK_LABEL_LIMIT], text=text)))
    return QuickReply(items=items) if items else None


def build_messages(outbound: Outbound, public_url: str) -> list[Message]:
    """Text (split), then images as image messages, other files as links; quick replies
    ride on the last message."""
    base = public_url.rstrip("/")
    messages: list[Message] = [TextMessage(text=piece) for piece in split_text(outbound.text)]
    links = []
    for attachment in outbound.attachments:
        url = f"{base}{attachment.get('url', '')}"
        if attachment.get("content_type") in IMAGE_TYPES:
            messages.append(ImageMessage(original_content_url=url, preview_image_url=url))
        else:
            links.append(f"{attachment.get('name', 'file')}: {url}")
    if links:
        messages.append(TextMessage(text="\n".join(links)[:TEXT_LIMIT]))
    replies = quick_reply(outbound.data.get("quick_replies") or [])
    if replies is not None and messages:
        messages[-1].quick_reply = replies
    return messages


def batches(messages: Sequence[Message], size: int = MAX_PER_CALL) -> list[list[Message]]:
    return [list(messages[i:i + size]) for i in range(0, len(messages), size)]


def retry_key(item_id: int, batch: int) -> str:
    """The same key for every attempt of the same batch, so LINE delivers it once."""
    return str(uuid.uuid5(RETRY_NAMESPACE, f"omohub-line:{item_id}:{batch}"))
