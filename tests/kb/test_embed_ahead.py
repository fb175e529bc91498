"""Embedding ahead (``omohub kb import``, the demo) covers everything the index will embed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kb.articles import Article
from kb.index import KnowledgeBase, embed_ahead
from tests.kb.conftest import HashingEmbedder


class RecordingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("query", tuple(texts)))
        return super().queries(texts)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("passage", tuple(texts)))
        return super().queries(texts)

    def embedded(self) -> set[tuple[str, str]]:
        return {(kind, text) for kind, texts in self.calls for text in texts}


@settings(max_examples=30, deadline=None)
@given(count=st.integers(0, 40))
def test_embed_ahead_embeds_what_the_index_will(sample_articles: list[Article],
                                                count: int) -> None:
    articles = (sample_articles * 2)[:count]
    ahead, index = RecordingEmbedder(), RecordingEmbedder()
    progress: list[tuple[int, int]] = []
    embed_ahead(articles, ahead, lambda done, total: progress.append((done, total)))
    KnowledgeBase.from_articles(articles, embedder=index)
    assert index.embedded() <= ahead.embedded()
    if count >= 2:  # a single text is a live query: the embedder would not store it
        assert all(len(texts) >= 2 for _kind, texts in ahead.calls)
    assert [done for done, _ in progress] == sorted({done for done, _ in progress})
    assert progress[-1:] == ([(count, count)] if count else [])
