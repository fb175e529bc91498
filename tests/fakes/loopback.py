"""Serve an ASGI app with uvicorn on a loopback port inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn


def loopback_socket() -> socket.socket:
    """A bound loopback socket, so a server's URL is known before it starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def url_of(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.asynccontextmanager
async def serving(app: Any, sock: socket.socket | None = None,
                  lifespan: str = "on") -> AsyncIterator[str]:
    """Run ``app`` until the block ends; yields its base URL. Shutdown waits at most 5 s."""
    sock = sock or loopback_socket()
    server = uvicorn.Server(uvicorn.Config(app, lifespan=lifespan, log_level="warning",
                                           timeout_graceful_shutdown=5))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # readiness, not a timing guess
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        await task
        sock.close()
