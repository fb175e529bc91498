"""CPU per one-event signed LINE webhook, in-process: the hub's ASGI app (as
``scripts/bench_line.py`` builds it) is called directly, without uvicorn, by ``--callers``
concurrent callers posting pre-signed one-event bodies from a pool of ``--users`` LINE users
who were each seen once before the measured window; the figure is the process's CPU time
(every thread) per webhook. ``--bare`` measures bench_line's bare Litestar endpoint instead.

For counts that do not depend on the machine's load, run it under valgrind twice and take
the difference, so start-up cancels out:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python scripts/bench_line_cpu.py --webhooks 1000     # then --webhooks 5000
    # (instructions(5000) - instructions(1000)) / 4000 = instructions per webhook
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bench_line import Bodies, bare_app, hub_app

Message = dict[str, Any]
App = Callable[[Message, Callable[[], Awaitable[Message]],
                Callable[[Message], Awaitable[None]]], Awaitable[None]]


def split(request: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """bench_line's raw HTTP request as ASGI headers and body."""
    head, body = request.split(b"\r\n\r\n", 1)
    headers = []
    for line in head.split(b"\r\n")[1:]:
        name, value = line.split(b": ", 1)
        headers.append((name.lower(), value))
    return headers, body


async def post(app: App, request: bytes) -> int:
    headers, body = split(request)
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
             "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/webhooks/line", "raw_path": b"/webhooks/line", "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 8000), "state": {}}
    status: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


async def lifespan(app: App) -> Callable[[], Awaitable[None]]:
    """Start the app's lifespan (migrations, adapters); returns its shutdown."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                    "state": {}}, inbox.get, outbox.put))
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started

    async def shutdown() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task

    return shutdown


async def drive(app: App, requests: list[bytes], callers: int) -> None:
    cursor = iter(requests)

    async def caller() -> None:
        for request in cursor:
            status = await post(app, request)
            if status != 200:
                raise RuntimeError(f"webhook answered {status}")

    await asyncio.gather(*(caller() for _ in range(callers)))


async def measure(bare: bool, webhooks: int, callers: int, users: int) -> float:
    from hub.process import tune_for_serving

    app = bare_app() if bare else hub_app(tempfile.mkdtemp(prefix="omohub-line-cpu-"))
    tune_for_serving()
    shutdown = await lifespan(app)
    bodies = Bodies(users, 1, seed=1)
    await drive(app, bodies.warmup(), callers)  # customers and tickets exist
    if not bare:  # the new users' profile look-ups, started after the answers
        await app.services.adapters["line"].drain()
    requests = bodies.batch(webhooks)
    started = time.process_time()
    await drive(app, requests, callers)
    cpu = time.process_time() - started
    await shutdown()
    return cpu / webhooks


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=5000)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--bare", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # as bench_line's servers
    per_webhook = asyncio.run(measure(args.bare, args.webhooks, args.callers, args.users))
    print(f"{per_webhook * 1e6:.0f} us of CPU per webhook "
          f"({'bare' if args.bare else 'hub'}, {args.webhooks} webhooks, "
          f"{args.callers} callers)")


if __name__ == "__main__":
    main()
