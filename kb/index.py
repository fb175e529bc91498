"""Retrieval: index first (TF-IDF inverted index + one matrix product), re-rank a short list.

Each article is a *label*. Its example questions (and title) are short
documents; its title + answer is one long document. When the index is built, a
softmax classifier (``kb.classifier``) is trained on the embeddings of the
example questions, the title and the answer's sentences. For a query we compute,
per article:

- ``classifier``: the classifier's logit (in cosine units),
- ``centroid``: cosine similarity with the mean of the example-question embeddings,
- ``answer``: cosine similarity with the embedded title + answer,
- ``lex_q`` / ``lex_answer``: TF-IDF cosine over words and CJK n-grams,
- ``reading``: TF-IDF cosine of the kana readings (``kb.reading``) of the query and the
  example questions, so めんぜい finds 免税; 0 for text without Japanese or without janome,

short-list the best articles on those (one product of the query vector with a
small per-article matrix), then add for the short list only
- ``q_max`` / ``q_top``: best / mean of best three cosine similarities with the
  article's example questions,
- ``fuzz``: rapidfuzz ratio against the closest example question (typos),

combine them linearly (``Weights``), add a small product-context boost, and
turn the top score and its margin over the runner-up into a confidence with a
logistic curve fitted on validation data. One threshold on that confidence
decides answer vs hand-off. Without the embedding model the same code runs on
the lexical signals alone (``LEXICAL_WEIGHTS``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz, process

from kb.articles import Article, ArticleError, default_articles_dir, load_directory
from kb.classifier import SoftmaxClassifier
from kb.embedding import Embedder, load_default_embedder
from kb.lexical import LexicalIndex
from kb.normalize import clean, fuzz_key, normalize
from kb.reading import reading

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
    classifier: float = 1.0
    reading: float = 0.3


LEXICAL_WEIGHTS = Weights(
    q_max=0,
    q_top=0,
    centroid=0,
    answer=0,
    lex_q=1.0,
    lex_answer=0.3,
    fuzz=0.3,
    classifier=0,
    reading=0.0,
)
FEATURES = (
    "q_max",
    "q_top",
    "centroid",
    "answer",
    "lex_q",
    "lex_answer",
    "fuzz",
    "classifier",
    "reading",
)
QUERY_CACHE_SIZE = 256


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


_SENTENCE_END = re.compile(r"(?<=[。！？!?])|(?<=\.)\s+|\n+")
MAX_ANSWER_SENTENCES = 12


def answer_sentences(body: str) -> list[str]:
    """The sentences of an answer (Markdown markup dropped), for the classifier's training."""
    text = re.sub(r"[#>*_`|\[\]()-]+", " ", body)
    parts = (clean(part) for part in _SENTENCE_END.split(text) if part)
    return [part for part in parts if len(part) >= 6][:MAX_ANSWER_SENTENCES]


def _answer_text(article: Article) -> str:
    return f"{article.title}\n{article.body}" if article.body else ""


def _example_texts(article: Article) -> list[str]:
    """The article's short documents: its title and example questions (at least its id)."""
    texts = [t for t in (article.title, *article.questions) if t] or [article.id]
    return list(dict.fromkeys(texts))


def _texts_to_embed(articles: Sequence[Article]) -> tuple[list[str], list[str]]:
    """(as queries, as passages): what an index of ``articles`` embeds."""
    queries = [t for a in articles for t in _example_texts(a)]
    queries += [t for a in articles for t in answer_sentences(a.body)]
    return queries, [_answer_text(a) for a in articles]


EMBED_AHEAD_ARTICLES = 16


def embed_ahead(articles: Sequence[Article], embedder: Embedder,
                progress: Callable[[int, int], None] | None = None) -> None:
    """Embed what an index of ``articles`` will embed, a few articles at a time (for a
    progress bar), so that an embedder keeping its vectors on disk has them before the hub
    starts (``omohub kb import``, the demo). Every call carries two texts or more: a single
    text is a live query, which the embedder never stores."""
    starts = list(range(0, len(articles), EMBED_AHEAD_ARTICLES))
    if not starts:
        return
    if len(starts) > 1 and len(articles) - starts[-1] < 2:
        starts.pop()  # the last article joins the chunk before it
    ends = [*starts[1:], len(articles)]
    for start, end in zip(starts, ends, strict=True):
        queries, passages = _texts_to_embed(articles[start:end])
        embedder.queries(queries)
        embedder.passages(passages)
        if progress:
            progress(end, len(articles))


# Defaults until ``kb.tuning.tune`` is run on a validation set: the curves fitted on the
# ja-retail-faq validation split (a Japanese retail FAQ with answers, like the sample KB).
DENSE_CALIBRATION = Calibration(top_weight=3.43, margin_weight=6.22, bias=-12.46)
LEXICAL_CALIBRATION = Calibration(top_weight=1.33, margin_weight=5.40, bias=-1.41)


class KnowledgeBase:
    """Articles indexed for search; ``decide`` answers or hands off with one threshold."""

    def __init__(self, articles: Sequence[Article], embedder: Embedder | None) -> None:
        self.articles = list(articles)
        self.embedder = embedder
        self.weights = Weights() if embedder else LEXICAL_WEIGHTS
        self.calibration = DENSE_CALIBRATION if embedder else LEXICAL_CALIBRATION
        self.threshold = DEFAULT_THRESHOLD
        self._query_cache: dict[str, np.ndarray] = {}
        self._build_documents()
        self._question_index = LexicalIndex(self._doc_texts)
        self._answer_index = LexicalIndex([_answer_text(a) for a in self.articles])
        self._build_reading_index()
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
            self._doc_texts.extend(_example_texts(article))
        self._fuzz_keys = [fuzz_key(t) for t in self._doc_texts]
        self._locales = np.array([a.locale for a in self.articles])

    def _build_reading_index(self) -> None:
        """TF-IDF over the kana readings of the example questions (``kb.reading``); None when
        no question has a reading (no Japanese, or janome not installed)."""
        readings = [reading(t) for t in self._doc_texts] if self.weights.reading else []
        self._reading_index = LexicalIndex(readings) if any(readings) else None

    def _reading_scores(self, text: str) -> np.ndarray:
        """Per article: best TF-IDF cosine of the query's reading with an example's reading."""
        query_reading = reading(text) if self._reading_index is not None else ""
        if not query_reading:
            return np.zeros(len(self.articles))
        scores = self._reading_index.scores(query_reading)  # type: ignore[union-attr]
        return np.maximum.reduceat(scores, self._label_start)

    def _embed_documents(self) -> None:
        if self.embedder is None or not self.articles:
            self._doc_vectors = self._answer_vectors = self._centroids = None
            self._classifier = self._label_matrix = None
            return
        self._doc_vectors = self.embedder.queries(self._doc_texts)
        sums = np.add.reduceat(self._doc_vectors, self._label_start, axis=0)
        self._centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)
        self._answer_vectors = self.embedder.passages([_answer_text(a) for a in self.articles])
        self._answer_vectors[[not a.body for a in self.articles]] = 0.0
        # The classifier also learns from the answers' sentences: a customer often asks about
        # one fact of an answer in words no example question used.
        sentences = [(j, t) for j, a in enumerate(self.articles) for t in answer_sentences(a.body)]
        vectors, labels = self._doc_vectors, self._doc_labels()
        if sentences:
            vectors = np.vstack([vectors, self.embedder.queries([t for _j, t in sentences])])
            labels = np.concatenate([labels, [j for j, _t in sentences]])
        self._classifier = SoftmaxClassifier.fit(vectors, labels, len(self.articles))
        self._label_matrix = np.ascontiguousarray(
            np.vstack([self._centroids, self._answer_vectors, self._classifier.weights.T]),
            dtype=np.float32,
        )

    def _doc_labels(self) -> np.ndarray:
        sizes = np.diff([*self._label_start, len(self._doc_texts)])
        return np.repeat(np.arange(len(self.articles)), sizes)

    def forget_queries(self) -> None:
        """Drop the cached query vectors and readings (so a measurement embeds every query)."""
        self._query_cache.clear()
        reading.cache_clear()

    def _query_vector(self, text: str) -> np.ndarray:
        """The query's embedding; the last few are cached (search + decide embed once)."""
        vector = self._query_cache.pop(text, None)
        if vector is None:
            vector = self.embedder.queries([text])[0]  # type: ignore[union-attr]
            if len(self._query_cache) >= QUERY_CACHE_SIZE:
                self._query_cache.pop(next(iter(self._query_cache)))
        self._query_cache[text] = vector
        return vector

    # -- scoring ------------------------------------------------------------------------
    def _dense_features(self, text: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-article (centroid, answer, classifier) rows — one product of the query vector
        with a (3 × articles) × dim matrix — and the query vector (None without the model)."""
        n = len(self.articles)
        if self.embedder is None or self._label_matrix is None:
            return np.zeros((3, n)), None
        vector = self._query_vector(text)
        rows = (self._label_matrix @ vector).reshape(3, n)
        rows[2] += self._classifier.bias  # type: ignore[union-attr]
        return rows, vector

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
        lex_reading = self._reading_scores(text)
        (centroid, answer, classifier), vector = self._dense_features(text)
        # The short list uses per-article signals only; the example questions (thousands of
        # rows) are compared with the query for the short-listed articles alone.
        coarse = centroid + 0.5 * answer + 0.5 * lex_q + 0.2 * lex_answer + classifier
        coarse += self.weights.reading * lex_reading
        eligible = self._eligible(locale)
        coarse[~eligible] = -np.inf
        order = [int(i) for i in np.argsort(-coarse, kind="stable")[:shortlist] if eligible[i]]
        extra = [j for j in self._product_articles(product) if eligible[j] and j not in order]
        labels = order + extra
        key = fuzz_key(text) if self.weights.fuzz else ""
        rows = [
            (
                *self._example_similarity(vector, j),
                centroid[j],
                answer[j],
                lex_q[j],
                lex_answer[j],
                self._fuzz(key, j),
                classifier[j],
                lex_reading[j],
            )
            for j in labels
        ]
        return labels, np.array(rows, dtype=np.float64).reshape(len(labels), len(FEATURES))

    def _label_docs(self, label: int) -> slice:
        end = self._label_start[label + 1] if label + 1 < len(self._label_start) else None
        return slice(self._label_start[label], end)

    def _example_similarity(self, vector: np.ndarray | None, label: int) -> tuple[float, float]:
        """(best, mean of the best three) cosine of the query with the article's examples."""
        if vector is None or self._doc_vectors is None:
            return 0.0, 0.0
        sims = self._doc_vectors[self._label_docs(label)] @ vector
        if not len(sims):
            return 0.0, 0.0
        best = np.sort(sims)[-3:]
        return float(best[-1]), float(best.mean())

    def _fuzz(self, key: str, label: int) -> float:
        if not key:
            return 0.0
        match = process.extractOne(key, self._fuzz_keys[self._label_docs(label)], scorer=fuzz.ratio)
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
        """Each hit's confidence weighs its score against the best *other* article: the
        top one's lead over the runner-up, a lower one's (negative) gap to the top, so a
        lower-ranked article never looks surer than the one ranked above it."""
        hits = []
        if not ranked:
            return hits
        top, second = ranked[0][1], (ranked[1][1] if len(ranked) > 1 else 0.0)
        for position, (label, score, row) in enumerate(ranked[:limit]):
            best_other = second if position == 0 else top
            article = self.articles[label]
            hits.append(
                Hit(
                    article_id=article.id,
                    title=article.title or article.id,
                    short_answer=article.short_answer,
                    score=round(score, 6),
                    confidence=round(self.calibration.confidence(score, score - best_other), 6),
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
