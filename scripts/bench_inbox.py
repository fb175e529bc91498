"""Inbox queries at scale: does the inbox stay fast with a million messages?

Seeds N conversations and M timeline items into a fresh SQLite database (bulk Core
inserts), then times the inbox queries the agent UI makes, first with omohub's indexes and
then — the baseline, measured in the same run — on the same data with those indexes
dropped. Prints p50/p99 per query and the speed-up ratio.

    .venv/bin/python scripts/bench_inbox.py [--conversations 100000] [--messages 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from hub import db
from hub.models import Agent, Conversation, Customer, TimelineItem, utcnow
from hub.tickets import InboxFilter, Tickets

CHUNK = 20_000
INDEXES = ["ix_conversations_status_activity", "ix_conversations_assignee_activity",
           "ix_conversations_activity", "ix_conversations_customer_status",
           "ix_items_conversation_time"]
QUERIES = {
    "open inbox": InboxFilter(status="open", limit=50),
    "all, newest first": InboxFilter(limit=50),
    "mine": InboxFilter(assignee="me", limit=50),
    "unassigned open": InboxFilter(status="open", assignee="unassigned", limit=50),
    "search by name": InboxFilter(q="customer 4242", limit=50),
    "search, no match": InboxFilter(q="返品", limit=50),  # the worst case: nothing matches
}


def progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r{label:<14} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


async def seed(engine: sa.ext.asyncio.AsyncEngine, conversations: int, messages: int) -> None:
    rng = random.Random(7)
    now = utcnow()
    async with engine.begin() as connection:
        await connection.execute(sa.insert(Agent), [
            {"email": f"agent{n}@example.com", "name": f"agent {n}", "password_hash": "x",
             "role": "agent", "locale": "ja", "active": True, "created_at": now}
            for n in range(1, 21)])
    for start in range(0, conversations, CHUNK):
        size = min(CHUNK, conversations - start)
        rows_customers, rows_conversations = [], []
        for offset in range(size):
            number = start + offset + 1
            moment = now - timedelta(seconds=rng.randint(0, 90 * 86400))
            rows_customers.append({"id": number, "display_name": f"customer {number}",
                                   "attributes": {}, "created_at": moment,
                                   "updated_at": moment})
            rows_conversations.append({
                "id": number, "customer_id": number,
                "status": rng.choices(["open", "pending", "resolved"], [1, 1, 8])[0],
                "assignee_id": rng.choice([None, *range(1, 21)]), "tags": [],
                "channels": ["web"], "last_channel": "web", "bot_state": {},
                "unread_count": 0, "last_preview": "…", "created_at": moment,
                "last_activity_at": moment})
        async with engine.begin() as connection:
            await connection.execute(sa.insert(Customer), rows_customers)
            await connection.execute(sa.insert(Conversation), rows_conversations)
        progress("conversations", start + size, conversations)
    for start in range(0, messages, CHUNK):
        size = min(CHUNK, messages - start)
        rows = [{"conversation_id": rng.randint(1, conversations), "kind": "message",
                 "channel": "web", "direction": "in", "sender_type": "customer",
                 "text": "配送について", "attachments": [], "data": {},
                 "delivery_status": "received",
                 "created_at": now - timedelta(seconds=rng.randint(0, 90 * 86400))}
                for _ in range(size)]
        async with engine.begin() as connection:
            await connection.execute(sa.insert(TimelineItem), rows)
        progress("messages", start + size, messages)


async def time_queries(tickets: Tickets, rounds: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in [*QUERIES, "one ticket"]}
    for _ in range(rounds):
        for name, query in QUERIES.items():
            started = time.perf_counter()
            await tickets.inbox(query, agent_id=3)
            timings[name].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await tickets.detail(random.randint(1, 1000))
        timings["one ticket"].append((time.perf_counter() - started) * 1000)
    return timings


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="omohub-bench-inbox-"))
    url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    await db.migrate_async(url)
    engine = db.create_engine(url)
    await seed(engine, args.conversations, args.messages)
    async with engine.begin() as connection:
        await connection.execute(sa.text("ANALYZE"))
    tickets = Tickets(db.session_factory(engine), None, lambda: [], lambda: None)  # type: ignore[arg-type]
    await time_queries(tickets, 2)  # warm the page cache
    indexed = await time_queries(tickets, args.rounds)
    async with engine.begin() as connection:
        for index in INDEXES:
            await connection.execute(sa.text(f"DROP INDEX IF EXISTS {index}"))
    bare = await time_queries(tickets, max(3, args.rounds // 4))
    await engine.dispose()
    result = {}
    print(f"inbox at {args.conversations:,} tickets / {args.messages:,} messages (SQLite)")
    for name in indexed:
        p50, p99 = summary(indexed[name])
        base50, _ = summary(bare[name])
        result[name] = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
                        "no_index_p50_ms": round(base50, 2), "speedup": round(base50 / p50, 1)}
        print(f"{name:<18} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  | without indexes p50 "
              f"{base50:8.2f} ms  → {base50 / p50:6.1f}× faster")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
