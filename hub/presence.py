"""Who has a chat open right now, across every hub process.

Web chat counts a visitor's open sockets here (connect and disconnect), so the hub can tell
whether a reply was seen or should follow the customer elsewhere (hub/follow_up.py). One
process keeps the count in memory; with Redis (scale-out), a hash per visitor in Redis
(socket id → the process holding it), which every process shares. Each process keeps a
heartbeat key alive while it runs; sockets of a process whose heartbeat has lapsed (it
crashed, or was killed) no longer count, within ``HEARTBEAT_TTL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from typing import Any, Protocol

from redis import asyncio as redis

log = logging.getLogger(__name__)

KEY_TTL_SECONDS = 24 * 3600
HEARTBEAT_TTL_SECONDS = 30
HEARTBEAT_EVERY_SECONDS = 10


class Presence(Protocol):
    async def arrive(self, visitor: str, sid: str) -> None: ...

    async def leave(self, visitor: str, sid: str) -> None: ...

    async def present(self, visitor: str) -> bool: ...

    async def close(self) -> None: ...


class LocalPresence:
    def __init__(self) -> None:
        self._sids: defaultdict[str, set[str]] = defaultdict(set)

    async def arrive(self, visitor: str, sid: str) -> None:
        self._sids[visitor].add(sid)

    async def leave(self, visitor: str, sid: str) -> None:
        sids = self._sids.get(visitor)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._sids[visitor]

    async def present(self, visitor: str) -> bool:
        return bool(self._sids.get(visitor))

    async def close(self) -> None:
        self._sids.clear()


class RedisPresence:
    def __init__(self, url: str, prefix: str) -> None:
        self._redis = redis.from_url(url)
        self._prefix = f"{prefix}:presence:tabs:"
        self._heartbeats = f"{prefix}:presence:process:"
        self.process = secrets.token_hex(8)
        self._beating: asyncio.Task[None] | None = None

    @property
    def heartbeat_key(self) -> str:
        return self._heartbeats + self.process

    async def arrive(self, visitor: str, sid: str) -> None:
        key = self._prefix + visitor
        async with self._redis.pipeline(transaction=True) as pipe:
            await (pipe.hset(key, sid, self.process).expire(key, KEY_TTL_SECONDS)
                   .set(self.heartbeat_key, 1, ex=HEARTBEAT_TTL_SECONDS).execute())
        if self._beating is None:
            self._beating = asyncio.get_running_loop().create_task(self._beat())

    async def leave(self, visitor: str, sid: str) -> None:
        await self._redis.hdel(self._prefix + visitor, sid)

    async def present(self, visitor: str) -> bool:
        key = self._prefix + visitor
        tabs = {sid.decode(): owner.decode()
                for sid, owner in (await self._redis.hgetall(key)).items()}
        if not tabs:
            return False
        owners = sorted(set(tabs.values()))
        beating = await self._redis.mget([self._heartbeats + owner for owner in owners])
        alive = {owner for owner, beat in zip(owners, beating, strict=True) if beat}
        dead = [sid for sid, owner in tabs.items() if owner not in alive]
        if dead:  # a crashed process's tabs: forget them
            await self._redis.hdel(key, *dead)
        return len(dead) < len(tabs)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)
            try:
                await self._redis.set(self.heartbeat_key, 1, ex=HEARTBEAT_TTL_SECONDS)
            except redis.RedisError:  # Redis away for a moment: try again next beat
                log.warning("presence heartbeat to Redis failed", exc_info=True)

    async def close(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
        await self._redis.delete(self.heartbeat_key)  # its tabs stop counting at once
        await self._redis.aclose()


async def anyone_present(presence: Presence, identities: list[dict[str, Any]]) -> bool:
    """Whether any web identity among ``identities`` (as the API shows them) has a chat open."""
    for identity in identities:
        if identity.get("kind") == "web" and await presence.present(identity["value"]):
            return True
    return False


def make_presence(redis_url: str | None, prefix: str) -> Presence:
    return RedisPresence(redis_url, prefix) if redis_url else LocalPresence()
