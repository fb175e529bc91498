"""JSON through msgspec: Socket.IO packets and the database's JSON columns.

python-socketio encodes every event with ``json.dumps`` and engine.io decodes every
incoming packet with a ``json.loads`` that builds a new decoder per call; on the hub's
hottest path (each chat message is one packet in and three out) msgspec does both several
times faster. Non-ASCII text goes out as UTF-8 rather than ``\\uXXXX`` escapes, which is
valid JSON and a smaller frame for Japanese. Integers longer than Python's own limit for
``int()`` (4,300 digits) are refused, so a hostile payload cannot make the parser crunch a
huge number (engine.io's own ``loads`` guards against the same).

The same pair is the engines' JSON (de)serializer: every ingest batch reads the JSON columns
of the senders' customers and tickets, and ``json.loads`` was a fifth of its time."""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def dumps(obj: Any, **_options: Any) -> str:
    """``json.dumps``-compatible; the separators python-socketio asks for are msgspec's own."""
    return _encoder.encode(obj).decode()


def loads(data: str | bytes, **_options: Any) -> Any:
    """Malformed input raises ``msgspec.DecodeError``, a ``ValueError`` like json's."""
    return _decoder.decode(data)
