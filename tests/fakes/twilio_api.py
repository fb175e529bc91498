"""A fake Twilio REST API on loopback: records the calls and messages created, serves
recording media and MMS media, and fails on demand (429, 500, 400) so retries can be tested.

Only what the hub uses is implemented: ``Messages.json``, ``Calls.json``,
``Recordings/{sid}.mp3`` and ``Messages/{sid}/Media/{sid}`` under
``/2010-04-01/Accounts/{AccountSid}/``, with HTTP Basic auth. As Twilio does, media answers
with a redirect to short-lived storage (here ``/cdn/{token}``, served without auth).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.loopback import serving

Scope = dict[str, Any]
_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)/(?P<rest>.+)$")
FAKE_AUDIO = b"ID3fake-mp3-audio"


@dataclass
class FakeTwilio:
    account_sid: str
    auth_token: str
    messages: list[dict[str, str]] = field(default_factory=list)
    calls: list[dict[str, str]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    media_gets: list[str] = field(default_factory=list)
    deleted_recordings: list[str] = field(default_factory=list)
    url: str = ""
    _cdn: dict[str, str] = field(default_factory=dict)

    def add_media(self, message_sid: str, data: bytes, content_type: str) -> str:
        """Serve ``data`` as a media file of ``message_sid``; returns its URL as Twilio
        would put it in ``MediaUrl0`` (on api.twilio.com: the hub re-bases it on us)."""
        rest = f"Messages/{message_sid}/Media/ME{secrets.token_hex(16)}"
        self.media[rest] = (data, content_type)
        return f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}/{rest}"

    def fail_next(self, status: int, times: int = 1) -> None:
        self.failures.extend([status] * times)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, payload, content_type = self._handle(scope, body)
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = [(b"content-type", content_type.encode())]
        if status == 307:
            headers = [(b"location", payload), (b"content-length", b"0")]
            raw = b""
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": raw})

    def _handle(self, scope: Scope, body: bytes) -> tuple[int, Any, str]:
        if scope["path"].startswith("/cdn/") and scope["path"][5:] in self._cdn:
            return 200, *self.media[self._cdn[scope["path"][5:]]]
        match = _PATH.match(scope["path"])
        if match is None or match["account"] != self.account_sid:
            return _error(404, 20404, "The requested resource was not found")
        if not self._authorised(scope):
            return _error(401, 20003, "Authenticate")
        if self.failures:
            status = self.failures.pop(0)
            return _error(status, 20429 if status == 429 else 20500, f"injected {status}")
        pairs = parse_qsl(body.decode())
        form = dict(pairs)
        rest = match["rest"]
        if scope["method"] == "POST" and rest == "Messages.json":
            media = [value for key, value in pairs if key == "MediaUrl"]
            if media:
                form["MediaUrl"] = " ".join(media)
                return self._create(self.messages, "SM", form, "To", "From")
            return self._create(self.messages, "SM", form, "Body", "To", "From")
        if scope["method"] == "POST" and rest == "Calls.json":
            return self._create(self.calls, "CA", form, "To", "From")
        if scope["method"] == "GET" and rest.startswith("Recordings/"):
            return 200, FAKE_AUDIO, "audio/mpeg"
        if scope["method"] == "DELETE" and rest.startswith("Recordings/"):
            self.deleted_recordings.append(rest.removeprefix("Recordings/").removesuffix(".json"))
            return 204, b"", "application/json"
        if scope["method"] == "GET" and rest in self.media:
            self.media_gets.append(rest)
            token = secrets.token_urlsafe(16)
            self._cdn[token] = rest
            return 307, f"{self.url}/cdn/{token}".encode(), ""
        return _error(404, 20404, "The requested resource was not found")

    def _authorised(self, scope: Scope) -> bool:
        headers = dict(scope["headers"])
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode())
        return headers.get(b"authorization", b"") == b"Basic " + expected

    def _create(self, store: list[dict[str, str]], prefix: str, form: dict[str, str],
                *required: str) -> tuple[int, Any, str]:
        missing = [name for name in required if not form.get(name)]
        if missing:
            return _error(400, 21604, f"A '{missing[0]}' parameter is required.")
        sid = prefix + secrets.token_hex(16)
        store.append({**form, "Sid": sid})
        return 201, {"sid": sid, "account_sid": self.account_sid, "status": "queued",
                     "to": form.get("To"), "from": form.get("From"),
                     "body": form.get("Body"), "direction": "outbound-api"}, "application/json"


def _error(status: int, code: int, message: str) -> tuple[int, Any, str]:
    return status, {"code": code, "message": message, "status": status,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}"}, "application/json"


@contextlib.asynccontextmanager
async def running(fake: FakeTwilio,
                  sock: socket.socket | None = None) -> AsyncIterator[FakeTwilio]:
    """Serve ``fake`` with uvicorn on loopback; ``fake.url`` is its base URL."""
    async with serving(fake, sock, lifespan="off") as url:
        fake.url = url
        yield fake
