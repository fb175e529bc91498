"""Pure parsing of LINE webhook bodies: verify, validate, turn each event into a ``LineEvent``.

The signature is checked by line-bot-sdk's own ``WebhookParser`` validator (HMAC-SHA256 of
the raw body, constant-time compare) before anything else is looked at. Events are mapped
from the JSON; those the SDK's typed models would refuse after a valid signature (older
payload shapes without ``webhookEventId``, say) are mapped the same way and flagged
``lenient``, so nothing a verified sender wrote vanishes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from linebot.v3 import WebhookParser
from linebot.v3.models.events import UnknownEvent
from linebot.v3.webhooks import Event

from channels.base import Inbound
from hub import wire_json
from hub.serialize import iso

log = logging.getLogger(__name__)

CHANNEL = "line"
MEDIA_TYPES = {"image", "video", "audio", "file"}
# Events that belong to a 1:1 chat with a user and are turned into timeline items.
USER_EVENTS = {"message", "messageEdited", "postback", "follow"}
GROUP_SCOPES = {"group", "room"}


class BadSignature(ValueError):
    """Missing or wrong ``X-Line-Signature``: answer 401, store nothing."""


class BadBody(ValueError):
    """A correctly signed body that is not a LINE webhook payload: answer 400."""


@dataclass(frozen=True)
class LineEvent:
    """One webhook event, reduced to what the hub does with it.

    ``action`` is one of ``ingest`` (a timeline item), ``follow`` (item + profile + greeting),
    ``unfollow``, ``unsend``, ``account_link`` or ``ignore`` (group/room scope, logged).
    """

    action: str
    type: str
    user_id: str | None
    timestamp: int
    event_id: str
    inbound: Inbound | None = None
    target_id: str | None = None  # unsend: the LINE message id taken back
    link: dict[str, Any] = field(default_factory=dict)
    media: dict[str, Any] | None = None


def sign(secret: str, body: bytes) -> str:
    """``X-Line-Signature`` for ``body`` (what LINE sends; used by tests and the benchmark)."""
    mac = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def parse(parser: WebhookParser, secret: str, body: bytes, signature: str | None,
          strict: bool = False) -> list[LineEvent]:
    """Verify ``body`` and map every event; raises ``BadSignature`` or ``BadBody``.

    The signature is checked by the SDK parser's own validator. ``strict`` also builds the
    SDK's typed (pydantic v1) event models to decide which events are ``lenient``; that costs
    0.1-0.25 ms per event, so the webhook uses the cheap equivalent test instead: the
    current payload shape (``webhookEventId`` + ``deliveryContext``), which is exactly what
    the models refuse on older bodies (test_line_fixtures checks both agree on every
    fixture)."""
    if not signature:
        raise BadSignature("missing X-Line-Signature")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:  # the SDK verifies text; check the raw bytes instead
        if not hmac.compare_digest(sign(secret, body), signature):
            raise BadSignature("invalid signature") from exc
        raise BadBody("body is not UTF-8") from exc
    if not parser.signature_validator.validate(text, signature):
        raise BadSignature("invalid signature")
    raw_events = _load(text)
    current = sdk_accepts if strict else current_shape
    return [map_event(raw, lenient=not current(raw)) for raw in raw_events]


def _load(text: str) -> list[dict[str, Any]]:
    try:
        payload = wire_json.loads(text)
    except ValueError as exc:
        raise BadBody(f"invalid JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise BadBody('expected {"destination", "events": [...]}')
    return [e if isinstance(e, dict) else {"type": repr(e)[:40]} for e in payload["events"]]


def current_shape(raw: dict[str, Any]) -> bool:
    return isinstance(raw.get("webhookEventId"), str) and \
        isinstance(raw.get("deliveryContext"), dict)


def sdk_accepts(raw: dict[str, Any]) -> bool:
    """Whether line-bot-sdk's typed models accept this event (unknown types included)."""
    for model in (Event.from_dict, UnknownEvent.new_from_json_dict):
        try:
            model(raw)
            return True
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return False


def event_id_of(raw: dict[str, Any]) -> str:
    """``webhookEventId``, or for older payloads a stable digest so redeliveries dedupe."""
    event_id = raw.get("webhookEventId")
    if isinstance(event_id, str) and event_id:
        return event_id[:200]
    canonical = json.dumps(raw, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def map_event(raw: dict[str, Any], lenient: bool = False) -> LineEvent:
    kind = str(raw.get("type") or "unknown")
    source = _obj(raw.get("source"))
    scope, user_id = source.get("type"), source.get("userId")
    base = {"type": kind, "user_id": user_id if isinstance(user_id, str) else None,
            "timestamp": _int(raw.get("timestamp")), "event_id": event_id_of(raw)}
    if scope in GROUP_SCOPES or not base["user_id"]:
        return LineEvent(action="ignore", **base)
    if kind == "unfollow":
        return LineEvent(action="unfollow", **base)
    if kind == "unsend":
        target = _obj(raw.get("unsend")).get("messageId")
        return LineEvent(action="unsend", target_id=str(target) if target else None, **base)
    inbound, media = _inbound(raw, kind, base, lenient)
    if kind == "accountLink":
        return LineEvent(action="account_link", link=_obj(raw.get("link")), inbound=inbound, **base)
    action = "follow" if kind == "follow" else "ingest"
    return LineEvent(action=action, inbound=inbound, media=media, **base)


def _inbound(raw: dict[str, Any], kind: str, base: dict[str, Any],
             lenient: bool) -> tuple[Inbound, dict[str, Any] | None]:
    data = _common_data(raw, base, lenient)
    text, item_kind, media = "", "message", None
    if kind in {"message", "messageEdited"}:
        text, media = _message(_obj(raw.get("message")), data)
        if kind == "messageEdited":
            data["edited"] = True
    elif kind == "postback":
        postback = _obj(raw.get("postback"))
        data["postback"] = {"data": postback.get("data", ""), "params": postback.get("params")}
        text = str(postback.get("data", ""))[:5000]
    elif kind == "follow":
        item_kind = "system"
        unblocked = bool(_obj(raw.get("follow")).get("isUnblocked"))
        data.update(event="line_followed", unblocked=unblocked)
    elif kind == "accountLink":
        item_kind = "system"
        data.update(event="line_account_linked")
    else:
        data["unsupported"] = kind
    inbound = Inbound(channel=CHANNEL, identity_kind="line", identity_value=base["user_id"],
                      text=text, external_id=base["event_id"], kind=item_kind, data=data)
    return inbound, media


def _common_data(raw: dict[str, Any], base: dict[str, Any], lenient: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"line_event": base["type"], "line_at": _iso(base["timestamp"])}
    redelivery = bool(_obj(raw.get("deliveryContext")).get("isRedelivery"))
    if redelivery:
        data["redelivery"] = True
    if lenient:
        data["lenient"] = True
    token = raw.get("replyToken")
    # A standby channel must not reply; a redelivered token has most likely expired.
    if isinstance(token, str) and token and raw.get("mode", "active") == "active" \
            and not redelivery:
        data["reply_token"] = token
        data["reply_token_at"] = data["line_at"]
    return data


def _message(message: dict[str, Any], data: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    message_type = str(message.get("type") or "unknown")
    data["line_message_id"] = str(message.get("id", ""))
    data["message_type"] = message_type
    for key, target in (("quoteToken", "quote_token"), ("quotedMessageId", "quoted_message_id"),
                        ("markAsReadToken", "mark_as_read_token")):
        if message.get(key):
            data[target] = message[key]
    if message_type == "text":
        return _text(message, data), None
    if message_type in MEDIA_TYPES:
        return "", _media(message, message_type, data)
    if message_type == "sticker":
        data["sticker"] = {k: message.get(k) for k in (
            "packageId", "stickerId", "stickerResourceType", "keywords", "text")
            if message.get(k) is not None}
        return str(message.get("text") or ""), None
    if message_type == "location":
        return _location(message, data), None
    data["unsupported"] = f"message/{message_type}"
    return "", None


def _text(message: dict[str, Any], data: dict[str, Any]) -> str:
    for key in ("emojis", "mention"):
        if message.get(key):
            data[key] = message[key]
    return str(message.get("text") or "")


def _media(message: dict[str, Any], message_type: str, data: dict[str, Any]) -> dict[str, Any]:
    provider = _obj(message.get("contentProvider")) or {"type": "line"}
    media: dict[str, Any] = {"type": message_type, "provider": provider.get("type", "line"),
                             "message_id": data["line_message_id"]}
    for key, target in (("originalContentUrl", "original_url"),
                        ("previewImageUrl", "preview_url")):
        if provider.get(key):
            media[target] = provider[key]
    for key, target in (("fileName", "file_name"), ("fileSize", "file_size"),
                        ("duration", "duration"), ("imageSet", "image_set")):
        if message.get(key) is not None:
            media[target] = message[key]
    media["status"] = "pending" if media["provider"] == "line" else "external"
    data["media"] = media
    return media


def _location(message: dict[str, Any], data: dict[str, Any]) -> str:
    lat, lng = message.get("latitude"), message.get("longitude")
    location = {"title": message.get("title"), "address": message.get("address"),
                "latitude": lat, "longitude": lng}
    if isinstance(lat, int | float) and isinstance(lng, int | float):
        location["map_url"] = f"https://www.google.com/maps/search/?api=1&query={lat},{lng}"
    data["location"] = location
    return " ".join(str(v) for v in (location["title"], location["address"]) if v)


def _obj(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else (a signed body may still be odd).
    Not copied: the body was parsed for this call alone, and nothing here changes it."""
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _iso(ms: int) -> str:
    return iso(datetime.fromtimestamp(ms / 1000, UTC) if ms else datetime.now(UTC)) or ""


def in_order(events: list[LineEvent]) -> dict[str, list[LineEvent]]:
    """Each user's events, oldest first (LINE may deliver late or out of order)."""
    by_user: dict[str, list[LineEvent]] = {}
    for event in events:
        if event.user_id and event.action != "ignore":
            by_user.setdefault(event.user_id, []).append(event)
    return {user: sorted(items, key=lambda e: e.timestamp) for user, items in by_user.items()}
