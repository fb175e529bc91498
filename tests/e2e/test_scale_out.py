"""Two hub processes behind one site: PostgreSQL for data, Redis for Socket.IO fan-out.

A customer talks to process A while the agent is connected to process B; each sees the
other live, and every message is stored once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import socketio

from tests.conftest import REQUIRE_SERVICES, _pg_admin, _pg_reachable, _redis_reachable
from tests.e2e.demo_hub import free_port, stop, wait_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
TIMEOUT = 15


@pytest.fixture
def two_hubs(tmp_path: Path) -> Iterator[tuple[str, str]]:
    if not (_pg_reachable() and _redis_reachable()):
        if REQUIRE_SERVICES:
            pytest.fail("PostgreSQL and Redis are required (OMOHUB_REQUIRE_SERVICES=1)")
        pytest.skip("PostgreSQL or Redis is not reachable")
    name = f"omohub_scale_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    env = {**os.environ,
           "OMOHUB_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}",
           "OMOHUB_REDIS_URL": "redis://127.0.0.1:6379/0",
           "OMOHUB_REDIS_CHANNEL": f"omohub-test-{name}",
           "OMOHUB_SECRET_KEY": "scale-out-test-secret-" + "k" * 20,
           "OMOHUB_DATA_DIR": str(tmp_path), "OMOHUB_BOT_ENABLED": "0"}
    omohub = [sys.executable, "-m", "hub.cli"]
    subprocess.run([*omohub, "create-agent", "--email", "agent@example.com",
                    "--password", "agent-password"], env=env, check=True, capture_output=True)
    processes, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            processes.append(subprocess.Popen([*omohub, "serve", "--port", str(port)], env=env,
                                              stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            wait_healthy(url, process, timeout=30)
        yield urls[0], urls[1]
    finally:
        for process in processes:
            stop(process)
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _scenario(hub_a: str, hub_b: str) -> None:
    async with httpx.AsyncClient(base_url=hub_b) as http:
        token = (await http.post("/api/auth/login", json={
            "email": "agent@example.com", "password": "agent-password"})).json()["token"]
        agent_events: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        customer_events: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        agent = socketio.AsyncClient(reconnection=False)
        customer = socketio.AsyncClient(reconnection=False)
        agent.on("message.created", agent_events.put, namespace="/agent")
        customer.on("message", customer_events.put, namespace="/webchat")
        await agent.connect(hub_b, namespaces=["/agent"], auth={"token": token},
                            transports=["websocket"])
        await customer.connect(hub_a, namespaces=["/webchat"], auth={},
                               transports=["websocket"])
        try:
            ack = await customer.call("message", {"text": "A から送信", "client_id": "m1"},
                                      namespace="/webchat", timeout=TIMEOUT)
            seen = await asyncio.wait_for(agent_events.get(), TIMEOUT)
            assert seen["text"] == "A から送信"
            assert seen["conversation_id"] == ack["conversation_id"]
            reply = await http.post(f"/api/conversations/{ack['conversation_id']}/messages",
                                    json={"text": "B から返信"},
                                    headers={"Authorization": f"Bearer {token}"})
            assert reply.status_code == 201
            received = await asyncio.wait_for(customer_events.get(), TIMEOUT)
            assert received["text"] == "B から返信"
            detail = (await http.get(f"/api/conversations/{ack['conversation_id']}",
                                     headers={"Authorization": f"Bearer {token}"})).json()
            assert [i["text"] for i in detail["timeline"]] == ["A から送信", "B から返信"]
        finally:
            await agent.disconnect()
            await customer.disconnect()


def test_two_processes_share_one_site(two_hubs: tuple[str, str]) -> None:
    asyncio.run(_scenario(*two_hubs))
