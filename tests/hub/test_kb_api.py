"""The knowledge base through the API: retrieval with scores, editing with versions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from hub import db
from hub.knowledge import export_directory, import_directory
from hub.models import UTCDateTime
from hub.serialize import iso
from kb.articles import Article, default_articles_dir, load_directory
from tests.conftest import RunningHub

pytestmark = pytest.mark.usefixtures("lexical_only")


async def test_search_returns_scored_articles(kb_hub: RunningHub) -> None:
    token = await kb_hub.login()
    found = (await kb_hub.api("GET", "/api/kb/search?q=返品したい&locale=ja", token)).json()
    assert found["items"] and "返品" in found["items"][0]["title"]
    scores = [item["score"] for item in found["items"]]
    assert scores == sorted(scores, reverse=True)
    assert 0 <= found["decision"]["confidence"] <= 1
    assert found["decision"]["answer"] == found["items"][0]["id"]
    empty = (await kb_hub.api("GET", "/api/kb/search?q=", token)).json()
    assert empty["items"] == [] and empty["decision"]["answer"] is None


async def test_product_context_boosts_its_articles(kb_hub: RunningHub) -> None:
    token = await kb_hub.login()
    found = (await kb_hub.api(
        "GET", "/api/kb/search?q=お手入れの方法&product=OMO-KETTLE-002", token)).json()
    assert "OMO-KETTLE-002" in found["items"][0]["products"]


async def test_supervisor_edits_publish_and_history(kb_hub: RunningHub) -> None:
    agent = await kb_hub.login()
    lead = await kb_hub.login("lead@example.com", "lead-password")
    body = {"title": "ギフト包装", "locale": "ja", "questions": ["ギフト包装はできますか"],
            "body": "1点110円でギフト包装を承ります。\n\n詳しくは店頭で。", "tags": ["gift"]}
    refused = await kb_hub.api("PUT", "/api/kb/articles/ja-gift", agent, json=body)
    assert refused.status_code == 403
    created = (await kb_hub.api("PUT", "/api/kb/articles/ja-gift", lead, json=body)).json()
    assert created["version"] == 1 and created["answer"] == "1点110円でギフト包装を承ります。"
    assert created["published"] is False  # a draft until published
    await kb_hub.api("POST", "/api/kb/articles/ja-gift/publish", lead)  # v2
    search = (await kb_hub.api("GET", "/api/kb/search?q=ギフト包装はできますか", agent)).json()
    assert search["items"][0]["id"] == "ja-gift"

    changed = (await kb_hub.api("PUT", "/api/kb/articles/ja-gift", lead,
                                json={**body, "body": "1点220円です。"})).json()
    assert [v["version"] for v in changed["versions"]] == [3, 2, 1]
    assert changed["published"] is True  # editing a published article keeps it published
    assert (changed["version"], changed["draft"]["version"]) == (2, 3)  # v3 waits: a draft
    hidden = await kb_hub.api("POST", "/api/kb/articles/ja-gift/unpublish", lead)
    assert hidden.json()["published"] is False
    # unpublished, the pending draft is the article's text (nothing is live to keep apart)
    folded = (await kb_hub.api("GET", "/api/kb/articles/ja-gift", lead)).json()
    assert (folded["version"], folded["body"], folded["draft"]) == (4, "1点220円です。", None)
    search = (await kb_hub.api("GET", "/api/kb/search?q=ギフト包装はできますか", agent)).json()
    assert all(item["id"] != "ja-gift" for item in search["items"])
    assert (await kb_hub.api("GET", "/api/kb/articles/nope", agent)).status_code == 404


async def test_restoring_an_old_version_adds_a_new_one_and_the_bot_answers_with_it(
        kb_hub: RunningHub) -> None:
    agent = await kb_hub.login()
    lead = await kb_hub.login("lead@example.com", "lead-password")
    body = {"title": "雨の日の配達", "locale": "ja", "questions": ["雨の日も配達しますか"],
            "body": "雨の日も通常どおりお届けします。"}
    await kb_hub.api("PUT", "/api/kb/articles/ja-rain", lead, json=body)
    await kb_hub.api("PUT", "/api/kb/articles/ja-rain", lead,
                     json={**body, "body": "台風の日は配達を見合わせます。"})
    await kb_hub.api("POST", "/api/kb/articles/ja-rain/publish", lead)  # v3
    path = "/api/kb/articles/ja-rain/restore"
    assert (await kb_hub.api("POST", path, agent, json={"version": 1})).status_code == 403
    assert (await kb_hub.api("POST", path, lead, json={"version": 9})).status_code == 404

    restored = (await kb_hub.api("POST", path, lead, json={"version": 1})).json()
    assert [v["version"] for v in restored["versions"]] == [4, 3, 2, 1]
    assert restored["versions"][2]["body"] == "台風の日は配達を見合わせます。"  # kept
    # the article is published: the restored text is a pending draft, not live yet
    assert (restored["draft"]["version"], restored["draft"]["body"]) == (4, body["body"])
    assert (restored["version"], restored["body"]) == (3, "台風の日は配達を見合わせます。")
    hits = (await kb_hub.api("GET", "/api/kb/search?q=雨の日も配達しますか", agent)).json()
    assert hits["items"][0]["answer"] == "台風の日は配達を見合わせます。"

    await kb_hub.api("POST", "/api/kb/articles/ja-rain/publish", lead)
    hits = (await kb_hub.api("GET", "/api/kb/search?q=雨の日も配達しますか", agent)).json()
    assert hits["items"][0]["id"] == "ja-rain"
    assert hits["items"][0]["answer"] == body["body"]


async def test_export_then_import_is_a_round_trip(kb_hub: RunningHub, tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path)) / "exported"
    async with kb_hub.services.sessions() as session, session.begin():
        count = await export_directory(session, folder)
    originals = {a.id: a for a in load_directory(default_articles_dir()).articles}
    exported = load_directory(folder)
    assert count == len(originals) and not exported.errors
    for article in exported.articles:
        source = originals[article.id]
        assert (article.title, article.questions, article.tags, article.locale) == (
            source.title, source.questions, source.tags, source.locale)
        assert article.updated == source.updated  # the file's date, not the import's
        assert article.body.strip() == source.body.strip()
    async with kb_hub.services.sessions() as session, session.begin():
        report = await import_directory(session, folder)
    assert report.created == report.updated == 0 and report.unchanged == count


async def test_articles_imported_elsewhere_reach_search_and_the_bot(kb_hub: RunningHub) -> None:
    from hub.knowledge import import_articles
    from kb.articles import Article

    token = await kb_hub.login()
    before = (await kb_hub.api("GET", "/api/kb/search?q=傘の貸し出しはありますか", token)).json()
    assert all(item["id"] != "ja-umbrella" for item in before["items"])
    async with kb_hub.services.sessions() as session, session.begin():  # as `omohub kb import`
        await import_articles(session, [Article(
            id="ja-umbrella", title="傘の貸し出し", locale="ja",
            questions=("傘の貸し出しはありますか",), body="全店舗で傘を無料でお貸しします。")])
    after = (await kb_hub.api("GET", "/api/kb/search?q=傘の貸し出しはありますか", token)).json()
    assert after["items"][0]["id"] == "ja-umbrella"


GIFT = {"title": "ギフト包装", "locale": "ja", "questions": ["ギフト包装はできますか"],
        "body": "1点110円でギフト包装を承ります。", "tags": ["gift"]}


async def _asked(hub: RunningHub, token: str, question: str) -> list[str]:
    found = (await hub.api("GET", "/api/kb/search", token, params={"q": question})).json()
    return [item["id"] for item in found["items"]]


async def test_a_new_article_is_a_draft_until_published(kb_hub: RunningHub) -> None:
    agent = await kb_hub.login()
    lead = await kb_hub.login("lead@example.com", "lead-password")
    new = {**GIFT, "id": "ja-gift"}
    assert (await kb_hub.api("POST", "/api/kb/articles", agent, json=new)).status_code == 403
    response = await kb_hub.api("POST", "/api/kb/articles", lead, json=new)
    assert response.status_code == 201, response.text
    draft = response.json()
    assert (draft["id"], draft["version"], draft["published"]) == ("ja-gift", 1, False)
    assert draft["live_version"] is None
    assert [(v["version"], v["live"]) for v in draft["versions"]] == [(1, False)]
    assert "ja-gift" not in await _asked(kb_hub, agent, "ギフト包装はできますか")
    listed = (await kb_hub.api("GET", "/api/kb/articles?locale=ja", lead)).json()["items"]
    assert [a["published"] for a in listed if a["id"] == "ja-gift"] == [False]

    # saving the draft again keeps it a draft
    saved = (await kb_hub.api("PUT", "/api/kb/articles/ja-gift", lead,
                              json={**GIFT, "body": "1点220円です。"})).json()
    assert (saved["version"], saved["published"]) == (2, False)
    assert "ja-gift" not in await _asked(kb_hub, agent, "ギフト包装はできますか")

    published = await kb_hub.api("POST", "/api/kb/articles/ja-gift/publish", lead)
    assert published.json()["published"] is True
    assert (await _asked(kb_hub, agent, "ギフト包装はできますか"))[0] == "ja-gift"

    # the older route creates drafts too
    put = (await kb_hub.api("PUT", "/api/kb/articles/ja-wrap", lead,
                            json={**GIFT, "title": "ラッピング"})).json()
    assert (put["version"], put["published"]) == (1, False)


async def test_creating_an_id_that_exists_is_refused(kb_hub: RunningHub) -> None:
    lead = await kb_hub.login("lead@example.com", "lead-password")
    before = (await kb_hub.api("GET", "/api/kb/articles/ja-complaint", lead)).json()
    for locale in ("ja", "en"):  # an id names one article, whatever its language
        refused = await kb_hub.api("POST", "/api/kb/articles", lead,
                                   json={**GIFT, "id": "ja-complaint", "locale": locale})
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "conflict" and "ja-complaint" in error["message"]
    after = (await kb_hub.api("GET", "/api/kb/articles/ja-complaint", lead)).json()
    assert after == before  # untouched: no new version, same text, still published
    assert after["published"] is True

    for bad in ("", "has space", "a/b", "x" * 121):
        response = await kb_hub.api("POST", "/api/kb/articles", lead, json={**GIFT, "id": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "bad_request"
    blank = await kb_hub.api("POST", "/api/kb/articles", lead,
                             json={**GIFT, "id": "ja-blank", "title": "  "})
    assert blank.status_code == 400

    # saving an article one opened still works, in place (published: as its pending draft)
    edited = await kb_hub.api("PUT", "/api/kb/articles/ja-complaint", lead,
                              json={**GIFT, "title": "苦情の受付"})
    assert edited.status_code == 200
    draft = edited.json()["draft"]
    assert (draft["version"], draft["title"]) == (before["version"] + 1, "苦情の受付")
    # ... even when its language changes: still one article with that id, not a second one
    moved = (await kb_hub.api("PUT", "/api/kb/articles/ja-complaint", lead,
                              json={**GIFT, "title": "苦情の受付", "locale": "en"})).json()
    assert moved["draft"]["locale"] == "en" and moved["draft"]["version"] == before["version"] + 2
    published = (await kb_hub.api("POST", "/api/kb/articles/ja-complaint/publish", lead)).json()
    assert (published["locale"], published["version"]) == ("en", before["version"] + 2)
    items = (await kb_hub.api("GET", "/api/kb/articles", lead)).json()["items"]
    assert [a["id"] for a in items].count("ja-complaint") == 1


async def test_history_marks_the_live_version_only_while_published(kb_hub: RunningHub) -> None:
    lead = await kb_hub.login("lead@example.com", "lead-password")
    path = "/api/kb/articles/ja-gift"
    await kb_hub.api("POST", "/api/kb/articles", lead, json={**GIFT, "id": "ja-gift"})  # v1
    await kb_hub.api("POST", f"{path}/publish", lead)  # v2, live
    live = (await kb_hub.api("GET", path, lead)).json()
    assert live["live_version"] == 2
    assert [(v["version"], v["live"]) for v in live["versions"]] == [(2, True), (1, False)]

    await kb_hub.api("POST", f"{path}/unpublish", lead)  # v3
    hidden = (await kb_hub.api("GET", path, lead)).json()
    assert hidden["published"] is False and hidden["live_version"] is None
    assert not any(v["live"] for v in hidden["versions"])
    assert [v["published"] for v in hidden["versions"]] == [False, True, False]  # as it was

    await kb_hub.api("POST", f"{path}/publish", lead)  # v4
    again = (await kb_hub.api("GET", path, lead)).json()
    assert [v["version"] for v in again["versions"] if v["live"]] == [4]
    listed = (await kb_hub.api("GET", "/api/kb/articles", lead)).json()["items"]
    assert [a["live_version"] for a in listed if a["id"] == "ja-gift"] == [4]


# ------------------------------------------------------------- drafts of published articles

NEW_PRICE = "1点220円でギフト包装を承ります。"


async def _answer(hub: RunningHub, token: str, question: str, article_id: str) -> str | None:
    found = (await hub.api("GET", "/api/kb/search", token, params={"q": question})).json()
    return next((item["answer"] for item in found["items"] if item["id"] == article_id), None)


async def _published_gift(hub: RunningHub, lead: str) -> None:
    await hub.api("POST", "/api/kb/articles", lead, json={**GIFT, "id": "ja-gift"})  # v1
    await hub.api("POST", "/api/kb/articles/ja-gift/publish", lead)  # v2, live


async def test_an_edit_of_a_published_article_is_a_draft_until_published(
        kb_hub: RunningHub) -> None:
    from hub.knowledge import published_articles

    agent = await kb_hub.login()
    lead = await kb_hub.login("lead@example.com", "lead-password")
    path = "/api/kb/articles/ja-gift"
    await _published_gift(kb_hub, lead)
    question = GIFT["questions"][0]
    assert await _answer(kb_hub, agent, question, "ja-gift") == GIFT["body"]

    saved = await kb_hub.api("PUT", path, lead, json={**GIFT, "body": NEW_PRICE,
                                                      "tags": ["gift", "price"]})
    assert saved.status_code == 200, saved.text
    # the bot, search and the agents' suggestions keep answering from the live text
    assert await _answer(kb_hub, agent, question, "ja-gift") == GIFT["body"]
    draft = saved.json()
    # the live text is the article's; the edit waits as version 3, whole
    assert (draft["published"], draft["version"], draft["live_version"]) == (True, 2, 2)
    assert (draft["body"], draft["has_draft"], draft["draft_version"]) == (GIFT["body"], True, 3)
    assert draft["draft"]["version"] == 3 and draft["draft"]["body"] == NEW_PRICE
    assert draft["draft"]["tags"] == ["gift", "price"] and draft["draft"]["answer"] == NEW_PRICE
    assert [(v["version"], v["live"], v["pending"], v["draft"]) for v in draft["versions"]] == [
        (3, False, True, True), (2, True, False, False), (1, False, False, False)]
    async with kb_hub.services.sessions() as session:
        bot = {a.id: a for a in await published_articles(session)}
    assert bot["ja-gift"].body == GIFT["body"] and bot["ja-gift"].tags == ("gift",)
    listed = (await kb_hub.api("GET", "/api/kb/articles?locale=ja", lead)).json()["items"]
    [item] = [a for a in listed if a["id"] == "ja-gift"]
    assert (item["has_draft"], item["draft_version"], item["answer"]) == (True, 3, GIFT["body"])

    # saving the draft again makes a newer draft; saving the same text makes none
    again = (await kb_hub.api("PUT", path, lead, json={**GIFT, "body": NEW_PRICE + "\n\n無料。",
                                                       "tags": ["gift", "price"]})).json()
    assert (again["version"], again["draft"]["version"]) == (2, 4)
    same = (await kb_hub.api("PUT", path, lead, json={**GIFT, "body": NEW_PRICE + "\n\n無料。",
                                                      "tags": ["gift", "price"]})).json()
    assert same["draft"]["version"] == 4 and len(same["versions"]) == 4
    assert await _answer(kb_hub, agent, question, "ja-gift") == GIFT["body"]

    # publishing makes the pending version the live one (no new version)
    assert (await kb_hub.api("POST", f"{path}/publish", agent)).status_code == 403
    published = (await kb_hub.api("POST", f"{path}/publish", lead)).json()
    assert (published["version"], published["live_version"], published["has_draft"]) == (
        4, 4, False)
    assert await _answer(kb_hub, agent, question, "ja-gift") == NEW_PRICE
    live = (await kb_hub.api("GET", path, lead)).json()
    assert live["draft"] is None and live["tags"] == ["gift", "price"]
    assert [(v["version"], v["live"], v["pending"]) for v in live["versions"]] == [
        (4, True, False), (3, False, False), (2, False, False), (1, False, False)]
    # publishing again changes nothing
    assert (await kb_hub.api("POST", f"{path}/publish", lead)).json()["version"] == 4


async def test_saves_at_the_same_time_each_get_their_own_version(kb_hub: RunningHub) -> None:
    lead = await kb_hub.login("lead@example.com", "lead-password")
    path = "/api/kb/articles/ja-gift"
    await kb_hub.api("POST", "/api/kb/articles", lead, json={**GIFT, "id": "ja-gift"})  # v1
    texts = [f"1点{110 * n}円でギフト包装を承ります。" for n in range(2, 8)]
    answers = await asyncio.gather(*(kb_hub.api("PUT", path, lead, json={**GIFT, "body": text})
                                     for text in texts))
    assert [answer.status_code for answer in answers] == [200] * len(texts)
    article = (await kb_hub.api("GET", path, lead)).json()
    versions = article["versions"]
    assert [v["version"] for v in versions] == list(range(len(texts) + 1, 0, -1))
    assert sorted(v["body"] for v in versions[:-1]) == sorted(texts)  # none overwritten
    assert article["version"] == versions[0]["version"]
    assert article["body"] == versions[0]["body"]  # the row holds the newest text


async def test_a_save_over_an_edit_made_meanwhile_is_refused(kb_hub: RunningHub) -> None:
    first = await kb_hub.login("lead@example.com", "lead-password")
    second = await kb_hub.login("lead@example.com", "lead-password")
    path = "/api/kb/articles/ja-gift"
    await _published_gift(kb_hub, first)
    opened = (await kb_hub.api("GET", path, first)).json()
    base = opened["version"]  # 2, live, no draft
    assert (await kb_hub.api("PUT", path, second, json={
        **GIFT, "body": NEW_PRICE, "base_version": base})).status_code == 200  # draft v3

    refused = await kb_hub.api("PUT", path, first, json={
        **GIFT, "body": "1点330円です。", "base_version": base})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert (error["code"], error["newest_version"]) == ("edit_conflict", 3)
    after = (await kb_hub.api("GET", path, first)).json()
    assert len(after["versions"]) == 3 and after["draft"]["body"] == NEW_PRICE  # kept

    # reloaded, the edit starts from the pending draft and is saved over it
    saved = await kb_hub.api("PUT", path, first, json={
        **GIFT, "body": "1点330円です。", "base_version": after["draft_version"]})
    assert saved.status_code == 200 and saved.json()["draft"]["version"] == 4
    # a save that names no base (an import, a script) is not checked
    assert (await kb_hub.api("PUT", path, first, json={
        **GIFT, "body": "1点440円です。"})).json()["draft"]["version"] == 5


async def test_discarding_a_draft_keeps_the_live_text_and_the_history(kb_hub: RunningHub) -> None:
    agent = await kb_hub.login()
    lead = await kb_hub.login("lead@example.com", "lead-password")
    path = "/api/kb/articles/ja-gift"
    await _published_gift(kb_hub, lead)
    await kb_hub.api("PUT", path, lead, json={**GIFT, "body": NEW_PRICE})  # v3, pending

    assert (await kb_hub.api("POST", f"{path}/discard", agent)).status_code == 403
    assert (await kb_hub.api("POST", "/api/kb/articles/nope/discard", lead)).status_code == 404
    discarded = await kb_hub.api("POST", f"{path}/discard", lead)
    assert discarded.status_code == 200, discarded.text
    assert (discarded.json()["has_draft"], discarded.json()["version"]) == (False, 4)
    detail = (await kb_hub.api("GET", path, lead)).json()
    assert (detail["body"], detail["draft"], detail["live_version"]) == (GIFT["body"], None, 4)
    # append-only: the discarded draft is still there; a newer version restates the live text
    assert [(v["version"], v["body"], v["live"], v["pending"]) for v in detail["versions"]] == [
        (4, GIFT["body"], True, False), (3, NEW_PRICE, False, False),
        (2, GIFT["body"], False, False), (1, GIFT["body"], False, False)]
    assert await _answer(kb_hub, agent, GIFT["questions"][0], "ja-gift") == GIFT["body"]
    # nothing left to discard: nothing happens
    assert (await kb_hub.api("POST", f"{path}/discard", lead)).json()["version"] == 4
    # the discarded text can still come back: restoring it makes a draft again
    restored = (await kb_hub.api("POST", f"{path}/restore", lead, json={"version": 3})).json()
    assert (restored["draft"]["version"], restored["draft"]["body"]) == (5, NEW_PRICE)
    assert await _answer(kb_hub, agent, GIFT["questions"][0], "ja-gift") == GIFT["body"]


async def test_a_draft_published_elsewhere_reaches_search(kb_hub: RunningHub) -> None:
    """The bot's index is rebuilt when a draft goes live, even from another process."""
    from hub.knowledge import find_article, publish_article

    agent = await kb_hub.login()
    lead = await kb_hub.login("lead@example.com", "lead-password")
    await _published_gift(kb_hub, lead)
    await kb_hub.api("PUT", "/api/kb/articles/ja-gift", lead, json={**GIFT, "body": NEW_PRICE})
    assert await _answer(kb_hub, agent, GIFT["questions"][0], "ja-gift") == GIFT["body"]
    async with kb_hub.services.sessions() as session, session.begin():  # not through the API
        row = await find_article(session, "ja-gift")
        assert row is not None and await publish_article(session, row, None)
    assert await _answer(kb_hub, agent, GIFT["questions"][0], "ja-gift") == NEW_PRICE


async def test_import_publishes_directly_and_replaces_a_stale_draft(kb_hub: RunningHub) -> None:
    from hub.knowledge import import_articles

    agent = await kb_hub.login()
    lead = await kb_hub.login("lead@example.com", "lead-password")
    await _published_gift(kb_hub, lead)
    await kb_hub.api("PUT", "/api/kb/articles/ja-gift", lead, json={**GIFT, "body": NEW_PRICE})
    source = Article(id="ja-gift", title=GIFT["title"], locale="ja", body=GIFT["body"],
                     questions=tuple(GIFT["questions"]), tags=tuple(GIFT["tags"]))
    async with kb_hub.services.sessions() as session, session.begin():  # the live text again
        unchanged = await import_articles(session, [source])
    assert unchanged.unchanged == 1 and not unchanged.discarded_drafts
    assert (await kb_hub.api("GET", "/api/kb/articles/ja-gift", lead)).json()["has_draft"]

    imported_body = "ギフト包装は無料です。"
    async with kb_hub.services.sessions() as session, session.begin():  # as `omohub kb import`
        report = await import_articles(session, [Article(
            id="ja-gift", title=GIFT["title"], locale="ja", body=imported_body,
            questions=tuple(GIFT["questions"]), tags=tuple(GIFT["tags"]))])
    assert report.updated == 1 and report.discarded_drafts == ["ja-gift"]
    detail = (await kb_hub.api("GET", "/api/kb/articles/ja-gift", lead)).json()
    assert (detail["body"], detail["version"], detail["draft"]) == (imported_body, 4, None)
    assert [v["version"] for v in detail["versions"]] == [4, 3, 2, 1]
    assert await _answer(kb_hub, agent, GIFT["questions"][0], "ja-gift") == imported_body


async def test_import_keeps_the_updated_date_the_file_gives(kb_hub: RunningHub) -> None:
    from hub.knowledge import import_articles

    lead = await kb_hub.login("lead@example.com", "lead-password")
    dated = Article(id="ja-gift", title=GIFT["title"], body=GIFT["body"], updated="2026-01-15")
    undated = Article(id="ja-rain", title="雨の日の配達", body="雨の日もお届けします。")
    async with kb_hub.services.sessions() as session, session.begin():
        await import_articles(session, [dated, undated])
    before = datetime.now(UTC)
    async with kb_hub.services.sessions() as session, session.begin():  # a changed text
        await import_articles(session, [Article(id="ja-gift", title=GIFT["title"], body=NEW_PRICE,
                                                updated="2026-02-01T09:30:00+09:00")])
    gift = (await kb_hub.api("GET", "/api/kb/articles/ja-gift", lead)).json()
    rain = (await kb_hub.api("GET", "/api/kb/articles/ja-rain", lead)).json()
    assert gift["updated_at"] == "2026-02-01T00:30:00.000000Z"
    assert gift["versions"][0]["created_at"] >= iso(before)  # the history keeps real time
    assert rain["updated_at"][:10] == before.date().isoformat()  # no date given: the import's


BAD_LOCALES = ["xx", "42", "", "pt_BR", "japanese"]


async def test_the_knowledge_base_refuses_a_locale_that_is_no_language_tag(
        kb_hub: RunningHub) -> None:
    from hub.knowledge import create_article, find_article, update_article
    from kb.locales import InvalidLocale

    for bad in BAD_LOCALES:
        article = Article(id="ja-gift", title=GIFT["title"], body=GIFT["body"], locale=bad)
        with pytest.raises(InvalidLocale):
            async with kb_hub.services.sessions() as session, session.begin():
                await create_article(session, article, None)
        with pytest.raises(InvalidLocale):
            async with kb_hub.services.sessions() as session, session.begin():
                row = await find_article(session, "ja-complaint")
                assert row is not None
                await update_article(session, row, article, None)
    async with kb_hub.services.sessions() as session, session.begin():
        row = await create_article(session, Article(
            id="pt-gift", title="Embrulho", body="Embrulhamos.", locale="pt-br"), None)
        assert row.locale == "pt-BR"  # stored as usually spelt, so search finds it


async def test_the_api_refuses_a_locale_that_is_no_language_tag(kb_hub: RunningHub) -> None:
    lead = await kb_hub.login("lead@example.com", "lead-password")
    before = (await kb_hub.api("GET", "/api/kb/articles/ja-complaint", lead)).json()
    for bad in BAD_LOCALES:
        created = await kb_hub.api("POST", "/api/kb/articles", lead,
                                   json={**GIFT, "id": "ja-gift", "locale": bad})
        saved = await kb_hub.api("PUT", "/api/kb/articles/ja-complaint", lead,
                                 json={**GIFT, "locale": bad})
        for response in (created, saved):
            assert response.status_code == 400, (bad, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid_locale" and "'locale'" in error["message"]
    assert (await kb_hub.api("GET", "/api/kb/articles/ja-gift", lead)).status_code == 404
    assert (await kb_hub.api("GET", "/api/kb/articles/ja-complaint", lead)).json() == before
    number = await kb_hub.api("POST", "/api/kb/articles", lead,
                              json={**GIFT, "id": "ja-gift", "locale": 42})
    assert number.status_code == 400 and set(number.json()["error"]) >= {"code", "message"}
    for tag, stored in (("zh-TW", "zh-TW"), ("pt-br", "pt-BR"), ("en", "en")):
        slug = f"gift-{tag.lower()}"
        created = await kb_hub.api("POST", "/api/kb/articles", lead,
                                   json={**GIFT, "id": slug, "locale": tag})
        assert created.status_code == 201 and created.json()["locale"] == stored


# ------------------------------------------------------------------------- the migration

@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """A database with no tables yet, to migrate step by step."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/old.db"
        return
    from tests.conftest import PG_ADMIN_URL, _pg_admin, _pg_reachable

    if not _pg_reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"omohub_kbmig_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


OLD_ARTICLES = sa.table(  # kb_articles as revision 0001 made it
    "kb_articles", sa.column("id", sa.Integer), sa.column("slug", sa.String),
    sa.column("locale", sa.String), sa.column("title", sa.String), sa.column("body", sa.Text),
    sa.column("questions", sa.JSON), sa.column("products", sa.JSON), sa.column("tags", sa.JSON),
    sa.column("published", sa.Boolean), sa.column("version", sa.Integer),
    sa.column("updated_at", UTCDateTime))
OLD_VERSIONS = sa.table(
    "kb_article_versions", sa.column("article_id", sa.Integer), sa.column("version", sa.Integer),
    sa.column("title", sa.String), sa.column("body", sa.Text), sa.column("questions", sa.JSON),
    sa.column("published", sa.Boolean), sa.column("created_at", UTCDateTime))


async def _fill_old_schema(url: str) -> None:
    engine = db.create_engine(url)
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        await connection.execute(OLD_ARTICLES.insert(), [
            {"id": 1, "slug": "ja-gift", "locale": "ja", "title": "ギフト包装",
             "body": NEW_PRICE, "questions": ["ギフト包装はできますか"],
             "products": ["OMO-BAG-001"], "tags": ["gift"], "published": True, "version": 2,
             "updated_at": now},
            {"id": 2, "slug": "en-rain", "locale": "en", "title": "Rain", "body": "We deliver.",
             "questions": [], "products": [], "tags": [], "published": False, "version": 1,
             "updated_at": now}])
        await connection.execute(OLD_VERSIONS.insert(), [
            {"article_id": 1, "version": 1, "title": "ギフト包装", "body": GIFT["body"],
             "questions": ["ギフト包装はできますか"], "published": True, "created_at": now},
            {"article_id": 1, "version": 2, "title": "ギフト包装", "body": NEW_PRICE,
             "questions": ["ギフト包装はできますか"], "published": True, "created_at": now},
            {"article_id": 2, "version": 1, "title": "Rain", "body": "We deliver.",
             "questions": [], "published": False, "created_at": now}])
        if url.startswith("postgresql"):  # ids given above: move the sequence past them
            await connection.execute(sa.text(
                "SELECT setval('kb_articles_id_seq', (SELECT max(id) FROM kb_articles))"))
    await engine.dispose()


async def _after_upgrade(url: str) -> None:
    from hub.knowledge import find_article, published_articles, update_article
    from hub.models import ArticleVersion

    engine = db.create_engine(url)
    async with db.session_factory(engine)() as session, session.begin():
        assert [(a.id, a.body) for a in await published_articles(session)] == [
            ("ja-gift", NEW_PRICE)]
        versions = (await session.execute(sa.select(ArticleVersion).order_by(
            ArticleVersion.article_id, ArticleVersion.version))).scalars().all()
        assert [(v.version, v.locale, v.products, v.tags, v.draft) for v in versions] == [
            (1, "ja", ["OMO-BAG-001"], ["gift"], False),
            (2, "ja", ["OMO-BAG-001"], ["gift"], False), (1, "en", [], [], False)]
        row = await find_article(session, "ja-gift")
        assert row is not None and row.draft_version is None
        # an old article takes a draft like any other
        await update_article(session, row, Article(
            id="ja-gift", title="ギフト包装", locale="ja", body="ギフト包装は無料です。",
            questions=("ギフト包装はできますか",), products=("OMO-BAG-001",), tags=("gift",)),
            None)
        assert (row.version, row.draft_version) == (2, 3)
    async with db.session_factory(engine)() as session:
        assert [a.body for a in await published_articles(session)] == [NEW_PRICE]
    await engine.dispose()


async def _after_downgrade(url: str) -> tuple[object, ...]:
    engine = db.create_engine(url)
    async with engine.connect() as connection:
        article = (await connection.execute(sa.text(
            "SELECT version, body FROM kb_articles WHERE slug = 'ja-gift'"))).one()
        numbers = (await connection.execute(sa.text(
            "SELECT version FROM kb_article_versions WHERE article_id = 1 ORDER BY version")
        )).scalars().all()
    await engine.dispose()
    return tuple(article), list(numbers)


def test_the_drafts_migration_upgrades_a_database_with_articles(
        empty_database_url: str) -> None:
    from alembic import command

    config = db.alembic_config(empty_database_url)
    command.upgrade(config, "0001")
    asyncio.run(_fill_old_schema(empty_database_url))
    command.upgrade(config, "head")
    asyncio.run(_after_upgrade(empty_database_url))

    # back down: the pending draft is discarded as the hub would, its text kept in history
    command.downgrade(config, "0001")
    article, numbers = asyncio.run(_after_downgrade(empty_database_url))
    assert article == (4, NEW_PRICE) and numbers == [1, 2, 3, 4]
    command.upgrade(config, "head")
