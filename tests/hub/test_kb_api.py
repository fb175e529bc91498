"""The knowledge base through the API: retrieval with scores, editing with versions."""

from __future__ import annotations

import pytest

from hub.knowledge import export_directory, import_directory
from kb.articles import default_articles_dir, load_directory
from tests.conftest import RunningHub


@pytest.fixture(autouse=True)
def lexical_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMOHUB_KB_EMBEDDINGS", "0")


@pytest.fixture
async def kb_hub(hub: RunningHub) -> RunningHub:
    async with hub.services.sessions() as session, session.begin():
        await import_directory(session, default_articles_dir())
    return hub


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
    search = (await kb_hub.api("GET", "/api/kb/search?q=ギフト包装はできますか", agent)).json()
    assert search["items"][0]["id"] == "ja-gift"

    changed = (await kb_hub.api("PUT", "/api/kb/articles/ja-gift", lead,
                                json={**body, "body": "1点220円です。"})).json()
    assert changed["version"] == 2 and [v["version"] for v in changed["versions"]] == [2, 1]
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
    path = "/api/kb/articles/ja-rain/restore"
    assert (await kb_hub.api("POST", path, agent, json={"version": 1})).status_code == 403
    assert (await kb_hub.api("POST", path, lead, json={"version": 9})).status_code == 404

    restored = (await kb_hub.api("POST", path, lead, json={"version": 1})).json()
    assert restored["version"] == 3 and restored["body"] == body["body"]
    assert [v["version"] for v in restored["versions"]] == [3, 2, 1]
    assert restored["versions"][1]["body"] == "台風の日は配達を見合わせます。"  # kept
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
