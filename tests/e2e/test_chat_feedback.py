"""The bot's "did this solve it?" buttons in a real browser: offered on the newest answer
only, back after a reload, gone once an agent speaks, and a press counts for the answer it
was pressed under — Debian's Chromium against `omohub demo` in a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.demo_hub import require_chromium, running_demo

require_chromium()

from playwright.sync_api import Browser, Page, expect  # noqa: E402

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)

RETURNS = "返品したいのですが、期限はいつまでですか？"
SHIPPING = "送料はいくらですか？"
BUTTONS = ["解決した", "解決しない", "担当者と話す"]


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # lexical retrieval only: the same answers on every machine, model or not
    with running_demo(tmp_path_factory.mktemp("hub"),
                      env={"OMOHUB_KB_EMBEDDINGS": "0"}) as url:
        yield url


@pytest.fixture(scope="module")
def api(hub_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub_url, timeout=10) as client:
        token = client.post("/api/auth/login", json={"email": "agent@example.com",
                                                     "password": "demo-agent"}).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def _ask(page: Page, text: str) -> Any:
    """Sends ``text`` and waits for the bot's answer; returns the answer's bubble."""
    answers = page.locator(".msg.from-bot[data-id]")
    before = answers.count()
    page.fill("#text", text)
    page.press("#text", "Enter")
    expect(answers).to_have_count(before + 1)
    return answers.nth(before)


def _timeline(api: httpx.Client, item_id: int) -> tuple[int, list[dict[str, Any]]]:
    """The ticket that holds the timeline item ``item_id``, and its timeline."""
    for row in api.get("/api/conversations", params={"q": RETURNS}).json()["items"]:
        timeline = api.get(f"/api/conversations/{row['id']}").json()["timeline"]
        if any(i["id"] == item_id for i in timeline):
            return row["id"], timeline
    raise AssertionError(f"no ticket holds item {item_id}")


def test_buttons_follow_the_conversation(browser: Browser, hub_url: str,
                                         api: httpx.Client) -> None:
    page = browser.new_context(locale="ja-JP", viewport={"width": 390, "height": 760}).new_page()
    page.goto(f"{hub_url}/chat?lang=ja")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")

    returns = _ask(page, RETURNS)
    expect(returns.locator(".quick .chip")).to_have_text(BUTTONS)
    shipping = _ask(page, SHIPPING)
    expect(shipping.locator(".quick .chip")).to_have_text(BUTTONS)
    expect(returns.locator(".quick")).to_have_count(0)  # only the newest answer offers them
    shipping_id = int(shipping.get_attribute("data-id") or 0)

    # a reload brings the newest answer's buttons back, and only those
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    shipping = page.locator(f".msg.from-bot[data-id='{shipping_id}']")
    expect(shipping.locator(".quick .chip")).to_have_text(BUTTONS)
    expect(page.locator("#messages .quick")).to_have_count(1)

    # a press counts for the answer it was under; the buttons go at once
    shipping.locator(".chip", has_text="解決した").click()
    expect(page.locator("#messages .quick")).to_have_count(0)
    expect(page.locator(".msg.from-bot .text", has_text="解決してよかった")).to_have_count(1)
    conversation_id, timeline = _timeline(api, shipping_id)
    [pressed] = [i for i in timeline if i["sender_type"] == "customer" and i["text"] == "解決した"]
    assert pressed["data"]["reply_to"] == shipping_id
    [rating] = [i["data"] for i in timeline if i["data"].get("event") == "bot_feedback"]
    assert rating["answer_id"] == shipping_id and rating["helpful"] is True
    assert rating["article_id"] == next(i["data"]["article_id"] for i in timeline
                                        if i["id"] == shipping_id)

    # once an agent speaks, no button is offered (担当者と話す least of all), reload or not
    again = _ask(page, RETURNS)
    expect(again.locator(".quick .chip")).to_have_count(3)
    reply = api.post(f"/api/conversations/{conversation_id}/messages",
                     json={"text": "担当の青木です。返品の件、承ります。"})
    assert reply.status_code == 201, reply.text
    expect(page.locator(".msg.from-agent", has_text="担当の青木です")).to_be_visible()
    expect(page.locator("#messages .quick")).to_have_count(0)
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    expect(page.locator(".msg.from-agent", has_text="担当の青木です")).to_be_visible()
    expect(page.locator("#messages .quick")).to_have_count(0)
    page.context.close()
