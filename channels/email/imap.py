"""IMAP polling of an existing mailbox, with IDLE where the server offers it.

Each message is fetched with ``BODY.PEEK[]`` (humans still see it unread), handed to the
hub, and only after the commit marked with the ``$OmohubProcessed`` keyword — or moved to
``OMOHUB_IMAP_PROCESSED_FOLDER`` when set — so nothing is read twice. A crash between
commit and mark is harmless: the next poll finds the message again and ``Message-ID``
deduplicates it. ``imaplib`` is blocking, so every IMAP call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from hub.background import wait_for_event
from hub.settings import Settings

log = logging.getLogger(__name__)

KEYWORD = "$OmohubProcessed"
MAX_FETCH_BYTES = 25 * 1024 * 1024
_IDLE_TAG = b"OMOIDLE"
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")

Deliver = Callable[[bytes, str | None], Awaitable[Any]]


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    ssl: bool
    user: str
    password: str
    mailbox: str = "INBOX"
    processed_folder: str | None = None
    poll_seconds: float = 60.0

    @classmethod
    def from_url(cls, url: str, processed_folder: str | None = None,
                 poll_seconds: float = 60.0) -> ImapSettings:
        parts = urlsplit(url)
        if parts.scheme not in {"imap", "imaps"} or not parts.hostname:
            raise ValueError("OMOHUB_IMAP_URL must look like imap[s]://user:pass@host/MAILBOX")
        secure = parts.scheme == "imaps"
        return cls(host=parts.hostname, port=parts.port or (993 if secure else 143),
                   ssl=secure, user=unquote(parts.username or ""),
                   password=unquote(parts.password or ""),
                   mailbox=unquote(parts.path.lstrip("/")) or "INBOX",
                   processed_folder=processed_folder or None, poll_seconds=poll_seconds)

    @classmethod
    def from_settings(cls, settings: Settings) -> ImapSettings:
        return cls.from_url(settings.imap_url or "", settings.imap_processed_folder,
                            settings.imap_poll_seconds)


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Mailbox:
    """A blocking IMAP session on one mailbox (call from a worker thread)."""

    def __init__(self, config: ImapSettings) -> None:
        self.config = config
        self.imap: imaplib.IMAP4 | None = None
        self.use_keyword = True

    def connect(self) -> None:
        config = self.config
        factory = imaplib.IMAP4_SSL if config.ssl else imaplib.IMAP4
        imap = factory(config.host, config.port, timeout=30)
        imap.login(config.user, config.password)
        _, capabilities = imap.capability()  # the list grows after login (MOVE, UIDPLUS)
        if capabilities and isinstance(capabilities[0], bytes):
            imap.capabilities = tuple(capabilities[0].decode().upper().split())
        if config.processed_folder:
            imap.create(_quote(config.processed_folder))  # NO when it exists: fine
        status, _ = imap.select(_quote(config.mailbox))
        if status != "OK":
            raise imaplib.IMAP4.error(f"cannot select {config.mailbox!r}")
        flags = imap.response("PERMANENTFLAGS")[1]
        self.use_keyword = any(b"\\*" in (f or b"") for f in flags if isinstance(f, bytes))
        self.imap = imap

    @property
    def supports_idle(self) -> bool:
        return self.imap is not None and "IDLE" in self.imap.capabilities

    def _session(self) -> imaplib.IMAP4:
        if self.imap is None:
            self.connect()
        assert self.imap is not None
        return self.imap

    def pending(self) -> list[bytes]:
        imap = self._session()
        for name in ("EXISTS", "RECENT"):  # what we search now needs no wake-up later
            imap.untagged_responses.pop(name, None)
        criteria = f"UNKEYWORD {KEYWORD} UNDELETED" if self.use_keyword else "UNSEEN UNDELETED"
        status, data = imap.uid("SEARCH", *criteria.split())
        if status != "OK" or not data or not data[0]:
            return []
        return list(data[0].split())

    def size(self, uid: bytes) -> int:
        _, data = self._session().uid("FETCH", uid, "(RFC822.SIZE)")
        match = _SIZE.search(data[0] if data and isinstance(data[0], bytes) else b"")
        return int(match.group(1)) if match else 0

    def fetch(self, uid: bytes) -> bytes | None:
        _, data = self._session().uid("FETCH", uid, "(BODY.PEEK[])")
        for entry in data or []:
            if isinstance(entry, tuple) and len(entry) == 2:
                return bytes(entry[1])
        return None

    def mark_processed(self, uid: bytes) -> None:
        imap = self._session()
        flag = f"({KEYWORD})" if self.use_keyword else "(\\Seen)"
        imap.uid("STORE", uid, "+FLAGS.SILENT", flag)
        folder = self.config.processed_folder
        if not folder or folder == self.config.mailbox:
            return
        if "MOVE" in imap.capabilities:
            imap.uid("MOVE", uid, _quote(folder))
            return
        status, _ = imap.uid("COPY", uid, _quote(folder))
        if status == "OK":
            imap.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
            imap.expunge()

    def idle(self, seconds: float) -> None:
        """Wait in IDLE until the server reports new mail or ``seconds`` pass."""
        imap = self._session()
        if "EXISTS" in imap.untagged_responses:  # mail arrived during our last commands
            return
        imap.send(_IDLE_TAG + b" IDLE\r\n")
        if not imap.readline().startswith(b"+"):
            raise imaplib.IMAP4.error("server refused IDLE")
        imap.socket().settimeout(seconds)
        try:
            while True:
                line = imap.readline()
                if not line:
                    raise imaplib.IMAP4.abort("connection closed during IDLE")
                if b"EXISTS" in line or b"RECENT" in line:
                    break
        except TimeoutError:
            self.close()  # a timed-out socket file cannot be read again: reconnect next poll
            return
        imap.socket().settimeout(30)
        imap.send(b"DONE\r\n")
        while True:
            line = imap.readline()
            if not line:
                raise imaplib.IMAP4.abort("connection closed during IDLE")
            if line.startswith(_IDLE_TAG):
                return

    def close(self) -> None:
        imap, self.imap = self.imap, None
        if imap is None:
            return
        with contextlib.suppress(Exception):
            imap.socket().shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            imap.shutdown()


class ImapPoller:
    """Runs ``poll_once`` then waits (IDLE or sleep), forever, on the hub's event loop."""

    def __init__(self, config: ImapSettings, deliver: Deliver) -> None:
        self.config = config
        self.deliver = deliver
        self.mailbox = Mailbox(config)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.polls = 0
        self.polled = asyncio.Event()  # set after each completed poll (for tests, health)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="imap-poller")

    async def stop(self) -> None:
        self._stopping.set()
        self.mailbox.close()  # unblocks a worker thread waiting in IDLE
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def poll_once(self) -> int:
        """Hand every unprocessed message to the hub; returns how many were handled."""
        handled = 0
        for uid in await asyncio.to_thread(self.mailbox.pending):
            if self._stopping.is_set():
                break
            if await self._handle(uid):
                handled += 1
        self.polls += 1
        self.polled.set()
        return handled

    async def _handle(self, uid: bytes) -> bool:
        if await asyncio.to_thread(self.mailbox.size, uid) > MAX_FETCH_BYTES:
            log.warning("IMAP message %s is over 25 MB; left in the mailbox, marked", uid)
            await asyncio.to_thread(self.mailbox.mark_processed, uid)
            return False
        raw = await asyncio.to_thread(self.mailbox.fetch, uid)
        if raw is None:
            return False
        await self.deliver(raw, None)  # returns after the commit
        await asyncio.to_thread(self.mailbox.mark_processed, uid)
        return True

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                await self.poll_once()
                failures = 0
                await self._wait()
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("IMAP poll failed (%s in a row)", failures)
                self.mailbox.close()
                await self._sleep(min(300.0, 2.0 ** min(failures, 8)))

    async def _wait(self) -> None:
        if self.mailbox.supports_idle:
            await asyncio.to_thread(self.mailbox.idle, min(self.config.poll_seconds, 1500))
        else:
            await self._sleep(self.config.poll_seconds)

    async def _sleep(self, seconds: float) -> None:
        await wait_for_event(self._stopping, seconds)
