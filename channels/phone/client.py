"""The twilio REST client, async, over httpx, and pointed at ``OMOHUB_TWILIO_API_BASE``.

Two documented seams of twilio-python are used, nothing is patched: ``Client(http_client=)``
takes any ``AsyncHttpClient`` (here one backed by ``httpx.AsyncClient``, so tests may also
hand in an ``httpx`` transport), and every REST domain has a ``base_url`` attribute; the
``api`` domain (Calls, Messages) is set to the configured base, e.g. a loopback fake.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from hub.settings import Settings

log = logging.getLogger(__name__)
TIMEOUT = 10.0


class HttpxTwilioClient(AsyncHttpClient):
    """twilio-python's async HTTP seam implemented with httpx."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = TIMEOUT) -> None:
        super().__init__(log, True, timeout)
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout)

    async def request(  # twilio's AsyncHttpClient signature, timeout included
            self, method: str, url: str, params: dict[str, Any] | None = None,
            data: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
            auth: tuple[str, str] | None = None,
            timeout: float | None = None,  # noqa: ASYNC109
            allow_redirects: bool = False) -> Response:
        response = await self._http.request(
            method.upper(), url, params=params, data=data, headers=headers, auth=auth,
            timeout=timeout or self.timeout, follow_redirects=allow_redirects)
        return Response(response.status_code, response.text, response.headers)

    async def close(self) -> None:
        await self._http.aclose()


def make_client(settings: Settings,
                transport: httpx.AsyncBaseTransport | None = None) -> Client:
    client = Client(settings.twilio_account_sid, settings.twilio_auth_token,
                    http_client=HttpxTwilioClient(transport))
    client.api.base_url = settings.twilio_api_base.rstrip("/")
    return client


class MediaRefused(ValueError):
    pass


RECORDINGS = "Recordings/"
MESSAGES = "Messages/"


def media_url(settings: Settings, url: str, under: str = RECORDINGS) -> str:
    """A Twilio media URL of our account (a recording, or an MMS picture when ``under`` is
    ``MESSAGES``), re-based on the configured API host.

    Anything else is refused, so the hub never fetches an arbitrary URL with our
    credentials."""
    prefix = f"/2010-04-01/Accounts/{settings.twilio_account_sid}/{under}"
    for base in ("https://api.twilio.com", settings.twilio_api_base.rstrip("/")):
        if url.startswith(base + prefix) and ".." not in url:
            path = url[len(base):]
            return settings.twilio_api_base.rstrip("/") + path
    raise MediaRefused("not a recording of this account" if under == RECORDINGS
                       else "not a media URL of this account")


def _auth(settings: Settings) -> tuple[str, str]:
    return (settings.twilio_account_sid or "", settings.twilio_auth_token or "")


async def fetch_recording(settings: Settings, url: str,
                          transport: httpx.AsyncBaseTransport | None = None) -> httpx.Response:
    target = media_url(settings, url)
    if not target.endswith((".mp3", ".wav")):
        target += ".mp3"
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as http:
        return await http.get(target, auth=_auth(settings), follow_redirects=True)


async def fetch_message_media(settings: Settings, url: str, max_bytes: int,
                              transport: httpx.AsyncBaseTransport | None = None
                              ) -> tuple[bytes, str]:
    """An MMS attachment's bytes and content type, read with the account's credentials.

    Twilio answers with a redirect to short-lived storage; httpx drops the credentials when
    the redirect leaves the API host. Raises ``MediaRefused`` past ``max_bytes`` (read no
    further) and ``httpx.HTTPError`` for network errors and non-2xx answers."""
    target = media_url(settings, url, MESSAGES)
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as http, \
            http.stream("GET", target, auth=_auth(settings), follow_redirects=True) as response:
        response.raise_for_status()
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise MediaRefused(f"larger than {max_bytes} bytes")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise MediaRefused(f"larger than {max_bytes} bytes")
        content_type = response.headers.get("content-type", "").split(";")[0].strip()
        return bytes(body), content_type
