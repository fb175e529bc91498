"""Shared fixtures: a real database (SQLite and PostgreSQL) and a real hub on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub import db
from hub.app import build_services, create_litestar, stop_services
from hub.models import Agent
from hub.security import hash_password
from hub.services import Services
from hub.settings import Settings
from tests.fakes.loopback import serving

pytest_plugins = ["tests.fakes.line_api", "tests.fakes.smtp_sink",  # fake_line, sink
                  "tests.socket_client",  # clients
                  "tests.fakes.twilio_webhook"]  # twilio_socket, fake_twilio

PG_ADMIN_URL = os.environ.get("OMOHUB_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("OMOHUB_REQUIRE_SERVICES") == "1"
TABLES = ["link_attempts", "link_codes", "kb_article_versions", "kb_articles", "outbox",
          "customer_merges", "audit_events", "timeline_items", "conversations",
          "identities", "customers", "agents", "products", "stores"]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _pg_reachable() -> bool:
    return _listening(5432)


def _redis_reachable() -> bool:
    return _listening(6379)


@pytest.fixture(scope="session")
def pg_template_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated once."""
    if not _pg_reachable():
        if REQUIRE_SERVICES:
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 and "
                        "OMOHUB_REQUIRE_SERVICES=1")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"omohub_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    db.migrate(url)
    yield url
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg_admin(statement: str) -> None:
    engine = db.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(sa.text(statement))
    await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "omohub.db"
    db.migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "omohub.db"
        target.write_bytes(template.read_bytes())
        return f"sqlite+aiosqlite:///{target}"
    url: str = request.getfixturevalue("pg_template_url")
    asyncio.run(_truncate(url))
    return url


async def _truncate(url: str) -> None:
    engine = db.create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(sa.text(
            f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, secret_key="test-secret-" + "x" * 32,
                    data_dir=str(tmp_path / "data"), public_url="http://127.0.0.1:8000",
                    bot_enabled=False)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    built = build_services(settings)
    built.dispatcher.start()
    yield built
    await stop_services(built)


async def stored_rows(url: str, model: type) -> list[Any]:
    """Every row of ``model`` in the database at ``url`` (for tests of CLI verbs)."""
    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            return list((await session.execute(sa.select(model))).scalars())
    finally:
        await engine.dispose()


@dataclass
class RunningHub:
    url: str
    services: Services
    http: httpx.AsyncClient

    async def login(self, email: str = "agent@example.com",
                    password: str = "agent-password") -> str:
        response = await self.http.post("/api/auth/login",
                                        json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    async def api(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kwargs)


AGENTS = [("agent@example.com", "agent-password", "Aoi", "agent"),
          ("lead@example.com", "lead-password", "Ken", "supervisor")]


@pytest.fixture(scope="session")
def agent_hashes() -> dict[str, str]:
    """argon2 is slow on purpose; hash the test passwords once per run."""
    return {email: hash_password(password) for email, password, _, _ in AGENTS}


async def seed_agents(services: Services, hashes: dict[str, str]) -> None:
    async with services.sessions() as session, session.begin():
        session.add_all([Agent(email=email, name=name, role=role, password_hash=hashes[email])
                         for email, _, name, role in AGENTS])


@pytest.fixture
async def hub(settings: Settings, agent_hashes: dict[str, str]) -> AsyncIterator[RunningHub]:
    """The whole hub (HTTP + Socket.IO) served by uvicorn on a loopback port."""
    import socketio

    services = build_services(settings)
    await seed_agents(services, agent_hashes)
    app = socketio.ASGIApp(services.sio, other_asgi_app=create_litestar(services))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        yield RunningHub(url, services, http)
