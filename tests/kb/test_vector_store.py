"""The on-disk store of index vectors: what is saved comes back, anything odd is ignored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kb.vector_store import VectorStore

DIM = 8


def _store(tmp_path: Path, model: str = "model-a") -> VectorStore:
    return VectorStore(tmp_path / "vectors.sqlite3", model, DIM)


@settings(max_examples=25, deadline=None)
@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=8, unique=True),
       data=st.data())
def test_saved_vectors_come_back_exactly(tmp_path_factory, texts: list[str], data) -> None:
    store = _store(tmp_path_factory.mktemp("store"))
    finite = st.floats(-1e3, 1e3, width=32)
    vectors = {store.key("query: ", t): data.draw(arrays(np.float32, DIM, elements=finite))
               for t in texts}
    store.save(vectors)
    loaded = store.load([*vectors, "not-saved"])
    assert set(loaded) == set(vectors)
    for key, vector in vectors.items():
        assert np.array_equal(loaded[key], vector)


def test_the_key_names_the_model_the_prefix_and_the_text(tmp_path: Path) -> None:
    store, other = _store(tmp_path), _store(tmp_path, model="model-b")
    keys = {store.key("query: ", "返品"), store.key("passage: ", "返品"),
            store.key("query: ", "返品 "), other.key("query: ", "返品")}
    assert len(keys) == 4


def test_a_vector_of_another_width_is_not_used(tmp_path: Path) -> None:
    VectorStore(tmp_path / "vectors.sqlite3", "model-a", DIM * 2).save(
        {"k": np.ones(DIM * 2, np.float32)})
    assert _store(tmp_path).load(["k"]) == {}


def test_a_damaged_file_only_costs_time(tmp_path: Path, caplog) -> None:
    path = tmp_path / "vectors.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    store = VectorStore(path, "model-a", DIM)
    assert store.load(["k"]) == {}
    store.save({"k": np.ones(DIM, np.float32)})  # logged, not raised
    assert "embedding store" in caplog.text
