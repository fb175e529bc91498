"""A loopback fake of the LINE Messaging API and data API, for the real SDK client.

Records every call; answers like LINE (``sentMessages``, 409 for a retry key seen
before, 400 for a used or unknown reply token); serves profiles and content; and can be
scripted to answer 429/500/400 for the next calls to a path.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hub.settings import Settings

REPLY = "/v2/bot/message/reply"
PUSH = "/v2/bot/message/push"
_CONTENT = re.compile(r"^/v2/bot/message/([^/]+)/content$")
_TRANSCODING = re.compile(r"^/v2/bot/message/([^/]+)/content/transcoding$")
_PROFILE = re.compile(r"^/v2/bot/profile/([^/]+)$")
_LINK_TOKEN = re.compile(r"^/v2/bot/user/([^/]+)/linkToken$")


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    content_type: str = "application/json"

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def texts(self) -> list[str]:
        return [m.get("text", "") for m in (self.json or {}).get("messages", [])]


@dataclass
class FakeLine:
    """State and behaviour of the fake; ``url`` is set once it listens."""

    url: str = ""
    calls: list[Call] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    content: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    reply_tokens: set[str] | None = None  # None: every unused token is valid
    quota: int = 1000
    _script: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    _used_tokens: set[str] = field(default_factory=set)
    _retry_keys: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    _pushed: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100000))
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def script(self, path: str, *answers: tuple[int, dict[str, Any]]) -> None:
        """The next calls to ``path`` get these (status, body) answers, in order."""
        self._script.setdefault(path, []).extend(answers)

    def to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    @property
    def deliveries(self) -> list[Call]:
        """Reply and push calls LINE accepted (what the user actually received)."""
        return [c for c in self.calls
                if c.path in {REPLY, PUSH} and c.status == 200]

    async def wait_for(self, check: Callable[[FakeLine], bool], within: float = 10) -> None:
        """Wait (with a deadline, never a fixed sleep) until ``check(self)`` holds."""
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: check(self))
        except TimeoutError:
            seen = [(c.method, c.path, c.status) for c in self.calls]
            raise AssertionError(f"fake LINE: condition not met; calls: {seen}") from None

    # --- the HTTP side ----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        call = Call(request.method, request.path, dict(request.headers), body)
        self.calls.append(call)
        status, answer = self._answer(call)
        call.status = status
        async with self._changed:
            self._changed.notify_all()
        if isinstance(answer, bytes):
            return web.Response(body=answer, status=status,
                                content_type=call.content_type)
        return web.json_response(answer, status=status)

    def _answer(self, call: Call) -> tuple[int, Any]:
        scripted = self._script.get(call.path)
        if scripted:
            return scripted.pop(0)
        if call.headers.get("Authorization", "") != "Bearer test-access-token":
            return 401, {"message": "Authentication failed"}
        return self._route(call)

    def _route(self, call: Call) -> tuple[int, Any]:
        if call.path == REPLY:
            return self._reply(call)
        if call.path == PUSH:
            return self._push(call)
        if match := _PROFILE.match(call.path):
            profile = self.profiles.get(match.group(1))
            return (200, profile) if profile else (404, {"message": "Not found"})
        if match := _TRANSCODING.match(call.path):
            known = match.group(1) in self.content
            return (200, {"status": "succeeded"}) if known else (404, {"message": "Not found"})
        if match := _CONTENT.match(call.path):
            return self._content(call, match.group(1))
        if match := _LINK_TOKEN.match(call.path):
            return 200, {"linkToken": f"link-{match.group(1)[-6:]}-{next(self._ids)}"}
        if call.path == "/v2/bot/message/quota":
            return 200, {"type": "limited", "value": self.quota}
        if call.path == "/v2/bot/message/quota/consumption":
            return 200, {"totalUsage": self._pushed}
        if call.path == "/v2/bot/chat/loading/start":
            return 202, {}
        return 404, {"message": f"fake LINE has no {call.path}"}

    def _sent(self, count: int) -> dict[str, Any]:
        return {"sentMessages": [{"id": str(next(self._ids)), "quoteToken": "q"}
                                 for _ in range(count)]}

    def _reply(self, call: Call) -> tuple[int, Any]:
        token = (call.json or {}).get("replyToken", "")
        valid = self.reply_tokens is None or token in self.reply_tokens
        if not valid or token in self._used_tokens:
            return 400, {"message": "Invalid reply token"}
        self._used_tokens.add(token)
        return 200, self._sent(len(call.json.get("messages", [])))

    def _push(self, call: Call) -> tuple[int, Any]:
        key = call.headers.get("X-Line-Retry-Key")
        if key and key in self._retry_keys:
            return 409, {"message": "The retry key is already accepted",
                         "sentMessages": self._retry_keys[key]}
        count = len(call.json.get("messages", []))
        answer = self._sent(count)
        self._pushed += count
        if key:
            self._retry_keys[key] = answer["sentMessages"]
        return 200, answer

    def _content(self, call: Call, message_id: str) -> tuple[int, Any]:
        if message_id not in self.content:
            return 404, {"message": "Not found"}
        data, content_type = self.content[message_id]
        call.content_type = content_type
        return 200, data


async def start_fake_line() -> tuple[FakeLine, web.AppRunner]:
    fake = FakeLine()
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    return fake, runner




def line_settings(database_url: str, tmp_path: Path, fake: FakeLine, **changes: Any) -> Settings:
    """Hub settings with LINE on, pointed at the loopback fake; the bot off."""
    from tests.fakes.line_webhook import ACCESS_TOKEN, SECRET

    return Settings(database_url=database_url, secret_key="test-secret-" + "x" * 32,
                    data_dir=str(tmp_path / "data"), line_channel_secret=SECRET,
                    line_channel_access_token=ACCESS_TOKEN, line_api_base=fake.url,
                    line_data_api_base=fake.url, bot_enabled=False, **changes)


@pytest.fixture
async def fake_line() -> AsyncIterator[FakeLine]:
    """A loopback fake of LINE's Messaging and data APIs (a pytest fixture)."""
    fake, runner = await start_fake_line()
    yield fake
    await runner.cleanup()
