"""The vectors of indexed texts, kept on disk so that a restarted hub embeds only what changed.

Embedding a knowledge base is the slow part of starting the bot: the 35 sample articles
take seconds, a shop's thousand articles minutes, during which the bot cannot answer. The
store is one SQLite file in the data directory: a key (a hash of the model, the e5 prefix
and the text) and the vector's float32 bytes. SQLite gives atomic writes and lets several
hub processes on one host share the file. Anything wrong with the file (unreadable,
locked, another format) is logged and the texts are embedded as if it were empty: the
store only saves time.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
_SCHEMA = "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
_LOOKUP_CHUNK = 500  # keys per SELECT (SQLite's bound-parameter limit is 999 on old builds)


class VectorStore:
    def __init__(self, path: str | Path, model_key: str, dim: int) -> None:
        self.path = Path(path)
        self.model_key = model_key
        self.dim = dim

    def key(self, prefix: str, text: str) -> str:
        material = f"{self.model_key}\0{prefix}\0{text}".encode()
        return hashlib.sha256(material).hexdigest()

    def load(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors among ``keys`` (missing ones are left out)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        try:
            with closing(self._connect()) as db:
                for start in range(0, len(wanted), _LOOKUP_CHUNK):
                    chunk = wanted[start : start + _LOOKUP_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})",
                                      chunk)
                    found.update(self._decode(rows))
        except sqlite3.Error as exc:
            log.warning("embedding store %s unreadable, embedding afresh: %s", self.path, exc)
            return {}
        return found

    def save(self, vectors: Mapping[str, np.ndarray]) -> None:
        if not vectors:
            return
        rows = [(key, np.asarray(v, dtype="<f4").tobytes()) for key, v in vectors.items()]
        try:
            with closing(self._connect()) as db, db:
                db.executemany("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", rows)
        except sqlite3.Error as exc:
            log.warning("embedding store %s not written: %s", self.path, exc)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        db.execute(_SCHEMA)
        return db

    def _decode(self, rows: Iterable[tuple[str, bytes]]) -> dict[str, np.ndarray]:
        """Rows of the right size only: a vector of another width is not this model's."""
        size = self.dim * 4
        return {key: np.frombuffer(blob, dtype="<f4").astype(np.float32)
                for key, blob in rows if isinstance(blob, bytes) and len(blob) == size}
