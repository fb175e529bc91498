"""In a real browser: how the agent UI's pages (inbox, dashboard, knowledge base) handle the
API's refusals through their shared fetch helper (dom.js's api): an expired session sends
each page to /login, a refusal is shown as each page shows it, the knowledge base reads a
response without a body as empty, and non-GET requests carry the page's CSRF token.
The API's answers are faked with Playwright routes over a real hub (`omohub demo`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.e2e.demo_hub import require_chromium, running_demo, signed_in

require_chromium()

from playwright.sync_api import Browser, Page, Route, expect  # noqa: E402

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)
EXPIRED = {"status": 401, "content_type": "application/json",
           "body": json.dumps({"error": {"code": "unauthorized", "message": "Sign in again"}})}


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`omohub demo` on a free loopback port, with its own database and data dir."""
    with running_demo(tmp_path_factory.mktemp("hub-api-errors")) as url:
        yield url


def _page_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_an_expired_session_sends_every_page_to_login(browser: Browser, hub_url: str) -> None:
    # the inbox: its first GET (the ticket list)
    page = signed_in(browser, hub_url, "agent@example.com", "demo-agent")
    page.route(re.compile(r".*/api/conversations\?.*"), lambda route: route.fulfill(**EXPIRED))
    page.goto(f"{hub_url}/?lang=en")
    page.wait_for_url(f"{hub_url}/login")
    page.context.close()

    # the dashboard: its figures
    page = signed_in(browser, hub_url, "lead@example.com", "demo-lead")
    page.route(re.compile(r".*/api/metrics\?.*"), lambda route: route.fulfill(**EXPIRED))
    page.goto(f"{hub_url}/dashboard?lang=en")
    page.wait_for_url(f"{hub_url}/login")
    page.context.close()

    # the knowledge base: a POST (saving a new article)
    page = signed_in(browser, hub_url, "lead@example.com", "demo-lead")
    page.goto(f"{hub_url}/kb?lang=en")
    expect(page.locator("#kb-list .kb-item").first).to_be_visible()
    page.route(re.compile(r".*/api/kb/articles$"), lambda route: route.fulfill(**EXPIRED)
               if route.request.method == "POST" else route.continue_())
    page.fill("#kb-id", "en-expired")
    page.fill("#kb-title", "Never saved")
    page.fill("#kb-body", "The session ran out.")
    page.click("#kb-save")
    page.wait_for_url(f"{hub_url}/login")
    page.context.close()


def test_inbox_shows_refusals_and_sends_the_csrf_token(browser: Browser, hub_url: str) -> None:
    page = signed_in(browser, hub_url, "agent@example.com", "demo-agent")
    errors = _page_errors(page)
    # a ticket that does not exist (404): the API's message, and the ticket closes
    page.goto(f"{hub_url}/?lang=en#c999999")
    expect(page.locator("#toast")).to_contain_text("Error: ")
    expect(page.locator("#conv")).to_be_hidden()
    expect(page.locator("#conv-none")).to_be_visible()
    assert "#c" not in page.url

    # a refusal without a JSON body: the generic message; the PATCH carried the token
    page.locator(".conv-item").first.click()
    # the ticket's detail is in (before it, the actions do nothing): an open ticket
    expect(page.locator("#conv-status")).to_have_class(re.compile(r"\bst-open\b"))
    csrf = page.get_attribute("meta[name=csrf-token]", "content")
    sent: list[dict[str, str]] = []

    def broken(route: Route) -> None:
        if route.request.method != "PATCH":
            route.continue_()
            return
        sent.append(route.request.headers)
        route.fulfill(status=502, content_type="text/html", body="<h1>Bad gateway</h1>")

    page.route(re.compile(r".*/api/conversations/\d+$"), broken)
    page.click("#conv [data-action=pending]")
    expect(page.locator("#toast")).to_have_text("Something went wrong. Please try again.")
    assert len(sent) == 1
    assert csrf and sent[0].get("x-csrf-token") == csrf
    assert sent[0].get("content-type") == "application/json"
    assert sent[0].get("accept") == "application/json"
    assert errors == []
    page.context.close()


def test_dashboard_says_when_the_figures_fail(browser: Browser, hub_url: str) -> None:
    page = signed_in(browser, hub_url, "lead@example.com", "demo-lead")
    errors = _page_errors(page)
    answer: dict[str, object] = {}
    page.route(re.compile(r".*/api/metrics\?.*"), lambda route: route.fulfill(**answer)
               if answer else route.continue_())
    status = page.locator("#dash-status")

    answer.update(status=500, content_type="application/json",
                  body=json.dumps({"error": {"code": "internal", "message": "db down"}}))
    page.goto(f"{hub_url}/dashboard?lang=en")
    expect(status).to_have_text("Could not load the figures.")
    expect(status).to_have_class(re.compile(r"\berror\b"))

    # a 200 whose body is not JSON is no figures either
    answer.update(status=200, content_type="text/html", body="<h1>maintenance</h1>")
    page.click("#dash-range button[type=submit]")
    expect(status).to_have_text("Could not load the figures.")
    expect(status).to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#dash-cards .figure")).to_have_count(0)

    answer.clear()  # the API answers again
    page.click("#dash-range button[type=submit]")
    expect(page.locator("#dash-cards .figure")).to_have_count(5)
    expect(status).to_have_text("")
    expect(status).not_to_have_class(re.compile(r"\berror\b"))
    assert errors == []
    page.context.close()


def test_kb_shows_a_refusal_whatever_its_shape_and_reads_no_body_as_empty(
        browser: Browser, hub_url: str) -> None:
    page = signed_in(browser, hub_url, "lead@example.com", "demo-lead")
    errors = _page_errors(page)
    page.goto(f"{hub_url}/kb?lang=en")
    expect(page.locator("#kb-list .kb-item").first).to_be_visible()
    answer: dict[str, object] = {}
    page.route(re.compile(r".*/api/kb/search\?.*"), lambda route: route.fulfill(**answer))
    status = page.locator("#kb-status")

    def ask(expected: str | None = None, **response: object) -> None:
        answer.clear()
        answer.update(response)
        page.fill("#kb-try-q", "Can I borrow an umbrella?")
        page.click("#kb-try button[type=submit]")
        if expected is not None:
            expect(status).to_have_text(expected)
            expect(status).to_have_class(re.compile(r"\berror\b"))

    ask("Error: too many questions", status=429, content_type="application/json",
        body=json.dumps({"error": {"code": "rate_limited", "message": "too many questions"}}))
    ask("Error: rate_limited", status=429, content_type="application/json",  # code only
        body=json.dumps({"error": {"code": "rate_limited"}}))
    ask("Error: q is too long", status=400, content_type="application/json",
        body=json.dumps({"detail": "q is too long"}))
    ask("Error: HTTP 502", status=502, content_type="text/html", body="<h1>Bad gateway</h1>")

    # no body at all (204) is an empty result, not a failure
    ask(status=204, body="")
    expect(page.locator("#kb-decision")).to_have_class(re.compile(r"\bhandoff\b"))
    expect(page.locator("#kb-hits .kb-empty")).to_have_count(1)
    assert errors == []
    page.context.close()
