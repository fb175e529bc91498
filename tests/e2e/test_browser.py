"""The product slice in a real browser: a customer chats, the agent sees it live, replies,
and the customer sees the reply — Debian's Chromium driven by Playwright against a real
hub (`omohub demo`) started in a subprocess on a loopback port."""

from __future__ import annotations

import json
import os
import re
import struct
import threading
import uuid
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.e2e.demo_hub import ROOT, require_chromium, running_demo, signed_in

SCREENSHOT = ROOT / "docs" / "inbox.png"
XSS = "<img src=x onerror=alert(1)><script>alert(2)</script>"

require_chromium()

from playwright.sync_api import Browser, Page, Route, expect  # noqa: E402

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def hub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`omohub demo` on a free loopback port, with its own database and data dir."""
    with running_demo(tmp_path_factory.mktemp("hub")) as url:
        yield url


@pytest.fixture(scope="module")
def agent(browser: Browser, hub_url: str) -> Iterator[Page]:
    """A signed-in agent with the inbox open (English UI) and the live socket connected."""
    page = signed_in(browser, hub_url, "agent@example.com", "demo-agent",
                     viewport={"width": 1280, "height": 760})
    page.goto(f"{hub_url}/?lang=en")
    expect(page.locator("#conn")).to_have_attribute("data-state", "online")
    expect(page.locator(".conv-item").first).to_be_visible()
    yield page
    page.context.close()


def _customer(browser: Browser, hub_url: str, query: str = "?lang=en") -> Page:
    context = browser.new_context(viewport={"width": 390, "height": 760}, locale="en-US")
    page = context.new_page()
    page.goto(f"{hub_url}/chat{query}")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    return page


def _send(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")
    # acknowledged by the hub: the bubble leaves its "sending" state
    expect(page.locator(".msg.out:not(.pending)", has_text=text)).to_have_count(1)


def _png(width: int = 48, height: int = 32, rgb: tuple[int, int, int] = (80, 160, 90)) -> bytes:
    """A small, valid PNG (the hub checks the bytes, not just the name)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def _mark_no_reload(page: Page) -> None:
    page.evaluate("window.__e2eSamePage = true")


def _assert_no_reload(page: Page) -> None:
    assert page.evaluate("window.__e2eSamePage === true"), "the inbox page was reloaded"


# --------------------------------------------------------------------------- tests

def test_product_card_is_server_rendered(hub_url: str) -> None:
    ja = httpx.get(f"{hub_url}/chat", params={"product": "OMO-TEA-001", "store": "shibuya"},
                   headers={"Accept-Language": "ja"})
    assert ja.status_code == 200
    assert "静岡煎茶 100g" in ja.text and "omo 渋谷店" in ja.text and "¥1,280" in ja.text
    en = httpx.get(f"{hub_url}/chat?product=OMO-TEA-001&store=shibuya&lang=en")
    assert "Shizuoka sencha 100 g" in en.text
    assert "script-src 'self'" in en.headers["content-security-policy"]


def test_chat_reaches_inbox_live_and_reply_reaches_customer(
        browser: Browser, agent: Page, hub_url: str,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    customer = _customer(browser, hub_url, "?product=OMO-TEA-001&store=shibuya&lang=en")
    _mark_no_reload(agent)
    question = f"Is the sencha in stock at Shibuya? ({uuid.uuid4().hex[:6]})"
    _send(customer, question)

    # it appears at the top of the inbox, unread, without a reload (found by its id: the
    # bot may answer at once, and then the row's preview is the bot's answer)
    found = agent.request.get(f"{hub_url}/api/conversations", params={"q": question}).json()
    [conversation_id] = [c["id"] for c in found["items"]]
    row = agent.locator(f".conv-item[data-conversation-id='{conversation_id}']")
    expect(row).to_be_visible()
    expect(agent.locator(".conv-item").first).to_have_attribute(
        "data-conversation-id", str(conversation_id))
    expect(row.locator(".unread")).to_have_text("1")
    _assert_no_reload(agent)

    # the agent opens it (marks it read) and replies on the web channel
    row.click()
    expect(agent.locator("#timeline .msg.in", has_text=question)).to_be_visible()
    expect(row.locator(".unread")).to_have_count(0)
    expect(agent.locator("#reply-channel")).to_have_value("web")
    expect(agent.locator("#cust-presence")).to_have_attribute("data-online", "true")
    expect(agent.locator("#ctx-product")).to_contain_text("Shizuoka sencha 100 g")
    expect(agent.locator("#ctx-product")).to_contain_text("¥1,280")
    expect(agent.locator("#ctx-store")).to_have_text("omo 渋谷店")
    answer = "Yes — 12 packs are on the shelf today."
    agent.fill("#reply-text", answer)
    agent.press("#reply-text", "Enter")
    expect(agent.locator("#timeline .msg.out", has_text=answer)).to_be_visible()

    # the customer sees the reply live
    expect(customer.locator(".msg.in", has_text=answer)).to_be_visible()

    # the customer sends a photo; the agent sees it in the timeline
    customer.set_input_files("#file", files=[
        {"name": "shelf.png", "mimeType": "image/png", "buffer": _png()}])
    expect(customer.locator(".msg.out img.attachment")).to_have_count(1)
    expect(agent.locator("#timeline .msg.in .attachments img")).to_have_count(1)

    # an internal note stays with the agents
    agent.click("#composer button[data-mode=note]")
    agent.fill("#reply-text", "Checked stock with the Shibuya store by phone.")
    agent.click("#send")
    expect(agent.locator("#timeline .msg.note")).to_contain_text("Checked stock")
    agent.fill("#tag-input", "stock")
    agent.press("#tag-input", "Enter")
    expect(agent.locator("#tag-list .tag")).to_have_text(["stock×"])
    agent.click("#composer button[data-mode=reply]")
    _assert_no_reload(agent)

    # a reload of the customer page continues the same conversation (history)
    customer.reload()
    expect(customer.locator("#status")).to_have_attribute("data-state", "online")
    expect(customer.locator(".msg.out", has_text=question)).to_have_count(1)
    expect(customer.locator(".msg.in", has_text=answer)).to_have_count(1)
    expect(customer.locator(".msg.out img.attachment")).to_have_count(1)
    expect(customer.locator("#messages")).not_to_contain_text("Checked stock")
    assert customer.evaluate("localStorage.getItem('omohub.visitor_token')")

    # The README's picture: refreshed on request, otherwise written to a scratch file.
    shot = SCREENSHOT if os.environ.get("OMOHUB_SAVE_SCREENSHOT") == "1" else (
        tmp_path_factory.mktemp("shots") / "inbox.png")
    agent.locator("#reply-text").blur()
    agent.mouse.move(0, 0)
    agent.screenshot(path=str(shot))
    assert shot.stat().st_size < 300_000
    customer.context.close()
    # the agent sees, live, that the customer has closed the chat
    expect(agent.locator("#cust-presence")).to_have_attribute("data-online", "false")


def test_open_ticket_stays_current_while_others_work_on_it(
        browser: Browser, agent: Page, hub_url: str) -> None:
    customer = _customer(browser, hub_url)
    question = f"I want to return a kettle I bought ({uuid.uuid4().hex[:6]})"
    _send(customer, question)
    _send(customer, "talk to a human please")
    found = agent.request.get(f"{hub_url}/api/conversations", params={"q": question}).json()
    [conversation_id] = [c["id"] for c in found["items"]]
    row = agent.locator(f".conv-item[data-conversation-id='{conversation_id}']")
    expect(row.locator(".pill.waiting")).to_have_text("Waiting for agent")  # the bot handed off
    row.click()

    # suggestions are about the question (returning a kettle: the returns or the kettle
    # article, whose order the question's random tag can swap), not about "a human,
    # please"; the panel taking its height leaves the newest items in view
    expect(agent.locator("#assist .assist-item").first).to_contain_text(
        re.compile("return|kettle", re.IGNORECASE))
    expect(agent.locator("#timeline .msg.in", has_text="talk to a human")).to_be_visible()
    agent.wait_for_function("""() => { const t = document.getElementById('timeline');
        return t.scrollHeight - t.scrollTop - t.clientHeight < 2; }""")

    # a supervisor assigns the ticket to themself, then resolves it, elsewhere
    lead = httpx.post(f"{hub_url}/api/auth/login",
                      json={"email": "lead@example.com", "password": "demo-lead"}).json()
    bearer = {"Authorization": f"Bearer {lead['token']}"}
    httpx.patch(f"{hub_url}/api/conversations/{conversation_id}", headers=bearer,
                json={"assignee_id": lead["agent"]["id"]}).raise_for_status()
    expect(agent.locator("#conv-assignee")).to_contain_text("Ken (lead)")
    expect(agent.locator("#timeline .system", has_text="Assigned to Ken (lead)")).to_be_visible()
    expect(row.locator(".pill.waiting")).to_have_count(0)  # no longer waiting: an agent has it
    httpx.patch(f"{hub_url}/api/conversations/{conversation_id}", headers=bearer,
                json={"status": "resolved"}).raise_for_status()
    expect(agent.locator("#cust-tickets .current .pill")).to_have_text("Resolved")
    customer.context.close()


def test_an_erased_customers_ticket_leaves_every_inbox(
        browser: Browser, agent: Page, hub_url: str) -> None:
    customer = _customer(browser, hub_url)
    question = f"Please delete my data ({uuid.uuid4().hex[:6]})"
    _send(customer, question)
    found = agent.request.get(f"{hub_url}/api/conversations", params={"q": question}).json()
    [conversation] = found["items"]
    row = agent.locator(f".conv-item[data-conversation-id='{conversation['id']}']")
    row.click()
    expect(agent.locator("#timeline .msg.in", has_text=question)).to_be_visible()

    lead = httpx.post(f"{hub_url}/api/auth/login",
                      json={"email": "lead@example.com", "password": "demo-lead"}).json()
    erased = httpx.delete(f"{hub_url}/api/customers/{conversation['customer']['id']}",
                          headers={"Authorization": f"Bearer {lead['token']}"})
    assert erased.status_code == 200, erased.text
    expect(row).to_have_count(0)
    expect(agent.locator("#conv-none")).to_be_visible()
    expect(agent.locator("#toast")).to_contain_text("erased")
    customer.context.close()


def test_an_anonymous_visitor_is_named_in_the_agents_language(
        browser: Browser, hub_url: str) -> None:
    lead = signed_in(browser, hub_url, "lead@example.com", "demo-lead",
                     viewport={"width": 1280, "height": 760})
    lead.goto(f"{hub_url}/?lang=ja")
    expect(lead.locator("#conn")).to_have_attribute("data-state", "online")
    customer = _customer(browser, hub_url)
    question = f"Where is my parcel? ({uuid.uuid4().hex[:6]})"
    _send(customer, question)
    [conversation] = lead.request.get(f"{hub_url}/api/conversations",
                                      params={"q": question}).json()["items"]
    code = conversation["customer"]["guest_code"]
    row = lead.locator(f".conv-item[data-conversation-id='{conversation['id']}']")
    expect(row.locator(".name")).to_have_text(f"ゲスト {code}")
    row.click()
    expect(lead.locator("#conv-name")).to_have_text(f"ゲスト {code}")
    customer.context.close()
    lead.context.close()


def test_customer_markup_is_shown_as_text_and_runs_nothing(
        browser: Browser, agent: Page, hub_url: str) -> None:
    customer = _customer(browser, hub_url)
    dialogs: list[str] = []
    for page in (agent, customer):
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    _send(customer, XSS)

    # found by its id: the bot answers at once, and then the row's preview is its answer
    found = agent.request.get(f"{hub_url}/api/conversations", params={"q": XSS}).json()
    [conversation_id] = [c["id"] for c in found["items"]]
    row = agent.locator(f".conv-item[data-conversation-id='{conversation_id}']")
    expect(row).to_be_visible()
    row.click()
    expect(agent.locator("#timeline .msg.in .text", has_text=XSS)).to_have_text(XSS)
    expect(customer.locator(".msg.out .text", has_text=XSS)).to_have_text(XSS)

    # the agent answers with the same string: the customer's page must not run it either
    agent.fill("#reply-text", XSS)
    agent.press("#reply-text", "Enter")
    expect(customer.locator(".msg.in .text", has_text=XSS)).to_have_text(XSS)

    for page in (agent, customer):
        assert page.locator("img[src='x']").count() == 0
        assert page.locator("#timeline script, #messages script, #conv-list script").count() == 0
    assert dialogs == []
    customer.context.close()


def test_forged_visitor_token_starts_fresh(browser: Browser, hub_url: str) -> None:
    context = browser.new_context(locale="en-US")
    context.add_init_script(
        "if (!sessionStorage.getItem('seeded')) {"
        " sessionStorage.setItem('seeded', '1');"
        " localStorage.setItem('omohub.visitor_token', 'forged.token.value'); }")
    page = context.new_page()
    page.goto(f"{hub_url}/chat?lang=en")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    # a function, not an expression: Playwright polls an expression with eval, which the
    # page's CSP refuses whenever the answer is not already true at the first look
    page.wait_for_function("() => { const t = localStorage.getItem('omohub.visitor_token');"
                           " return Boolean(t) && t !== 'forged.token.value'; }")
    _send(page, "hello after a forged token")
    context.close()


def test_widget_adds_a_launcher_that_opens_the_chat(browser: Browser, hub_url: str) -> None:
    """One script tag on another site (another origin): a launcher, and an iframe of
    <hub>/chat. The shop is a second loopback server: Chrome's Private Network Access
    would block a public test origin from loading a loopback script."""
    html = (f'<!doctype html><html lang="en"><body><h1>A shop</h1>'
            f'<script src="{hub_url}/widget.js" async data-product="OMO-TEA-001" '
            f'data-store="shibuya" data-locale="en"></script></body></html>').encode()

    class Shop(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: object) -> None:
            pass

    shop = ThreadingHTTPServer(("127.0.0.1", 0), Shop)
    threading.Thread(target=shop.serve_forever, daemon=True).start()
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.goto(f"http://localhost:{shop.server_address[1]}/")
    launcher = page.locator("button[data-omohub=launcher]")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    launcher.click()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    src = page.locator("[data-omohub=panel] iframe").get_attribute("src") or ""
    assert src.startswith(f"{hub_url}/chat?") and "product=OMO-TEA-001" in src
    chat = page.frame_locator("[data-omohub=panel] iframe")
    expect(chat.locator(".product-name")).to_have_text("Shizuoka sencha 100 g")
    expect(chat.locator("#status")).to_have_attribute("data-state", "online")
    chat.locator("#close").click()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    assert page.evaluate("Object.keys(window).filter(k => k.toLowerCase().includes('omohub'))") \
        == ["OmohubWidget"]
    context.close()
    shop.shutdown()


def test_supervisor_dashboard_draws_figures_and_svg_charts(browser: Browser, hub_url: str) -> None:
    page = signed_in(browser, hub_url, "lead@example.com", "demo-lead")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{hub_url}/dashboard?lang=en")
    expect(page.locator("#dash-cards .figure")).to_have_count(5)
    expect(page.locator("#chart-days svg rect.bar")).to_have_count(7)   # default: last 7 days
    expect(page.locator("#chart-channels svg .hbar").first).to_be_visible()
    expect(page.locator("#chart-bot svg .hbar")).to_have_count(5)
    # a narrower range redraws
    page.fill("#dash-from", page.input_value("#dash-to"))
    page.click("#dash-range button[type=submit]")
    expect(page.locator("#chart-days svg rect.bar")).to_have_count(1)
    assert errors == []
    page.context.close()


def test_supervisor_dashboard_lists_the_articles_that_need_attention(
        browser: Browser, hub_url: str) -> None:
    # a customer finds the bot's answer no help
    customer = _customer(browser, hub_url, "?lang=ja")
    answers = customer.locator(".msg.from-bot[data-id]")
    _send(customer, f"返品したいのですが、期限はいつまでですか？ ({uuid.uuid4().hex[:6]})")
    expect(answers.locator(".quick .chip")).to_have_count(3)
    answer_id, count = answers.last.get_attribute("data-id"), answers.count()
    answers.last.locator(".chip", has_text="解決しない").click()
    expect(answers).to_have_count(count + 1)  # the bot's next word: the rating is recorded
    expect(customer.locator(f".msg[data-id='{answer_id}'] .quick")).to_have_count(0)

    page = signed_in(browser, hub_url, "lead@example.com", "demo-lead")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    found = page.request.get(f"{hub_url}/api/conversations",
                             params={"q": "返品したいのですが"}).json()["items"]
    timeline = [item for c in found
                for item in page.request.get(f"{hub_url}/api/conversations/{c['id']}")
                .json()["timeline"]]
    [article] = [i["data"]["article_id"] for i in timeline if str(i["id"]) == answer_id]
    page.goto(f"{hub_url}/dashboard?lang=en")
    expect(page.locator("#articles-title")).to_have_text("Articles that need attention")
    row = page.locator(f"#chart-articles tr.article-row[data-id='{article}']")
    expect(row).to_be_visible()
    expect(row.locator(".article-id")).to_have_text(article)
    expect(row.locator(".article-title")).not_to_have_text(article)  # its title from the KB
    expect(row.locator("td.unhelpful")).not_to_have_text("0")
    expect(row.locator(".rate-bar .part.unhelpful")).to_have_count(1)

    # titles are text, and an article deleted since is named by its id
    def more(route: Route) -> None:
        data = route.fetch().json()
        data["articles"] = [
            {"id": "x-1", "title": XSS, "answered": 3, "helpful": 1, "unhelpful": 2,
             "handed_off": 1, "helpful_rate": 0.333},
            {"id": "gone-1", "title": None, "answered": 1, "helpful": 0, "unhelpful": 0,
             "handed_off": 0, "helpful_rate": None}]
        route.fulfill(json=data)

    page.route(re.compile(r".*/api/metrics\?.*"), more)
    page.goto(f"{hub_url}/dashboard?lang=ja")
    expect(page.locator("#articles-title")).to_have_text("改善が必要な記事")
    rows = page.locator("#chart-articles tr.article-row")
    expect(rows).to_have_count(2)
    expect(rows.first.locator(".article-title")).to_have_text(XSS)
    expect(rows.first.locator(".rate-value")).to_have_text("33%")
    expect(rows.last.locator(".article-title")).to_have_text("gone-1")
    expect(rows.last.locator(".article-id")).to_have_text("ナレッジベースから削除済み")
    expect(rows.last.locator(".rate-value")).to_have_text("評価なし")
    assert page.locator("img[src='x'], #chart-articles script").count() == 0
    assert errors == []
    page.context.close()
    customer.context.close()


def test_supervisor_downloads_the_voc_export_masked(browser: Browser, hub_url: str) -> None:
    page = signed_in(browser, hub_url, "lead@example.com", "demo-lead")
    page.goto(f"{hub_url}/dashboard?lang=en")
    expect(page.locator("#voc-mask")).to_be_checked()  # privacy by default
    page.select_option("#voc-format", "csv")
    with page.expect_download() as download:
        page.click("#voc-download")
    body = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename.endswith(".csv")
    assert body.startswith("\ufeffitem_id,created_at,local_time,".encode())
    rows = body.decode("utf-8-sig").splitlines()[1:]
    assert rows and all(",#" in row for row in rows)  # names replaced by customer numbers
    page.context.close()


def _try(page: Page, question: str) -> None:
    page.fill("#kb-try-q", question)
    page.click("#kb-try button[type=submit]")
    expect(page.locator("#kb-decision")).to_have_class(re.compile(r"\b(answer|handoff)\b"))


def test_kb_editor_drafts_publishes_and_refuses_a_taken_id(browser: Browser,
                                                           hub_url: str) -> None:
    page = signed_in(browser, hub_url, "lead@example.com", "demo-lead")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{hub_url}/kb?lang=en")
    expect(page.locator(".topnav a[href='/kb']")).to_have_attribute("aria-current", "page")
    expect(page.locator("#kb-list .kb-item").first).to_be_visible()  # the demo's articles
    expect(page.locator("#kb-save")).to_have_text("Save draft")

    # a new article is saved as a draft: not live, not used by the bot
    page.fill("#kb-id", "ja-umbrella")
    page.select_option("#kb-locale", "ja")
    page.fill("#kb-title", "傘の貸し出し")
    page.fill("#kb-questions", "傘を借りられますか")
    page.fill("#kb-body", "全店舗で傘を無料でお貸しします。\n\n詳しくは店舗スタッフへ。")
    expect(page.locator("#kb-preview")).to_have_text("全店舗で傘を無料でお貸しします。")
    page.click("#kb-save")
    expect(page.locator("#kb-status")).to_contain_text("Saved as a draft (version 1)")
    item = page.locator("#kb-list li[data-id='ja-umbrella']")
    expect(item.locator(".kb-ver")).to_have_text("v1")
    expect(item.locator(".kb-draft")).to_have_count(1)
    expect(item.locator(".kb-pub")).to_have_count(0)
    expect(page.locator("#kb-current")).to_contain_text("Unpublished")
    expect(page.locator("#kb-publish")).to_have_text("Publish")
    expect(page.locator("#kb-history .kb-hist-item")).to_have_count(1)
    expect(page.locator("#kb-history .kb-live")).to_have_count(0)
    _try(page, "傘を借りられますか")
    expect(page.locator("#kb-hits .kb-hit[data-id='ja-umbrella']")).to_have_count(0)

    # publish makes it live; the history marks that version, and only it
    page.click("#kb-publish")
    expect(item.locator(".kb-pub")).to_have_count(1)
    expect(item.locator(".kb-ver")).to_have_text("v2")
    expect(page.locator("#kb-history .kb-live")).to_have_count(1)
    expect(page.locator("#kb-history .kb-hist-item[data-version='2'] .kb-live")).to_have_text(
        "Live")
    expect(page.locator("#kb-state-head")).to_have_text("Live: version 2")
    expect(page.locator("#kb-save")).to_have_text("Save changes as draft")
    expect(page.locator("#kb-publish")).to_be_hidden()  # nothing waits to be published
    expect(page.locator("#kb-discard")).to_be_hidden()
    _try(page, "傘を借りられますか")
    expect(page.locator("#kb-hits .kb-hit").first).to_have_attribute("data-id", "ja-umbrella")
    answer = page.locator("#kb-hits .kb-hit[data-id='ja-umbrella'] .kb-hit-answer")
    expect(answer).to_have_text("全店舗で傘を無料でお貸しします。")

    # an edit of the live article is a pending draft: the bot keeps answering with v2
    changed = "傘は全店舗で無料です。翌日までにご返却ください。"
    page.fill("#kb-body", changed)
    page.click("#kb-save")
    expect(page.locator("#kb-status")).to_contain_text("Saved as draft v3")
    expect(page.locator("#kb-status")).to_contain_text("live version v2")
    expect(item.locator(".kb-ver")).to_have_text("v2")
    expect(item.locator(".kb-pending")).to_have_text("Draft v3 pending")
    expect(page.locator("#kb-state-head")).to_have_text("Draft v3 pending (not live)")
    expect(page.locator("#kb-live-body")).to_contain_text("全店舗で傘を無料でお貸しします。")
    expect(page.locator("#kb-body")).to_have_value(changed)
    expect(page.locator("#kb-publish")).to_have_text("Publish changes")
    expect(page.locator("#kb-discard")).to_have_text("Discard draft")
    history = page.locator("#kb-history")
    expect(history.locator(".kb-hist-item[data-version='3'] .kb-pending")).to_have_count(1)
    expect(history.locator(".kb-hist-item[data-version='2'] .kb-live")).to_have_count(1)
    _try(page, "傘を借りられますか")
    expect(answer).to_have_text("全店舗で傘を無料でお貸しします。")

    # "Publish changes": the draft becomes the live version
    page.click("#kb-publish")
    expect(page.locator("#kb-status")).to_contain_text("Changes published: v3 is live")
    expect(item.locator(".kb-ver")).to_have_text("v3")
    expect(item.locator(".kb-pending")).to_have_count(0)
    expect(page.locator("#kb-live")).to_be_hidden()
    expect(history.locator(".kb-hist-item[data-version='3'] .kb-live")).to_have_count(1)
    _try(page, "傘を借りられますか")
    expect(answer).to_have_text(changed)

    # "Discard draft": the pending edit goes (kept in the history), the live text stays
    page.fill("#kb-body", "傘の貸し出しは終了しました。")
    page.click("#kb-save")
    expect(item.locator(".kb-pending")).to_have_text("Draft v4 pending")
    page.click("#kb-discard")
    expect(page.locator("#kb-status")).to_contain_text("Draft discarded")
    expect(item.locator(".kb-pending")).to_have_count(0)
    expect(item.locator(".kb-ver")).to_have_text("v5")
    expect(page.locator("#kb-body")).to_have_value(changed)
    expect(page.locator("#kb-discard")).to_be_hidden()
    expect(history.locator(".kb-hist-item")).to_have_count(5)
    _try(page, "傘を借りられますか")
    expect(answer).to_have_text(changed)

    # unpublished: no version is marked live any more
    page.click("#kb-unpublish")
    expect(item.locator(".kb-draft")).to_have_count(1)
    expect(page.locator("#kb-publish")).to_have_text("Publish")
    expect(page.locator("#kb-unpublish")).to_be_hidden()
    expect(page.locator("#kb-state-head")).to_have_text("Unpublished")
    expect(page.locator("#kb-history .kb-hist-item")).to_have_count(6)
    expect(page.locator("#kb-history .kb-live")).to_have_count(0)

    # "New article" with an id that exists is refused, visibly; nothing is overwritten
    before = page.request.get(f"{hub_url}/api/kb/articles/ja-complaint").json()
    page.click("#kb-new")
    page.fill("#kb-id", "ja-complaint")
    page.fill("#kb-title", "上書きのつもりはない")
    page.fill("#kb-body", "別の内容")
    page.click("#kb-save")
    status = page.locator("#kb-status")
    expect(status).to_have_class(re.compile(r"\berror\b"))
    expect(status).to_contain_text("ja-complaint")
    expect(status).to_contain_text("already exists")
    expect(page.locator("#kb-id")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#kb-title")).to_have_value("上書きのつもりはない")  # kept to retry
    after = page.request.get(f"{hub_url}/api/kb/articles/ja-complaint").json()
    assert (after["version"], after["title"], after["body"]) == (
        before["version"], before["title"], before["body"])

    # an article opened from the list is saved in place
    item.locator("button").click()
    expect(page.locator("#kb-id")).to_have_value("ja-umbrella")
    page.fill("#kb-body", "傘の貸し出しは終了しました。")
    page.click("#kb-save")
    expect(item.locator(".kb-ver")).to_have_text("v7")
    expect(page.locator("#kb-status")).to_contain_text("Saved as a draft (version 7)")
    page.locator("#kb-history .kb-hist-item[data-version='1']").click()  # v1's text back
    expect(page.locator("#kb-version-title")).to_have_text("傘の貸し出し")
    page.click("#kb-restore")
    expect(item.locator(".kb-ver")).to_have_text("v8")
    expect(page.locator("#kb-body")).to_have_value(
        "全店舗で傘を無料でお貸しします。\n\n詳しくは店舗スタッフへ。")
    expect(page.locator("#kb-status")).to_contain_text("Version 1 restored as v8")
    expect(page.locator("#kb-history .kb-hist-item")).to_have_count(8)
    expect(item.locator(".kb-draft")).to_have_count(1)  # restoring does not publish
    refused = "the server responded with a status of 409"  # the browser logs the refusal
    assert [error for error in errors if refused not in error] == []

    # an API error reaches a visible message, as text
    page.route("**/api/kb/articles/ja-umbrella", lambda route: route.fulfill(
        status=403, content_type="application/json",
        body=json.dumps({"error": {"code": "forbidden", "message": XSS}}))
        if route.request.method == "PUT" else route.continue_())
    page.click("#kb-save")
    expect(page.locator("#kb-status")).to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#kb-status")).to_contain_text(XSS)
    expect(page.locator("#kb-status img")).to_have_count(0)
    page.context.close()


def test_agent_assist_and_channel_items(browser: Browser, hub_url: str) -> None:
    page = signed_in(browser, hub_url, "agent@example.com", "demo-agent")
    asked: list[str] = []

    def kb(route: Route) -> None:
        asked.append(route.request.url)
        route.fulfill(status=200, content_type="application/json", body=json.dumps({
            "query": "Can I return this?",
            "items": [{"id": 1, "title": XSS, "answer": "Returns are free within 30 days.",
                       "score": 0.9, "confidence": "high"},
                      {"id": 2, "title": "Shipping", "answer": "We ship in 2 days.",
                       "score": 0.4, "confidence": "low"}]}))

    def detail(route: Route) -> None:
        response = route.fetch()
        data = response.json()
        last = data["timeline"][-1]["created_at"]

        def item(n: int, **changes: object) -> dict[str, object]:
            base = {"id": 990_000 + n, "conversation_id": data["id"], "type": "message",
                    "channel": "line", "direction": "in", "sender_type": "customer",
                    "agent_id": None, "text": None, "attachments": [], "data": {},
                    "internal": False, "delivery_status": "received", "error": None,
                    "created_at": last}
            base.update(changes)
            return base

        data["timeline"] += [
            item(1, type="call", channel="phone", data={"status": "completed", "duration": 125}),
            item(2, type="recording", channel="phone"),
            item(3, data={"sticker": {"keywords": ["thanks"]}}),
            item(4, data={"location": {"title": "Shop", "address": XSS,
                                       "map_url": "javascript:alert(1)"}}),
            item(5, text="take it back", data={"unsent": True}),
            item(6, channel="email", text="Short", data={"full_text": "Short\n> quoted"}),
            item(7, text="Can I return this?"),
        ]
        route.fulfill(response=response, json=data)

    page.route(re.compile(r".*/api/conversations/\d+/suggestions\?.*"), kb)
    page.route(re.compile(r".*/api/conversations/\d+$"), detail)
    customer = _customer(browser, hub_url)
    hello = f"Hello ({uuid.uuid4().hex[:6]})"
    _send(customer, hello)
    found = page.request.get(f"{hub_url}/api/conversations", params={"q": hello}).json()
    [conversation_id] = [c["id"] for c in found["items"]]
    page.goto(f"{hub_url}/?lang=en")
    page.locator(f".conv-item[data-conversation-id='{conversation_id}']").click()

    expect(page.locator("#assist .assist-item")).to_have_count(2)
    expect(page.locator("#assist .assist-item-title").first).to_have_text(XSS)
    assert f"/api/conversations/{conversation_id}/suggestions?" in asked[-1]
    page.fill("#reply-text", "Hello")
    page.locator("#assist .assist-insert").first.click()
    expect(page.locator("#reply-text")).to_have_value("Hello\n\nReturns are free within 30 days.")

    timeline = page.locator("#timeline")
    expect(timeline.locator(".call-card")).to_contain_text("2:05")
    expect(timeline.locator("audio.recording")).to_have_attribute("src", "/api/recordings/990002")
    expect(timeline.locator(".sticker")).to_contain_text("thanks")
    expect(timeline.locator(".location-address")).to_have_text(XSS)
    expect(timeline.locator(".location a")).to_have_count(0)   # only https:// map links
    expect(timeline.locator(".msg.unsent .unsent-label")).to_have_count(1)
    expect(timeline.locator(".full-text-body")).to_be_hidden()
    timeline.locator(".full-text summary").click()
    expect(timeline.locator(".full-text-body")).to_have_text("Short\n> quoted")
    assert page.locator("img[src='x']").count() == 0
    page.context.close()
    customer.context.close()


def test_kb_editor_refuses_to_save_over_an_edit_made_meanwhile(browser: Browser,
                                                               hub_url: str) -> None:
    lead = httpx.post(f"{hub_url}/api/auth/login",
                      json={"email": "lead@example.com", "password": "demo-lead"}).json()
    bearer = {"Authorization": f"Bearer {lead['token']}"}
    article = {"title": "駐車場", "locale": "ja", "questions": ["駐車場はありますか"],
               "body": "提携駐車場が2時間無料です。"}
    assert httpx.put(f"{hub_url}/api/kb/articles/ja-parking", json=article,
                     headers=bearer).status_code == 200  # v1, a draft
    page = signed_in(browser, hub_url, "lead@example.com", "demo-lead")
    page.goto(f"{hub_url}/kb?lang=en")
    item = page.locator("#kb-list li[data-id='ja-parking']")
    item.locator("button").click()
    expect(page.locator("#kb-id")).to_have_value("ja-parking")

    # another supervisor saves the article while it is open here
    assert httpx.put(f"{hub_url}/api/kb/articles/ja-parking", headers=bearer, json={
        **article, "body": "提携駐車場が3時間無料です。"}).status_code == 200  # v2
    mine = "駐車場はございません。"
    page.fill("#kb-body", mine)
    page.click("#kb-save")
    status = page.locator("#kb-status")
    expect(status).to_have_class(re.compile(r"\berror\b"))
    expect(status).to_contain_text("Someone else saved this article")
    expect(status).to_contain_text("version 2")
    expect(page.locator("#kb-body")).to_have_value(mine)  # kept, to be copied
    stored = httpx.get(f"{hub_url}/api/kb/articles/ja-parking", headers=bearer).json()
    assert (stored["version"], stored["body"]) == (2, "提携駐車場が3時間無料です。")

    # opened again, the article saves over the newest version
    item.locator("button").click()
    expect(page.locator("#kb-body")).to_have_value("提携駐車場が3時間無料です。")  # loaded
    page.fill("#kb-body", mine)
    page.click("#kb-save")
    expect(status).to_contain_text("Saved as a draft (version 3)")
    page.context.close()
