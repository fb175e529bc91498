"""Interpreter settings for a long-running hub process (``omohub serve`` and ``demo``).

Applied once, after the app is built and before the server starts accepting work."""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

# How uvicorn serves the hub (``omohub serve``/``demo`` and every benchmark server alike).
# No per-message deflate on WebSockets: chat frames are a few hundred bytes, and deflating
# every one costs more CPU than it saves on the wire (Socket.IO's own server turned it off
# by default in v3 for the same reason).
SERVER_OPTIONS: dict[str, Any] = {"ws_per_message_deflate": False}

# Young collections every 700 net allocations (CPython's default) run thousands of times a
# second under chat traffic, although nearly every object dies by reference counting first.
YOUNG_GENERATION_THRESHOLD = 20_000


def tune_for_serving() -> None:
    # Everything built at start-up lives as long as the process: move it out of the
    # collector's sight, so a full collection does not rescan it under load.
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_young_threshold(), middle, old)
    # The database driver runs in a thread; hand the GIL over sooner than every 5 ms so a
    # busy event loop does not hold every commit back (latency, not throughput).
    sys.setswitchinterval(0.001)


def _young_threshold() -> int:
    return int(os.environ.get("OMOHUB_GC_YOUNG_THRESHOLD", YOUNG_GENERATION_THRESHOLD))
