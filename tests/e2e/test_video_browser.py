"""A video session in real browsers: the agent starts it from the inbox, the agent's and
the customer's pages connect browser to browser (Chromium's fake camera and microphone),
and hanging up ends the session's item in the ticket — Debian's Chromium driven by
Playwright against a real hub (`omohub demo`) in a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.e2e.demo_hub import (
    CHROMIUM,
    CHROMIUM_ARGS,
    chromium,
    require_chromium,
    running_demo,
    signed_in,
)

require_chromium()

from playwright.sync_api import Browser, Page, expect  # noqa: E402

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)
FAKE_MEDIA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
CONNECTED = "() => document.body.dataset.rtcState === 'connected'"
CLOSED = "() => document.body.dataset.rtcState === 'closed'"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium that grants the camera and microphone, and fakes them."""
    with chromium(*FAKE_MEDIA) as instance:
        yield instance


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_demo(tmp_path_factory.mktemp("video-hub")) as url:
        yield url


@pytest.fixture
def inbox(browser: Browser, hub_url: str) -> Iterator[Page]:
    """A signed-in agent (English UI) with the first ticket open."""
    page = signed_in(browser, hub_url, "agent@example.com", "demo-agent")
    page.goto(f"{hub_url}/?lang=en")
    expect(page.locator("#conn")).to_have_attribute("data-state", "online")
    page.locator(".conv-item").first.click()
    expect(page.locator("#conv")).to_be_visible()
    yield page
    page.context.close()


def _on_hub(url: str, hub_url: str) -> str:
    """The link as the customer would follow it, on this test's hub (OMOHUB_PUBLIC_URL is
    the default, not the hub's free port)."""
    parts = urlsplit(url)
    return f"{hub_url}{parts.path}?{parts.query}"


def test_agent_and_customer_connect_and_hang_up(browser: Browser, hub_url: str,
                                                inbox: Page) -> None:
    with inbox.context.expect_page() as opened:
        inbox.click("#video-start")
    agent = opened.value
    expect(inbox.locator("#video-share")).to_be_visible()
    customer_url = _on_hub(inbox.input_value("#video-link"), hub_url)
    customer = browser.new_context(locale="en-US").new_page()
    customer.goto(customer_url)
    assert customer.evaluate("document.body.dataset.rtcState") in {"new", "connecting",
                                                                    "connected"}
    agent.wait_for_function(CONNECTED, timeout=30_000)
    customer.wait_for_function(CONNECTED, timeout=30_000)
    expect(inbox.locator(".video-card[data-status=live]")).to_be_visible()

    customer.click("#hangup")
    customer.wait_for_function(CLOSED, timeout=15_000)
    agent.wait_for_function(CLOSED, timeout=15_000)
    expect(agent.locator("#status")).to_have_text("The call has ended")
    card = inbox.locator(".video-card[data-status=ended]")
    expect(card).to_be_visible()
    expect(card.locator(".call-duration")).to_contain_text("Duration")

    conversation_id = urlsplit(inbox.url).fragment.removeprefix("c")
    detail = inbox.request.get(f"{hub_url}/api/conversations/{conversation_id}").json()
    video = [item for item in detail["timeline"] if item["type"] == "video"][-1]
    assert video["data"]["status"] == "ended" and video["data"]["ended_by"] == "customer"
    assert isinstance(video["data"]["duration"], int)

    again = customer.goto(customer_url)  # the link was single-use
    assert again is not None and again.status == 403
    customer.context.close()


def test_pages_connect_without_a_camera_or_microphone(browser: Browser, hub_url: str,
                                                       inbox: Page) -> None:
    """A browser with no devices (or none granted) still joins and sees the other side."""
    conversation_id = urlsplit(inbox.url).fragment.removeprefix("c")
    csrf = inbox.evaluate("document.querySelector('meta[name=csrf-token]').content")
    started = inbox.request.post(f"{hub_url}/api/conversations/{conversation_id}/video",
                                 headers={"X-CSRF-Token": csrf}).json()
    # the same Chromium without the fake devices: getUserMedia fails
    plain = browser.browser_type.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        pages = [plain.new_context(locale="en-US").new_page() for _ in range(2)]
        for page, role in zip(pages, ("agent", "customer"), strict=True):
            page.goto(_on_hub(started[f"{role}_url"], hub_url))
        for page in pages:
            page.wait_for_function(CONNECTED, timeout=30_000)
            expect(page.locator("#notice")).to_contain_text("No camera or microphone")
    finally:
        plain.close()
