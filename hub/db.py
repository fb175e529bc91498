"""Engine, sessions and migrations. SQLite is the embedded default, PostgreSQL the scale-out."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import ColumnElement, and_, bindparam, event, tuple_
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from hub import wire_json

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)
T = TypeVar("T")


def pair_in(first: ColumnElement[Any], second: ColumnElement[Any]) -> ColumnElement[bool]:
    """``(first, second) IN :pairs``, in a form SQLite answers from an index on the two
    columns; bind it with ``pair_params``.

    SQLite (3.40) plans a row-value IN list as a scan of the whole table: every stored
    timeline item for each batch that looks for redeliveries. With each column's own IN
    list beside it, it searches the index, and the row-value test keeps the exact pairs."""
    return and_(first.in_(bindparam("pair_firsts", expanding=True)),
                second.in_(bindparam("pair_seconds", expanding=True)),
                tuple_(first, second).in_(bindparam("pair_keys", expanding=True)))


def pair_params(pairs: Iterable[tuple[Any, Any]]) -> dict[str, list[Any]]:
    """The parameters of ``pair_in`` for these pairs (at least one)."""
    keys = list(pairs)
    return {"pair_keys": keys, "pair_firsts": list({first for first, _ in keys}),
            "pair_seconds": list({second for _, second in keys})}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


JSON_CODEC = {"json_serializer": wire_json.dumps, "json_deserializer": wire_json.loads}


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    kwargs = {**JSON_CODEC, **kwargs}
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def _ensure_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# The writer leaves copying the WAL back into the database file (a checkpoint: every page
# the WAL holds, then an fsync) to a thread of its own; SQLite's own checkpoint on commit,
# at its default of 1000 pages, cost a third of the writer's time per message. The high
# limit only bounds the WAL if that thread ever falls behind.
WRITER_AUTOCHECKPOINT_PAGES = 8_000
CHECKPOINT_EVERY_COMMITS = 16


def _writer_connection(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT_PAGES}")
    # A multi-row INSERT inside a transaction keeps a statement journal (to undo only that
    # statement if a constraint fails halfway). In a file that is a temp file created,
    # written and unlinked in /var/tmp on every commit; in memory it costs a memcpy.
    dbapi_connection.execute("PRAGMA temp_store=MEMORY")
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event starts transactions


def _begin_immediate(connection: Any) -> None:
    # Every writer transaction writes: take the write lock first (waiting up to busy_timeout)
    # rather than read first and fail at once with SQLITE_BUSY when another connection
    # committed in between, which WAL mode reports without calling the busy handler.
    # Straight to the driver: SQLAlchemy's execution machinery costs more than the statement.
    connection.connection.driver_connection.execute("BEGIN IMMEDIATE")


class Checkpointer:
    """Checkpoints a WAL-mode SQLite file on a thread of its own, every
    ``CHECKPOINT_EVERY_COMMITS`` commits it is told of (PASSIVE: it never blocks the writer
    or readers, and SQLite copies what it can)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-checkpoint")
        self._connection: sqlite3.Connection | None = None
        self._commits = 0
        self._running: Future[None] | None = None

    def committed(self) -> None:
        """Called by the writer after each commit."""
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY_COMMITS and (
                self._running is None or self._running.done()):
            self._commits = 0
            self._running = self._thread.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._connection is None:
                self._connection = sqlite3.connect(self._path, timeout=10,
                                                   check_same_thread=False)
            self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:  # the next one retries; the writer's own bound still holds
            log.warning("WAL checkpoint of %s failed", self._path, exc_info=True)

    def wait(self) -> None:
        """Until the checkpoint under way, if any, is done."""
        if self._running is not None:
            self._running.result()

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        if self._connection is not None:
            self._connection.close()


class SqliteWriter:
    """Runs a function in one transaction on a thread of its own, through the standard
    library's sqlite3 driver, on one connection kept open for the writer's life.

    Through aiosqlite every statement, cursor, fetch and commit is a hand-off to its thread
    and back (thirteen per ingest batch); here a whole transaction is one. And an ORM
    Session per transaction (pool check-out, state machine, reset on return) cost more
    than the BEGIN and COMMIT it wraps. SQLite files only (an in-memory database is
    private to its connection)."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url.replace("+aiosqlite", "", 1), **JSON_CODEC)
        event.listen(self.engine, "connect", _writer_connection)
        event.listen(self.engine, "begin", _begin_immediate)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._connection: sa.Connection | None = None  # opened on, and used by, that thread
        self.checkpointer = Checkpointer(str(make_url(url).database))

    @staticmethod
    def usable_for(url: str) -> bool:
        database = make_url(url).database
        return url.startswith("sqlite") and bool(database) and database != ":memory:"

    async def run(self, work: Callable[[sa.Connection], T],
                  after_commit: Callable[[], None] | None = None) -> T:
        """``work`` in one transaction; ``after_commit`` runs on the same thread once it is
        committed (not after a rollback), before the next transaction starts."""
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._in_transaction, work, after_commit)

    def _in_transaction(self, work: Callable[[sa.Connection], T],
                        after_commit: Callable[[], None] | None) -> T:
        if self._connection is None or self._connection.invalidated:
            self._close_connection()
            self._connection = self.engine.connect()
        with self._connection.begin():
            result = work(self._connection)
        self.checkpointer.committed()
        if after_commit is not None:
            after_commit()
        return result

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        self._thread.submit(self._close_connection).result()
        self._thread.shutdown(wait=True)
        self.checkpointer.close()
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Apply pending migrations (blocking; call before the event loop or in a thread)."""
    _ensure_sqlite_dir(url) if url.startswith("sqlite") else None
    command.upgrade(alembic_config(url), "head")


async def migrate_async(url: str) -> None:
    await asyncio.to_thread(migrate, url)
