"""The LINE Messaging API, through line-bot-sdk's async client.

One ``Configuration`` per host: ``OMOHUB_LINE_API_BASE`` for the Messaging API and
``OMOHUB_LINE_DATA_API_BASE`` for content, so tests point both at a loopback fake.
One ``AsyncApiClient`` (an aiohttp session with keep-alive connections) per host and event
loop, reused by every call: building one costs an SSL context (~0.1 s of CPU, blocking the
loop), far too much per message. ``aclose`` closes them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from linebot.v3.messaging import (
    AsyncApiClient,
    AsyncMessagingApi,
    AsyncMessagingApiBlob,
    Configuration,
    Message,
    PushMessageRequest,
    ReplyMessageRequest,
    ShowLoadingAnimationRequest,
)
from linebot.v3.messaging.exceptions import ApiException

from hub.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Content:
    data: bytes
    content_type: str


class LineApiError(Exception):
    """A LINE answer other than 2xx, with LINE's own message."""

    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return f"LINE {self.status}: {self.message}" if self.status else self.message

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500 or self.status == 0


def api_error(exc: ApiException) -> LineApiError:
    body: Any = exc.body
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(body) if isinstance(body, str) and body else {}
    except ValueError:
        parsed = {"message": body}
    message = parsed.get("message") if isinstance(parsed, dict) else None
    details = parsed.get("details") if isinstance(parsed, dict) else None
    return LineApiError(int(exc.status or 0), str(message or exc.reason or "error")[:300],
                        details)


class _LenientApiClient(AsyncApiClient):
    """A 2xx from LINE is what says a request was accepted; its body only adds detail. The
    SDK's models refuse a body that lacks a field they require, which would turn an
    accepted send into an error and a second delivery; such a body reads as no detail."""

    def deserialize(self, response: Any, response_type: Any) -> Any:
        try:
            return super().deserialize(response, response_type)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            log.warning("LINE answered %s with a body the SDK refuses: %s",
                        response.status, str(exc).splitlines()[0])
            return None


def _sent_ids(response: Any) -> list[str]:
    return [m.id for m in getattr(response, "sent_messages", None) or []]


class LineApi:
    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        token = settings.line_channel_access_token or ""
        self._api = Configuration(host=settings.line_api_base.rstrip("/"), access_token=token)
        self._data = Configuration(host=settings.line_data_api_base.rstrip("/"),
                                   access_token=token)
        self._timeout = timeout
        self._clients: dict[str, tuple[asyncio.AbstractEventLoop, AsyncApiClient]] = {}

    def _client(self, host: str) -> AsyncApiClient:
        loop = asyncio.get_running_loop()
        held = self._clients.get(host)
        if held is None or held[0] is not loop:
            held = (loop, _LenientApiClient(self._api if host == "api" else self._data))
            self._clients[host] = held
        return held[1]

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        clients, self._clients = self._clients, {}
        for owner, client in clients.values():
            if owner is loop:
                await client.close()

    @asynccontextmanager
    async def _messaging(self) -> AsyncIterator[AsyncMessagingApi]:
        try:
            yield AsyncMessagingApi(self._client("api"))
        except ApiException as exc:
            raise api_error(exc) from exc

    async def reply(self, token: str, messages: list[Message]) -> list[str]:
        async with self._messaging() as api:
            response = await api.reply_message(
                ReplyMessageRequest(reply_token=token, messages=messages),
                _request_timeout=self._timeout)
        return _sent_ids(response)

    async def push(self, to: str, messages: list[Message], retry_key: str) -> list[str]:
        async with self._messaging() as api:
            response = await api.push_message(
                PushMessageRequest(to=to, messages=messages), x_line_retry_key=retry_key,
                _request_timeout=self._timeout)
        return _sent_ids(response)

    async def profile(self, user_id: str) -> dict[str, Any]:
        async with self._messaging() as api:
            profile = await api.get_profile(user_id, _request_timeout=self._timeout)
        if profile is None:
            return {}
        return {"display_name": profile.display_name, "picture_url": profile.picture_url,
                "status_message": profile.status_message, "language": profile.language}

    async def quota(self) -> dict[str, Any]:
        async with self._messaging() as api:
            quota = await api.get_message_quota(_request_timeout=self._timeout)
            used = await api.get_message_quota_consumption(_request_timeout=self._timeout)
        return {"type": getattr(quota.type, "value", quota.type), "limit": quota.value,
                "used": used.total_usage}

    async def link_token(self, user_id: str) -> str:
        async with self._messaging() as api:
            response = await api.issue_link_token(user_id, _request_timeout=self._timeout)
        return str(response.link_token)

    async def loading(self, user_id: str, seconds: int = 20) -> None:
        async with self._messaging() as api:
            await api.show_loading_animation(ShowLoadingAnimationRequest(
                chat_id=user_id, loading_seconds=seconds), _request_timeout=self._timeout)

    async def transcoding(self, message_id: str) -> str:
        """``processing``, ``succeeded`` or ``failed``: whether a video/audio is ready."""
        try:
            response = await AsyncMessagingApiBlob(
                self._client("data")).get_message_content_transcoding_by_message_id(
                message_id, _request_timeout=self._timeout)
        except ApiException as exc:
            raise api_error(exc) from exc
        return str(getattr(response.status, "value", response.status))

    async def content(self, message_id: str) -> Content:
        try:
            response = await AsyncMessagingApiBlob(
                self._client("data")).get_message_content_with_http_info(
                message_id, _request_timeout=self._timeout * 6)
        except ApiException as exc:
            raise api_error(exc) from exc
        content_type = (response.headers or {}).get("Content-Type", "application/octet-stream")
        return Content(bytes(response.data or b""), content_type.split(";")[0].strip())
