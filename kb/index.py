"""Retrieval: index first (TF-IDF inverted index + one matrix product), re-rank a short list.

Each article is a *label*. Its example questions (and title) are short
documents; its title + answer is one long document. For a query we compute,
per article:

- ``q_max`` / ``q_top``: best / mean of best three cosine similarities between
  the query embedding and the article's example-question embeddings,
- ``centroid``: cosine similarity with the mean of those embeddings,
- ``answer``: cosine similarity with the embedded title + answer,
- ``lex_q`` / ``lex_answer``: TF-IDF cosine over words and CJK n-grams,
- ``fuzz``: rapidfuzz ratio against the closest example question (typos),

combine them linearly (``Weights``), add a small product-context boost, and
turn the top score and its margin over the runner-up into a confidence with a
logistic curve fitted on validation data. One threshold on that confidence
decides answer vs hand-off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz, process

from kb.articles import Article, ArticleError, default_articles_dir, load_directory
from kb.embedding import Embedder, load_default_embedder
from kb.lexical import LexicalIndex
from kb.normalize import clean, fuzz_key, normalize

SHORTLIST = 12
PRODUCT_BOOST = 0.05
DEFAULT_THRESHOLD = 0.54
_USE_DEFAULT = object()


@dataclass(frozen=True)
class Weights:
    q_max: float = 0.0
    q_top: float = 1.0
    centroid: float = 1.0
    answer: float = 0.5
    lex_q: float = 0.0
    lex_answer: float = 0.2
    fuzz: float = 0.0


LEXICAL_WEIGHTS = Weights(
    q_max=0, q_top=0, centroid=0, answer=0, lex_q=1.0, lex_answer=0.3, fuzz=0.3
)
FEATURES = ("q_max", "q_top", "centroid", "answer", "lex_q", "lex_answer", "fuzz")


@dataclass(frozen=True)
class Hit:
    article_id: str
    title: str
    short_answer: str
    score: float
    confidence: float
    locale: str = ""
    tags: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    features: dict[str, float] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Decision:
    answer: Hit | None
    confidence: float
    reason: str  # "confident" | "low_confidence" | "empty" | "no_articles"
    hits: tuple[Hit, ...] = ()


@dataclass
class Calibration:
    """confidence = sigmoid(top_weight * top + margin_weight * margin + bias)."""

    top_weight: float = 8.0
    margin_weight: float = 8.0
    bias: float = -5.0

    def confidence(self, top: float, margin: float) -> float:
        z = self.top_weight * top + self.margin_weight * margin + self.bias
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def _answer_text(article: Article) -> str:
    return f"{article.title}\n{article.body}" if article.body else ""


# Defaults until ``kb.tuning.tune`` is run on a validation set: the curves fitted on the
# ja-retail-faq validation split (a Japanese retail FAQ with answers, like the sample KB).
DENSE_CALIBRATION = Calibration(top_weight=11.82, margin_weight=18.74, bias=-26.85)
LEXICAL_CALIBRATION = Calibration(top_weight=1.33, margin_weight=5.40, bias=-1.41)


class KnowledgeBase:
    """Articles indexed for search; ``decide`` answers or hands off with one threshold."""

    def __init__(self, articles: Sequence[Article], embedder: Embedder | None) -> None:
        self.articles = list(articles)
        self.embedder = embedder
        self.weights = Weights() if embedder else LEXICAL_WEIGHTS
        self.calibration = DENSE_CALIBRATION if embedder else LEXICAL_CALIBRATION
        self.threshold = DEFAULT_THRESHOLD
        self._build_documents()
        self._question_index = LexicalIndex(self._doc_texts)
        self._answer_index = LexicalIndex([_answer_text(a) for a in self.articles])
        self._embed_documents()

    @classmethod
    def from_articles(
        cls, articles: Sequence[Article], embedder: Embedder | object | None = _USE_DEFAULT
    ) -> KnowledgeBase:
        """Build the index; ``embedder=None`` forces lexical-only retrieval."""
        chosen = load_default_embedder() if embedder is _USE_DEFAULT else embedder
        return cls(articles, chosen)  # type: ignore[arg-type]

    @classmethod
    def from_directory(
        cls, directory: str | Path | None = None, embedder: Embedder | object | None = _USE_DEFAULT
    ) -> tuple[KnowledgeBase, list[ArticleError]]:
        """Load every article under ``directory`` (default: the shipped sample KB) and index
        them; malformed files are returned as errors (path + line) and skipped."""
        loaded = load_directory(directory or default_articles_dir())
        return cls.from_articles(loaded.articles, embedder=embedder), loaded.errors

    # -- building -----------------------------------------------------------------------
    def _build_documents(self) -> None:
        self._doc_texts: list[str] = []
        self._label_start: list[int] = []
        for article in self.articles:
            self._label_start.append(len(self._doc_texts))
            texts = [t for t in (article.title, *article.questions) if t] or [article.id]
            for text in dict.fromkeys(texts):
                self._doc_texts.append(text)
        self._fuzz_keys = [fuzz_key(t) for t in self._doc_texts]
        self._locales = np.array([a.locale for a in self.articles])

    def _embed_documents(self) -> None:
        if self.embedder is None or not self.articles:
            self._doc_vectors = self._answer_vectors = self._centroids = None
            return
        self._doc_vectors = self.embedder.queries(self._doc_texts)
        sums = np.add.reduceat(self._doc_vectors, self._label_start, axis=0)
        self._centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)
        self._answer_vectors = self.embedder.passages([_answer_text(a) for a in self.articles])
        self._answer_vectors[[not a.body for a in self.articles]] = 0.0

    # -- scoring ------------------------------------------------------------------------
    def _dense_features(self, text: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-article (q_max, centroid, answer) rows and the per-document similarities."""
        n = len(self.articles)
        if self.embedder is None or self._doc_vectors is None:
            return np.zeros((3, n)), None
        vector = self.embedder.queries([text])[0]
        sims = self._doc_vectors @ vector
        q_max = np.maximum.reduceat(sims, self._label_start)
        return np.vstack([q_max, self._centroids @ vector, self._answer_vectors @ vector]), sims

    def _eligible(self, locale: str | None) -> np.ndarray:
        """Articles a search may return: those in ``locale`` when it has any, else all."""
        mask = np.ones(len(self.articles), dtype=bool)
        if locale and (self._locales == locale).any():
            mask = self._locales == locale
        return mask

    def _product_articles(self, product: str | None) -> list[int]:
        if not product:
            return []
        return [j for j, a in enumerate(self.articles) if product in a.products]

    def features(
        self,
        query: str,
        locale: str | None = None,
        product: str | None = None,
        shortlist: int = SHORTLIST,
    ) -> tuple[list[int], np.ndarray]:
        """(shortlisted article indices, feature matrix rows aligned with FEATURES)."""
        text = clean(query)
        lex_q = np.maximum.reduceat(self._question_index.scores(text), self._label_start)
        lex_answer = self._answer_index.scores(text)
        (q_max, centroid, answer), sims = self._dense_features(text)
        coarse = q_max + centroid + 0.5 * answer + 0.5 * lex_q + 0.2 * lex_answer
        eligible = self._eligible(locale)
        coarse[~eligible] = -np.inf
        order = [int(i) for i in np.argsort(-coarse, kind="stable")[:shortlist] if eligible[i]]
        extra = [j for j in self._product_articles(product) if eligible[j] and j not in order]
        labels = order + extra
        key = fuzz_key(text) if self.weights.fuzz else ""
        rows = [
            (
                q_max[j],
                self._top_mean(sims, j),
                centroid[j],
                answer[j],
                lex_q[j],
                lex_answer[j],
                self._fuzz(key, j),
            )
            for j in labels
        ]
        return labels, np.array(rows, dtype=np.float64).reshape(len(labels), len(FEATURES))

    def _top_mean(self, sims: np.ndarray | None, label: int, k: int = 3) -> float:
        if sims is None:
            return 0.0
        start = self._label_start[label]
        end = self._label_start[label + 1] if label + 1 < len(self._label_start) else len(sims)
        best = np.sort(sims[start:end])[-k:]
        return float(best.mean()) if len(best) else 0.0

    def _fuzz(self, key: str, label: int) -> float:
        if not key:
            return 0.0
        start = self._label_start[label]
        end = self._label_start[label + 1] if label + 1 < len(self._label_start) else None
        match = process.extractOne(key, self._fuzz_keys[start:end], scorer=fuzz.ratio)
        return match[1] / 100.0 if match else 0.0

    def _weight_vector(self, weights: Weights | None = None) -> np.ndarray:
        chosen = weights or self.weights
        return np.array([getattr(chosen, name) for name in FEATURES])

    # -- public API ---------------------------------------------------------------------
    def search(
        self, query: str, locale: str | None = None, product: str | None = None, limit: int = 5
    ) -> list[Hit]:
        """The best articles for ``query``, best first, with score and confidence."""
        if not self.articles or not normalize(query):
            return []
        labels, rows = self.features(query, locale=locale, product=product)
        scores = rows @ self._weight_vector()
        ranked = []
        for label, score, row in zip(labels, scores, rows, strict=True):
            boost = PRODUCT_BOOST if product and product in self.articles[label].products else 0.0
            ranked.append((label, float(score) + boost, row))
        ranked.sort(key=lambda item: -item[1])
        return self._hits(ranked, limit)

    def _hits(self, ranked: list[tuple[int, float, np.ndarray]], limit: int) -> list[Hit]:
        hits = []
        for position, (label, score, row) in enumerate(ranked[:limit]):
            runner_up = ranked[position + 1][1] if position + 1 < len(ranked) else 0.0
            article = self.articles[label]
            hits.append(
                Hit(
                    article_id=article.id,
                    title=article.title or article.id,
                    short_answer=article.short_answer,
                    score=round(score, 6),
                    confidence=round(self.calibration.confidence(score, score - runner_up), 6),
                    locale=article.locale,
                    tags=article.tags,
                    products=article.products,
                    features=dict(zip(FEATURES, (round(float(v), 4) for v in row), strict=True)),
                )
            )
        return hits

    def decide(self, query: str, locale: str | None = None, product: str | None = None) -> Decision:
        """Answer with the best article when its confidence reaches ``threshold``."""
        if not self.articles:
            return Decision(None, 0.0, "no_articles")
        if not any(ch.isalnum() for ch in normalize(query)):
            return Decision(None, 0.0, "empty")
        hits = tuple(self.search(query, locale=locale, product=product, limit=3))
        if not hits:
            return Decision(None, 0.0, "empty")
        best = hits[0]
        if best.confidence >= self.threshold:
            return Decision(best, best.confidence, "confident", hits)
        return Decision(None, best.confidence, "low_confidence", hits)
