"""Who has a chat open: counted per socket, in memory or in Redis shared by processes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from hub.presence import LocalPresence, Presence, RedisPresence
from tests.conftest import REQUIRE_SERVICES, _redis_reachable

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Presence]]:
    """Presence objects that share their state, as the hub processes of one site do."""
    made: list[Presence] = []
    if request.param == "memory":
        shared = LocalPresence()
        yield lambda: shared
        return
    if not _redis_reachable():
        if REQUIRE_SERVICES:
            pytest.fail("Redis is required (OMOHUB_REQUIRE_SERVICES=1)")
        pytest.skip("Redis is not reachable")
    prefix = f"omohub-test-{uuid.uuid4().hex[:8]}"

    def new() -> Presence:
        made.append(RedisPresence(REDIS, prefix))
        return made[-1]

    yield new
    for presence in made:
        await presence.close()


async def test_a_visitor_is_present_while_any_tab_is_open(
        make: Callable[[], Presence]) -> None:
    one, other = make(), make()  # e.g. two hub processes behind one load balancer
    assert not await one.present("v1")
    await one.arrive("v1", "sid-a")
    await other.arrive("v1", "sid-b")
    assert await other.present("v1") and await one.present("v1")
    await other.leave("v1", "sid-a")  # a tab may close on either process
    assert await one.present("v1")
    await one.leave("v1", "sid-b")
    assert not await one.present("v1") and not await other.present("v1")


async def test_leaving_twice_or_unknown_sockets_changes_nothing(
        make: Callable[[], Presence]) -> None:
    presence = make()
    await presence.leave("nobody", "sid-x")
    await presence.arrive("v2", "sid-a")
    await presence.leave("v2", "sid-z")
    assert await presence.present("v2")
    await presence.leave("v2", "sid-a")
    await presence.leave("v2", "sid-a")
    assert not await presence.present("v2") and not await presence.present("nobody")


async def test_a_crashed_processs_tabs_stop_counting_when_its_heartbeat_lapses() -> None:
    """Process A dies without closing its sockets: once A's heartbeat key is gone (Redis
    lets it expire; here it is deleted, as the expiry would), B no longer counts A's tabs."""
    if not _redis_reachable():
        if REQUIRE_SERVICES:
            pytest.fail("Redis is required (OMOHUB_REQUIRE_SERVICES=1)")
        pytest.skip("Redis is not reachable")
    from redis import asyncio as redis

    prefix = f"omohub-test-{uuid.uuid4().hex[:8]}"
    crashed, alive = RedisPresence(REDIS, prefix), RedisPresence(REDIS, prefix)
    raw = redis.from_url(REDIS)
    try:
        await crashed.arrive("v3", "sid-a")
        await alive.arrive("v4", "sid-b")
        assert await alive.present("v3")
        await raw.delete(crashed.heartbeat_key)  # A is gone; its heartbeat lapsed
        assert not await alive.present("v3")
        assert await alive.present("v4")  # B's own tab still counts
        assert not await raw.hlen(f"{prefix}:presence:tabs:v3")  # forgotten, not kept
    finally:
        await alive.close()
        await crashed.close()
        await raw.aclose()


async def test_a_live_process_reports_once_the_visitors_a_crashed_one_took_away() -> None:
    """A dies holding v5's only tab and one of v6's two; v7 had closed theirs before. B
    and C both sweep: v5 alone is reported, by one of them, and only once."""
    if not _redis_reachable():
        if REQUIRE_SERVICES:
            pytest.fail("Redis is required (OMOHUB_REQUIRE_SERVICES=1)")
        pytest.skip("Redis is not reachable")
    from redis import asyncio as redis

    prefix = f"omohub-test-{uuid.uuid4().hex[:8]}"
    crashed, b, c = (RedisPresence(REDIS, prefix) for _ in range(3))
    raw = redis.from_url(REDIS)
    try:
        await crashed.arrive("v5", "sid-a")
        await crashed.arrive("v6", "sid-b")
        await b.arrive("v6", "sid-c")
        await crashed.arrive("v7", "sid-d")
        await crashed.leave("v7", "sid-d")  # told already, when it closed
        assert await b.sweep() == [] and await c.sweep() == []  # A still beats
        await raw.delete(crashed.heartbeat_key)  # A is gone; its heartbeat lapsed
        assert await c.present("v5") is False  # someone looked first: still reported
        reported = [*await b.sweep(), *await c.sweep(), *await b.sweep()]
        assert reported == ["v5"]
        assert await b.present("v6")
    finally:
        for presence in (b, c, crashed):
            await presence.close()
        await raw.aclose()


async def test_a_watching_process_tells_its_handler_on_its_beat(
        monkeypatch: pytest.MonkeyPatch) -> None:
    if not _redis_reachable():
        if REQUIRE_SERVICES:
            pytest.fail("Redis is required (OMOHUB_REQUIRE_SERVICES=1)")
        pytest.skip("Redis is not reachable")
    import asyncio

    from redis import asyncio as redis

    from hub import presence as module

    monkeypatch.setattr(module, "HEARTBEAT_EVERY_SECONDS", 0.01)
    prefix = f"omohub-test-{uuid.uuid4().hex[:8]}"
    crashed, watching = RedisPresence(REDIS, prefix), RedisPresence(REDIS, prefix)
    told: asyncio.Queue[str] = asyncio.Queue()
    raw = redis.from_url(REDIS)
    try:
        watching.watch(told.put)  # never held a tab itself: it beats and sweeps anyway
        await crashed.arrive("v8", "sid-a")
        assert crashed._beating is not None
        crashed._beating.cancel()  # the process dies: it beats no more
        await raw.delete(crashed.heartbeat_key)  # and its heartbeat lapses
        assert await asyncio.wait_for(told.get(), timeout=10) == "v8"
    finally:
        await watching.close()
        await crashed.close()
        await raw.aclose()
