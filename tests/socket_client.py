"""A real python-socketio client for tests, whose received events queue up by name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

TIMEOUT = 10


class Client:
    """A python-socketio client whose received events queue up by name."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.sio = socketio.AsyncClient(reconnection=False)
        self.queues: dict[str, asyncio.Queue[Any]] = {}
        self.sio.on("*", self._record, namespace=namespace)
        self.sio.on("connect_error", self._connect_error, namespace=namespace)

    async def _record(self, event: str, data: Any = None) -> None:
        await self.queue(event).put(data)

    async def _connect_error(self, data: Any) -> None:
        await self.queue("connect_error").put(data)

    def queue(self, event: str) -> asyncio.Queue[Any]:
        return self.queues.setdefault(event, asyncio.Queue())

    async def next(self, event: str) -> Any:
        return await asyncio.wait_for(self.queue(event).get(), TIMEOUT)

    async def connect(self, url: str, auth: dict[str, Any]) -> None:
        await self.sio.connect(url, namespaces=[self.namespace], auth=auth,
                               transports=["websocket"], wait_timeout=TIMEOUT)

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.sio.call(event, data, namespace=self.namespace, timeout=TIMEOUT)


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        await client.sio.disconnect()
