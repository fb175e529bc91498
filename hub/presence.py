"""Who has a chat open right now, across every hub process.

Web chat counts a visitor's open sockets here (connect and disconnect), so the hub can tell
whether a reply was seen or should follow the customer elsewhere (hub/follow_up.py). One
process keeps the count in memory; with Redis (scale-out), a set of socket ids per visitor
in Redis, which every process shares. A process that dies leaves its sockets in the set
until the key expires: the visitor then looks present, and no follow-up is sent — the
reply still waits in the chat.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

from redis import asyncio as redis

KEY_TTL_SECONDS = 24 * 3600


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
        self._prefix = f"{prefix}:presence:web:"

    async def arrive(self, visitor: str, sid: str) -> None:
        key = self._prefix + visitor
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.sadd(key, sid).expire(key, KEY_TTL_SECONDS).execute()

    async def leave(self, visitor: str, sid: str) -> None:
        await self._redis.srem(self._prefix + visitor, sid)

    async def present(self, visitor: str) -> bool:
        return bool(await self._redis.scard(self._prefix + visitor))

    async def close(self) -> None:
        await self._redis.aclose()


async def anyone_present(presence: Presence, identities: list[dict[str, Any]]) -> bool:
    """Whether any web identity among ``identities`` (as the API shows them) has a chat open."""
    for identity in identities:
        if identity.get("kind") == "web" and await presence.present(identity["value"]):
            return True
    return False


def make_presence(redis_url: str | None, prefix: str) -> Presence:
    return RedisPresence(redis_url, prefix) if redis_url else LocalPresence()
