"""The knowledge base through the API: retrieval with scores, editing with versions."""

from __future__ import annotations

import pytest

from hub.knowledge import export_directory, import_directory
from kb.articles import default_articles_dir, load_directory
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
    assert changed["version"] == 3 and [v["version"] for v in changed["versions"]] == [3, 2, 1]
    assert changed["published"] is True  # editing a published article keeps it published
    hidden = await kb_hub.api("POST", "/api/kb/articles/ja-gift/unpublish", lead)
    assert hidden.json()["published"] is False
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
    assert restored["version"] == 4 and restored["body"] == body["body"]
    assert [v["version"] for v in restored["versions"]] == [4, 3, 2, 1]
    assert restored["versions"][2]["body"] == "台風の日は配達を見合わせます。"  # kept
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

    # saving an article one opened still works, in place
    edited = await kb_hub.api("PUT", "/api/kb/articles/ja-complaint", lead,
                              json={**GIFT, "title": "苦情の受付"})
    assert edited.status_code == 200
    assert (edited.json()["version"], edited.json()["title"]) == (before["version"] + 1,
                                                                  "苦情の受付")
    # ... even when its language changes: still one article with that id, not a second one
    moved = (await kb_hub.api("PUT", "/api/kb/articles/ja-complaint", lead,
                              json={**GIFT, "title": "苦情の受付", "locale": "en"})).json()
    assert moved["locale"] == "en" and moved["version"] == before["version"] + 2
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
