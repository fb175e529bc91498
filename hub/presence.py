"""Who has a chat open right now, across every hub process.

Web chat counts a visitor's open sockets here (connect and disconnect), so the hub can tell
whether a reply was seen or should follow the customer elsewhere (hub/follow_up.py). One
process keeps the count in memory; with Redis (scale-out), a hash per visitor in Redis
(socket id → the process holding it), which every process shares. Each process keeps a
heartbeat key alive while it runs; sockets of a process whose heartbeat has lapsed (it
crashed, or was killed) no longer count, within ``HEARTBEAT_TTL_SECONDS``; a live process
that watches (``watch``) then tells its handler about each visitor whose last tab that was,
so the agents hear they left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis import asyncio as redis

log = logging.getLogger(__name__)

KEY_TTL_SECONDS = 24 * 3600
HEARTBEAT_TTL_SECONDS = 30
HEARTBEAT_EVERY_SECONDS = 10
SWEEP_CLAIM_SECONDS = 60

Gone = Callable[[str], Awaitable[None]]  # told a visitor's id when their last tab went


class Presence(Protocol):
    def watch(self, gone: Gone) -> None: ...

    async def arrive(self, visitor: str, sid: str) -> None: ...

    async def leave(self, visitor: str, sid: str) -> None: ...

    async def present(self, visitor: str) -> bool: ...

    async def close(self) -> None: ...


class LocalPresence:
    def __init__(self) -> None:
        self._sids: defaultdict[str, set[str]] = defaultdict(set)

    def watch(self, gone: Gone) -> None:
        """Nothing to watch: in one process, a tab that goes is a disconnect seen here."""

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
        self._processes = f"{prefix}:presence:processes"  # every process that held a tab
        self._visitors = f"{prefix}:presence:visitors:"  # + process: whose tabs it held
        self._sweeps = f"{prefix}:presence:sweep:"  # + process: who forgets its tabs
        self.process = secrets.token_hex(8)
        self._beating: asyncio.Task[None] | None = None
        self._gone: Gone | None = None

    def watch(self, gone: Gone) -> None:
        """Beat from now on (not only once a tab opens here), and tell ``gone`` about the
        visitors whose last tab was held by a process that died."""
        self._gone = gone
        self._start_beating()

    def _start_beating(self) -> None:
        if self._beating is None:
            self._beating = asyncio.get_running_loop().create_task(self._beat())

    @property
    def heartbeat_key(self) -> str:
        return self._heartbeats + self.process

    async def arrive(self, visitor: str, sid: str) -> None:
        key, mine = self._prefix + visitor, self._visitors + self.process
        async with self._redis.pipeline(transaction=True) as pipe:
            await (pipe.hset(key, sid, self.process).expire(key, KEY_TTL_SECONDS)
                   .sadd(mine, visitor).expire(mine, KEY_TTL_SECONDS)
                   .sadd(self._processes, self.process)
                   .set(self.heartbeat_key, 1, ex=HEARTBEAT_TTL_SECONDS).execute())
        self._start_beating()

    async def leave(self, visitor: str, sid: str) -> None:
        key = self._prefix + visitor
        await self._redis.hdel(key, sid)
        owners = await self._redis.hvals(key)
        if self.process.encode() not in owners:  # they were told; a crash now is not news
            await self._redis.srem(self._visitors + self.process, visitor)

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

    async def sweep(self) -> list[str]:
        """Forget the tabs of processes whose heartbeat lapsed; the visitors who have no
        tab left because of it. One live process claims each dead one, so each such
        visitor is reported once."""
        others = [p.decode() for p in await self._redis.smembers(self._processes)
                  if p.decode() != self.process]
        beats = await self._redis.mget([self._heartbeats + p for p in others]) if others else []
        gone: list[str] = []
        for process, beat in zip(others, beats, strict=True):
            if beat or not await self._redis.set(self._sweeps + process, self.process,
                                                  nx=True, ex=SWEEP_CLAIM_SECONDS):
                continue
            for visitor in await self._redis.smembers(self._visitors + process):
                if not await self.present(visitor.decode()):  # drops the dead one's tabs
                    gone.append(visitor.decode())
            await self._redis.delete(self._visitors + process)
            await self._redis.srem(self._processes, process)
        return gone

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)
            try:
                await self._redis.set(self.heartbeat_key, 1, ex=HEARTBEAT_TTL_SECONDS)
                if self._gone is not None:
                    for visitor in await self.sweep():
                        await self._gone(visitor)
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
