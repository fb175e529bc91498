"""In a real browser: the LINE push quota on the dashboard (and its failure state), a
blocked LINE identity in the customer panel with the reply box's warning, and an agent
adding, verifying and merging by e-mail address. `omohub demo` with LINE on, its API a
small loopback fake that can be told to fail."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.demo_hub import database_path, require_chromium, running_demo, signed_in

require_chromium()

from playwright.sync_api import Browser, expect  # noqa: E402

pytestmark = pytest.mark.e2e
HANAKO_LINE = "U" + "a" * 32  # the demo's 山田 花子 on LINE


class FakeQuota(BaseHTTPRequestHandler):
    failing = False

    def do_GET(self) -> None:
        body: dict[str, Any]
        if FakeQuota.failing:
            status, body = 500, {"message": "quota service down"}
        elif self.path == "/v2/bot/message/quota":
            status, body = 200, {"type": "limited", "value": 500}
        elif self.path == "/v2/bot/message/quota/consumption":
            status, body = 200, {"totalUsage": 123}
        else:
            status, body = 404, {"message": "Not found"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.do_GET()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def line_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeQuota)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, line_api: str) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("hub-line")
    with running_demo(data_dir, {
            "OMOHUB_LINE_CHANNEL_SECRET": "s" * 32, "OMOHUB_LINE_CHANNEL_ACCESS_TOKEN": "token",
            "OMOHUB_LINE_API_BASE": line_api, "OMOHUB_LINE_DATA_API_BASE": line_api,
            "OMOHUB_BOT_ENABLED": "0"}) as url:
        yield url, database_path(data_dir)


def test_dashboard_shows_the_line_quota_and_when_line_fails(
        browser: Browser, hub: tuple[str, Path]) -> None:
    url, _ = hub
    page = signed_in(browser, url, "lead@example.com", "demo-lead")
    FakeQuota.failing = False
    page.goto(f"{url}/dashboard?lang=en")
    box = page.locator("#line-quota")
    expect(box).to_have_attribute("data-state", "ok")
    expect(page.locator("#line-quota-text")).to_have_text("123 of 500 used")
    expect(page.locator("#line-quota-bar svg .hbar")).to_have_count(1)
    FakeQuota.failing = True
    try:
        page.reload()
        expect(box).to_have_attribute("data-state", "error")
        expect(page.locator("#line-quota-text")).to_contain_text("LINE did not answer")
    finally:
        FakeQuota.failing = False
    page.context.close()


def test_blocked_line_identity_warns_and_agent_adds_verifies_and_merges(
        browser: Browser, hub: tuple[str, Path]) -> None:
    url, database = hub
    with sqlite3.connect(database) as db:  # the LINE user blocked the account (unfollow)
        db.execute("UPDATE identities SET reachable = 0 WHERE kind = 'line' AND value = ?",
                   (HANAKO_LINE,))
    page = signed_in(browser, url, "agent@example.com", "demo-agent")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/?lang=en")
    page.locator(".conv-item", has_text="山田 花子").first.click()
    line = page.locator("#cust-identities li[data-kind=line]")
    expect(line).to_have_attribute("data-reachable", "false")
    expect(line.locator(".unreachable")).to_have_text("blocked — pushes will fail")
    expect(page.locator("#reply-channel")).to_have_value("line")
    expect(page.locator("#composer-error")).to_contain_text("blocked us on LINE")
    page.select_option("#reply-channel", "web")
    expect(page.locator("#composer-error")).to_be_hidden()

    page.fill("#identity-input", "Hanako@Example.JP")
    page.press("#identity-input", "Enter")
    email = page.locator("#cust-identities li[data-kind=email]")
    expect(email.locator(".identity-value")).to_have_text("hanako@example.jp")
    expect(email.locator(".verified")).to_have_count(0)
    email.locator("button.verify").click()
    expect(email.locator(".verified")).to_have_count(1)
    expect(email.locator("button.verify")).to_have_count(0)

    page.fill("#identity-input", "john.smith@example.net")  # the demo's John Smith holds it
    page.press("#identity-input", "Enter")
    expect(page.locator("#toast")).to_contain_text("already belongs to John Smith")
    suggestion = page.locator("#suggestion-list li", has_text="Same e-mail address as John Smith")
    expect(suggestion).to_be_visible()
    suggestion.locator("button.merge").click()
    expect(page.locator("#cust-identities .identity-value",
                        has_text="john.smith@example.net")).to_be_visible()
    expect(page.locator("#suggestion-list li", has_text="John Smith")).to_have_count(0)
    assert errors == []
    page.context.close()
