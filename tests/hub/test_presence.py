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
