from __future__ import annotations

import dataclasses

import pytest

import kb.reading
from kb.articles import Article
from kb.index import KnowledgeBase
from kb.reading import reading
from tests.kb.conftest import HashingEmbedder

needs_janome = pytest.mark.skipif(not kb.reading.available(), reason="janome not installed")

ARTICLES = [
    Article(
        "tax-free", "免税販売", "免税は5,000円から。", "ja", ("免税で買えますか", "免税の手続き")
    ),
    Article("points-expiry", "ポイント期限", "1年です。", "ja", ("ポイントの期限は", "失効")),
    Article("en-returns", "Returns", "Within 30 days.", "en", ("how do I return an item",)),
]


@needs_janome
def test_reading_folds_kanji_and_katakana_to_hiragana() -> None:
    assert reading("免税") == "めんぜい"
    assert reading("ポイントの期限") == "ぽいんとのきげん"
    assert reading("how do I return an item") == ""  # no Japanese: no reading


@needs_janome
@pytest.mark.parametrize(
    ("query", "expected"), [("めんぜい", "tax-free"), ("きげん", "points-expiry")]
)
def test_kana_query_matches_the_kanji_article_by_reading(query: str, expected: str) -> None:
    kb = KnowledgeBase.from_articles(ARTICLES, embedder=HashingEmbedder())
    hits = {h.article_id: h.features for h in kb.search(query)}
    assert hits[expected]["lex_q"] == 0.0  # no surface n-gram in common
    assert hits[expected]["reading"] > 0.3
    assert max(hits, key=lambda a: hits[a]["reading"]) == expected


@needs_janome
def test_kana_query_finds_the_kanji_article() -> None:
    kb = KnowledgeBase.from_articles(ARTICLES, embedder=HashingEmbedder())
    assert kb.search("めんぜい")[0].article_id == "tax-free"


def test_english_scores_do_not_depend_on_the_reading_signal() -> None:
    kb = KnowledgeBase.from_articles(ARTICLES, embedder=HashingEmbedder())
    with_reading = kb.search("how do I return an item")
    kb.weights = dataclasses.replace(kb.weights, reading=0.0)
    assert kb.search("how do I return an item") == with_reading
    assert with_reading[0].features["reading"] == 0.0


def test_without_janome_the_signal_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kb.reading, "_tokenizer", None)
    monkeypatch.setattr(kb.reading, "_missing", True)
    reading.cache_clear()
    try:
        assert not kb.reading.available() and reading("免税") == ""
        index = KnowledgeBase.from_articles(ARTICLES, embedder=HashingEmbedder())
        hits = index.search("免税で買えますか")
        assert hits[0].article_id == "tax-free"
        assert all(h.features["reading"] == 0.0 for h in hits)
    finally:
        reading.cache_clear()
