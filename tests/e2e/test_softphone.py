"""The inbox softphone (Twilio's Voice JS SDK from npm) in Debian's Chromium against a real
hub (`omohub demo` in a subprocess) whose Twilio REST API is the loopback fake.

Nothing here reaches Twilio: Chromium resolves no *.twilio.com host
(``--host-resolver-rules``), so Twilio's signalling server is unreachable unless a test
stands in for it with Playwright's WebSocket routing. What only a real Twilio account can
show (audio to a real phone, Twilio's own signalling) is not tested here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.demo_hub import chromium, require_chromium, running_demo, signed_in
from tests.fakes.loopback import loopback_socket
from tests.fakes.twilio_api import FakeTwilio, running

require_chromium()

from playwright.sync_api import Browser, Page, Route, WebSocketRoute, expect  # noqa: E402

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)

ACCOUNT = "AC" + "a1" * 16
TOKEN = "twilio-e2e-auth-token"
PHONE_ENV = {"OMOHUB_TWILIO_ACCOUNT_SID": ACCOUNT, "OMOHUB_TWILIO_AUTH_TOKEN": TOKEN,
             "OMOHUB_TWILIO_API_KEY_SID": "SK" + "b" * 32,
             "OMOHUB_TWILIO_API_KEY_SECRET": "api-key-secret-" + "s" * 32,
             "OMOHUB_TWILIO_TWIML_APP_SID": "AP" + "c" * 32,
             "OMOHUB_TWILIO_PHONE_NUMBER": "+81312345678"}
CUSTOMER = "+819012345678"  # the demo's 佐藤 健
NO_TWILIO = ["--host-resolver-rules=MAP *.twilio.com ~NOTFOUND",
             "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
SIGNALLING = re.compile(r"^wss://[^/]*\.twilio\.com/signal")
TWILIO_HTTPS = re.compile(r"^https://[^/]*\.twilio\.com/")


# --------------------------------------------------------------------------- fixtures

@contextlib.contextmanager
def _hub(data_dir: Path, extra_env: dict[str, str]) -> Iterator[str]:
    """`omohub demo` on a free loopback port with its own database and ``extra_env``
    (and none of this process's Twilio settings that ``extra_env`` does not give)."""
    with running_demo(data_dir, extra_env, timeout=90, drop_env=[
            name for name in os.environ
            if name.startswith("OMOHUB_TWILIO") and name not in extra_env]) as url:
        yield url


@pytest.fixture(scope="module")
def fake_twilio() -> Iterator[FakeTwilio]:
    """The fake Twilio REST API, served from its own thread (these tests are synchronous)."""
    fake = FakeTwilio(ACCOUNT, TOKEN)
    sock = loopback_socket()
    started = threading.Event()
    stop: dict[str, Any] = {}

    async def serve() -> None:
        stop["event"], stop["loop"] = asyncio.Event(), asyncio.get_running_loop()
        async with running(fake, sock):
            started.set()
            await stop["event"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(30), "the fake Twilio API did not start"
    try:
        yield fake
    finally:
        stop["loop"].call_soon_threadsafe(stop["event"].set)
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def phone_hub(tmp_path_factory: pytest.TempPathFactory,
              fake_twilio: FakeTwilio) -> Iterator[str]:
    with _hub(tmp_path_factory.mktemp("phone-hub"),
              {**PHONE_ENV, "OMOHUB_TWILIO_API_BASE": fake_twilio.url}) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(*NO_TWILIO) as instance:
        yield instance


class Watched:
    """What a page reports: console errors, uncaught errors, CSP violations, requests."""

    def __init__(self, page: Page) -> None:
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.responses: dict[str, int] = {}
        page.add_init_script("""window.__csp = [];
            document.addEventListener("securitypolicyviolation", function (e) {
              window.__csp.push(e.violatedDirective + " " + e.blockedURI); });""")
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("response", lambda r: self.responses.__setitem__(r.url.split("?")[0], r.status))
        self.page = page

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} @ {message.location.get('url', '')}")

    def csp_violations(self) -> list[str]:
        return list(self.page.evaluate("window.__csp"))

    def errors_except_unreachable_twilio(self) -> list[str]:
        """Console errors other than Chromium's own network messages for *.twilio.com,
        which no test machine may resolve."""
        unreachable = re.compile(r"(ERR_NAME_NOT_RESOLVED|Error in connection establishment)")
        return [e for e in self.console_errors
                if not (unreachable.search(e) and "twilio.com" in e)]


def _sign_in(browser: Browser, hub_url: str, prepare: Callable[[Page], None] | None = None,
             **context: Any) -> tuple[Page, Watched]:
    """A signed-in agent (the login lands on the inbox: ``prepare`` the page before)."""
    watched: list[Watched] = []

    def watch_and_prepare(page: Page) -> None:
        watched.append(Watched(page))
        if prepare is not None:
            prepare(page)

    page = signed_in(browser, hub_url, "agent@example.com", "demo-agent", watch_and_prepare,
                     viewport={"width": 1280, "height": 760}, **context)
    return page, watched[0]


def _silent_wav() -> bytes:
    """0.1 s of silence: stands in for the SDK's ring tones (sdk.twilio.com)."""
    samples = b"\x00\x00" * 800
    return (b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data"
            + struct.pack("<I", len(samples)) + samples)


class FakeSignalling:
    """Twilio's signalling WebSocket as the Voice SDK speaks it (listen → connected,
    register → ready, then invites sent by the test); records what the SDK sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.socket: WebSocketRoute | None = None

    def __call__(self, socket: WebSocketRoute) -> None:
        self.socket = socket
        socket.on_message(self._message)

    def _message(self, raw: str | bytes) -> None:
        message = json.loads(raw)
        self.sent.append(message)
        if message["type"] == "listen":
            self._send("connected", {"region": "us1", "edge": "roaming", "home": "us1",
                                     "token": {"identity": "agent-1", "ttl": 3600}})
        elif message["type"] == "register":
            self._send("ready", {})

    def _send(self, kind: str, payload: dict[str, Any]) -> None:
        assert self.socket is not None
        self.socket.send(json.dumps({"type": kind, "payload": payload}))

    def invite(self, call_sid: str, sdp: str, caller: str) -> None:
        self._send("invite", {"callsid": call_sid, "sdp": sdp, "parameters": {
            "CallSid": call_sid, "From": caller, "To": "client:agent-1",
            "AccountSid": ACCOUNT}})

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]


OFFER = """async () => {
  const peer = new RTCPeerConnection();
  peer.addTransceiver("audio");
  await peer.setLocalDescription(await peer.createOffer());
  await new Promise((done) => {
    if (peer.iceGatheringState === "complete") return done();
    peer.addEventListener("icegatheringstatechange", () => {
      if (peer.iceGatheringState === "complete") done();
    });
  });
  window.__caller = peer;
  return peer.localDescription.sdp;
}"""


# --------------------------------------------------------------------------- tests

def test_softphone_says_offline_when_twilio_cannot_be_reached(browser: Browser,
                                                              phone_hub: str) -> None:
    page, watched = _sign_in(browser, phone_hub)
    page.goto(f"{phone_hub}/?lang=en")
    panel = page.locator("#softphone")
    expect(panel).to_be_visible()
    expect(panel).to_have_attribute("data-state", "offline")
    expect(page.locator("#sp-status")).to_have_text("Offline")
    expect(page.locator("#sp-detail")).to_contain_text("Cannot reach Twilio")
    assert watched.responses.get(f"{phone_hub}/api/voice/token") == 200
    assert watched.responses.get(f"{phone_hub}/static/vendor/twilio.min.js") == 200
    assert page.evaluate("typeof window.Twilio.Device") == "function"
    assert watched.csp_violations() == []
    assert watched.page_errors == []
    assert watched.errors_except_unreachable_twilio() == []
    assert any("twilio.com/signal" in e for e in watched.console_errors)  # it did try

    page.goto(f"{phone_hub}/?lang=ja")  # the same state in Japanese
    expect(page.locator("#softphone")).to_have_attribute("data-state", "offline")
    expect(page.locator("#sp-status")).to_have_text("オフライン")
    expect(page.locator("#sp-detail")).to_contain_text("Twilio に接続できません")
    page.context.close()


def test_softphone_rings_answers_mutes_hangs_up_and_calls_from_the_ticket(
        browser: Browser, phone_hub: str, fake_twilio: FakeTwilio) -> None:
    signalling = FakeSignalling()
    wav = _silent_wav()

    def twilio_https(route: Route) -> None:  # ring tones and call-quality reports
        if "/sounds/" in route.request.url:
            route.fulfill(status=200, body=wav, content_type="audio/wav")
        else:
            route.fulfill(status=200, json={})

    def stand_in_for_twilio(page: Page) -> None:
        page.route_web_socket(SIGNALLING, signalling)
        page.route(TWILIO_HTTPS, twilio_https)

    page, watched = _sign_in(browser, phone_hub, stand_in_for_twilio,
                             permissions=["microphone"])
    page.goto(f"{phone_hub}/?lang=en")
    panel = page.locator("#softphone")
    expect(panel).to_have_attribute("data-state", "ready")
    expect(page.locator("#sp-status")).to_have_text("Ready for calls")
    assert signalling.types()[:2] == ["listen", "register"]
    token = signalling.sent[0]["payload"]["token"]
    claims = json.loads(_b64(token.split(".")[1]))
    assert claims["grants"]["identity"] == "agent-1"

    # click-to-call from the ticket: the hub asks Twilio (the fake) to ring the customer
    expect(page.locator("#sp-call")).to_be_hidden()
    page.locator(".conv-item", has_text="佐藤 健").click()
    expect(page.locator("#sp-call")).to_be_enabled()
    page.click("#sp-call")
    expect(page.locator("#sp-status")).to_contain_text("Calling the customer")
    assert [c["To"] for c in fake_twilio.calls] == [CUSTOMER]
    assert "/webhooks/twilio/outbound?agent=" in fake_twilio.calls[0]["Url"]

    # Twilio bridges the customer to this softphone: it rings, the agent answers
    signalling.invite("CA" + "1" * 32, page.evaluate(OFFER), CUSTOMER)
    expect(panel).to_have_attribute("data-state", "incoming")
    expect(page.locator("#sp-status")).to_have_text(f"Incoming call from {CUSTOMER}")
    expect(page.locator("#sp-call")).to_be_disabled()
    page.click("#sp-accept")
    expect(panel).to_have_attribute("data-state", "in-call")
    expect(page.locator("#sp-status")).to_have_text(f"In a call with {CUSTOMER}")
    [answer] = [m for m in signalling.sent if m["type"] == "answer"]
    page.evaluate("sdp => window.__caller.setRemoteDescription({type: 'answer', sdp})",
                  answer["payload"]["sdp"])
    page.wait_for_function(  # a function: an expression would be polled with eval (CSP)
        "() => window.__caller.connectionState === 'connected'")  # media flows

    page.click("#sp-mute")
    expect(page.locator("#sp-mute")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#sp-mute")).to_have_text("Unmute")
    page.click("#sp-hangup")
    expect(panel).to_have_attribute("data-state", "ended")
    expect(page.locator("#sp-status")).to_have_text("Call ended")
    assert signalling.types()[-1] == "hangup"

    # a second call is declined
    signalling.invite("CA" + "2" * 32, page.evaluate(OFFER), "+81355550000")
    expect(page.locator("#sp-status")).to_have_text("Incoming call from +81355550000")
    page.click("#sp-reject")
    expect(panel).to_have_attribute("data-state", "ended")
    assert signalling.types()[-1] == "reject"
    assert signalling.sent[-1]["payload"]["callsid"] == "CA" + "2" * 32

    assert watched.csp_violations() == []
    assert watched.page_errors == []
    assert watched.console_errors == []
    page.context.close()


def test_no_softphone_and_no_sdk_when_the_phone_channel_is_off(
        browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> None:
    with _hub(tmp_path_factory.mktemp("plain-hub"), {}) as hub_url:
        page, watched = _sign_in(browser, hub_url)
        page.goto(f"{hub_url}/?lang=en")
        expect(page.locator(".conv-item").first).to_be_visible()
        page.wait_for_load_state("networkidle")  # the SDK would have been requested by now
        expect(page.locator("#softphone")).to_have_count(0)
        assert page.evaluate("typeof window.Twilio") == "undefined"  # no SDK, no Device
        assert not [url for url in watched.responses
                    if "/api/voice/token" in url or "softphone" in url or "twilio" in url]
        assert watched.console_errors == []
        page.context.close()


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
