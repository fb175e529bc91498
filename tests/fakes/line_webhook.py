"""Building and signing LINE webhook bodies the way the LINE Platform sends them."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

from channels.line.parse import sign
from tests.shared_data import FIXTURES as SHARED_FIXTURES

SECRET = "test-channel-secret"
ACCESS_TOKEN = "test-access-token"
FIXTURES = SHARED_FIXTURES / "line"
_serial = itertools.count(1)


def user_id(n: int) -> str:
    return "U" + f"{n:032x}"


def now_ms() -> int:
    return int(time.time() * 1000)


def event(kind: str, user: str, *, timestamp: int | None = None, redelivery: bool = False,
          reply_token: str | None = "auto", event_id: str | None = None,
          **fields: Any) -> dict[str, Any]:
    serial = next(_serial)
    raw: dict[str, Any] = {
        "type": kind, "mode": "active", "timestamp": timestamp or now_ms(),
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id or f"01TEST{serial:020d}",
        "deliveryContext": {"isRedelivery": redelivery}, **fields}
    if reply_token:
        raw["replyToken"] = f"reply-token-{serial}" if reply_token == "auto" else reply_token
    return raw


def text(user: str, words: str, message_id: str | None = None, **kw: Any) -> dict[str, Any]:
    mid = message_id or f"{next(_serial) + 900000}"
    return event("message", user, message={"id": mid, "type": "text", "text": words,
                                           "quoteToken": f"q-{mid}"}, **kw)


def body(*events: dict[str, Any]) -> bytes:
    return json.dumps({"destination": "U" + "0" * 32, "events": list(events)},
                      ensure_ascii=False).encode("utf-8")


def headers(raw: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Line-Signature": sign(secret, raw),
            "Content-Type": "application/json; charset=utf-8"}


def fixture_files() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*.json"))
