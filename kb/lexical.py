"""An inverted index with TF-IDF cosine scores (sublinear tf, smoothed idf).

Cosine keeps scores in 0..1 so that they combine with embedding similarities
without per-data-set scaling; the inverted index means a query only touches
the postings of its own tokens.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

from kb.normalize import tokenize


class LexicalIndex:
    def __init__(self, documents: Sequence[str]) -> None:
        token_lists = [tokenize(doc) for doc in documents]
        self.size = len(documents)
        doc_freq: Counter[str] = Counter()
        for tokens in token_lists:
            doc_freq.update(set(tokens))
        self.idf = {
            token: math.log((1 + self.size) / (1 + df)) + 1.0 for token, df in doc_freq.items()
        }
        self.postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for doc_id, tokens in enumerate(token_lists):
            for token, weight in self._unit_vector(tokens).items():
                self.postings[token].append((doc_id, weight))

    def _unit_vector(self, tokens: Sequence[str]) -> dict[str, float]:
        counts = Counter(tokens)
        weights = {
            token: (1.0 + math.log(count)) * self.idf.get(token, 0.0)
            for token, count in counts.items()
        }
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {token: w / norm for token, w in weights.items() if w > 0}

    def scores(self, query: str) -> dict[int, float]:
        """Cosine similarity of the query with every document sharing a token with it."""
        result: dict[int, float] = defaultdict(float)
        for token, q_weight in self._unit_vector(tokenize(query)).items():
            for doc_id, d_weight in self.postings.get(token, ()):
                result[doc_id] += q_weight * d_weight
        return result
