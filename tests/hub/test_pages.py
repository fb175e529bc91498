"""Which language a page is shown in, and that a chosen language is kept."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, get
from litestar.testing import TestClient

from hub.auth import SESSION_COOKIE, LoginThrottle
from hub.pages import LOCALE_COOKIE, pick_locale


@get("/locale")
async def _locale(request: Request[Any, Any, Any]) -> str:
    return pick_locale(request, default=request.query_params.get("default", "ja"))


@pytest.mark.parametrize(("query", "cookie", "accept", "expected"), [
    ("", None, "", "ja"),                              # nothing asked: the default
    ("?default=en", None, "", "en"),                   # the agent's profile language
    ("?default=xx", None, "", "ja"),                   # an unknown default falls back
    ("", None, "fr;q=1, en;q=0.8, ja;q=0.5", "en"),    # the best language we have
    ("?default=ja", None, "en-US,en;q=0.9", "en"),     # the browser beats the profile
    ("", "ja", "en-US", "ja"),                         # a language chosen before wins
    ("", "xx", "en-US", "en"),                         # a forged cookie is ignored
    ("?lang=en", "ja", "ja", "en"),                    # ?lang= beats everything
    ("?lang=de", None, "en", "en"),                    # an unsupported ?lang= is ignored
])
def test_pick_locale_order(query: str, cookie: str | None, accept: str, expected: str) -> None:
    with TestClient(Litestar([_locale])) as client:
        if cookie is not None:
            client.cookies.set(LOCALE_COOKIE, cookie)
        response = client.get(f"/locale{query}", headers={"Accept-Language": accept})
    assert response.text == expected


def _page_lang(response: httpx.Response) -> str:
    match = re.search(r'<html lang="([a-z]+)"', response.text)
    assert match, response.text[:200]
    return match.group(1)


async def test_an_agent_page_follows_the_browser_and_keeps_a_chosen_language(hub: Any) -> None:
    token = await hub.login("lead@example.com", "lead-password")  # profile language: ja
    english = {"Accept-Language": "en-US,en;q=0.9"}
    async with httpx.AsyncClient(base_url=hub.url, cookies={SESSION_COOKIE: token}) as browser:
        assert _page_lang(await browser.get("/", headers=english)) == "en"
        chosen = await browser.get("/?lang=ja", headers=english)
        assert _page_lang(chosen) == "ja"
        assert chosen.cookies.get(LOCALE_COOKIE) == "ja"
        # the next page, opened without ?lang=, stays in the chosen language
        assert _page_lang(await browser.get("/dashboard", headers=english)) == "ja"
        assert _page_lang(await browser.get("/kb?lang=en", headers=english)) == "en"
        assert _page_lang(await browser.get("/", headers=english)) == "en"


async def test_the_login_page_and_the_chat_page_keep_a_chosen_language(hub: Any) -> None:
    japanese = {"Accept-Language": "ja"}
    async with httpx.AsyncClient(base_url=hub.url) as browser:
        assert _page_lang(await browser.get("/login", headers=japanese)) == "ja"
        assert _page_lang(await browser.get("/login?lang=en", headers=japanese)) == "en"
        assert _page_lang(await browser.get("/chat", headers=japanese)) == "en"
    async with httpx.AsyncClient(base_url=hub.url) as customer:
        assert _page_lang(await customer.get("/chat?lang=en", headers=japanese)) == "en"
        assert _page_lang(await customer.get("/chat", headers=japanese)) == "en"


async def test_the_sign_in_form_holds_back_a_guesser_as_the_api_does(hub: Any) -> None:
    async with httpx.AsyncClient(base_url=hub.url) as browser:

        async def sign_in(password: str) -> httpx.Response:
            form = await browser.get("/login?lang=en")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf
            return await browser.post("/login", data={
                "csrf": csrf.group(1), "email": "agent@example.com", "password": password})

        for _ in range(LoginThrottle.MAX_PER_EMAIL):
            assert (await sign_in("guess")).headers["location"] == "/login?error=1"
        held_back = await sign_in("agent-password")  # the right one, too late
        assert held_back.headers["location"] == "/login?error=throttled"
        page = await browser.get("/login?error=throttled&lang=en")
        assert "Too many failed sign-ins" in page.text
        assert SESSION_COOKIE not in browser.cookies
