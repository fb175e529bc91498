"""An inverted index with TF-IDF cosine scores (sublinear tf, smoothed idf).

Cosine keeps scores in 0..1 so that they combine with embedding similarities
without per-data-set scaling; the inverted index means a query only touches
the postings of its own tokens.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

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
        lists: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for doc_id, tokens in enumerate(token_lists):
            for token, weight in self._unit_vector(tokens).items():
                lists[token].append((doc_id, weight))
        self.postings: dict[str, tuple[np.ndarray, np.ndarray]] = {
            token: (
                np.array([doc for doc, _ in pairs], dtype=np.int64),
                np.array([weight for _, weight in pairs], dtype=np.float64),
            )
            for token, pairs in lists.items()
        }

    def _unit_vector(self, tokens: Sequence[str]) -> dict[str, float]:
        counts = Counter(tokens)
        weights = {
            token: (1.0 + math.log(count)) * self.idf.get(token, 0.0)
            for token, count in counts.items()
        }
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {token: w / norm for token, w in weights.items() if w > 0}

    def scores(self, query: str) -> np.ndarray:
        """Cosine similarity of the query with every document (0 where no token is shared).

        Only the postings of the query's own tokens are touched; each posting list is a
        pair of numpy arrays, so a frequent token costs one vectorised add, not a loop.
        """
        result = np.zeros(self.size)
        for token, q_weight in self._unit_vector(tokenize(query)).items():
            posting = self.postings.get(token)
            if posting is not None:
                doc_ids, weights = posting
                result[doc_ids] += q_weight * weights
        return result
