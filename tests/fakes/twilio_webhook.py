"""What Twilio posts to the hub, signed as Twilio signs it, and a fake of Twilio's REST API
on loopback for the hub to call (the ``twilio_socket`` and ``fake_twilio`` fixtures)."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.fakes.loopback import loopback_socket
from tests.fakes.twilio_api import FakeTwilio, running

if TYPE_CHECKING:
    from tests.conftest import RunningHub

ACCOUNT = "AC" + "a1" * 16
TOKEN = "twilio-test-auth-token"
PUBLIC = "https://hub.example.com"
SUPPORT = "+81312345678"
CALLER = "+819012345678"


class Twilio:
    """Posts what Twilio would post, signed with ``RequestValidator`` over the public URL."""

    def __init__(self, hub: RunningHub) -> None:
        self.hub = hub
        self.validator = RequestValidator(TOKEN)

    async def post(self, target: str, params: dict[str, str],
                   signature: str | None = None) -> httpx.Response:
        """``target`` is a path (+ query) or an absolute URL taken from our own TwiML."""
        parts = urlsplit(target)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        signed = signature or self.validator.compute_signature(PUBLIC + path, params)
        return await self.hub.http.post(path, data=params,
                                        headers={"X-Twilio-Signature": signed})

    async def twiml(self, target: str, params: dict[str, str]) -> ET.Element:
        response = await self.post(target, params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/xml")
        root = ET.fromstring(response.text)
        assert root.tag == "Response"
        return root


def call(sid: str = "CA" + "1" * 32, caller: str = CALLER, **extra: str) -> dict[str, str]:
    return {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "CallSid": sid,
            "CallStatus": "ringing", "Direction": "inbound", "From": caller,
            "Caller": caller, "To": SUPPORT, "Called": SUPPORT, **extra}


def tags(root: ET.Element) -> list[str]:
    return [child.tag for child in root]


@pytest.fixture
def twilio_socket() -> Iterator[socket.socket]:
    """The fake's listening socket, bound before the hub's settings name its address."""
    sock = loopback_socket()
    yield sock
    sock.close()


@pytest.fixture
async def fake_twilio(twilio_socket: socket.socket) -> AsyncIterator[FakeTwilio]:
    async with running(FakeTwilio(ACCOUNT, TOKEN), twilio_socket) as served:
        yield served
