from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pytest

from kb.articles import Article, default_articles_dir, load_directory
from kb.index import KnowledgeBase


class HashingEmbedder:
    """A deterministic stand-in for the sentence model: hashed character trigrams."""

    dim = 64

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        padded = f"  {text.lower()}  "
        for i in range(len(padded) - 2):
            digest = hashlib.blake2b(padded[i : i + 3].encode(), digest_size=2).digest()
            vector[int.from_bytes(digest, "big") % self.dim] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self._vector(t) for t in texts], dtype=np.float32).reshape(-1, self.dim)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.queries(texts)


@pytest.fixture(scope="session")
def sample_articles() -> list[Article]:
    result = load_directory(default_articles_dir())
    assert not result.errors, result.errors
    return result.articles


@pytest.fixture(scope="session")
def lexical_kb(sample_articles: list[Article]) -> KnowledgeBase:
    return KnowledgeBase.from_articles(sample_articles, embedder=None)


@pytest.fixture(scope="session")
def hashed_kb(sample_articles: list[Article]) -> KnowledgeBase:
    return KnowledgeBase.from_articles(sample_articles, embedder=HashingEmbedder())
