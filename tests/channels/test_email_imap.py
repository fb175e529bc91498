"""IMAP polling against a real Dovecot (Debian's dovecot-imapd) on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from channels.email import EmailChannel
from channels.email.imap import KEYWORD, ImapPoller, ImapSettings
from hub import events
from hub.services import Services
from hub.settings import Settings
from tests.channels.test_email import count_items, item_for, make_mail
from tests.conftest import REQUIRE_SERVICES, RunningHub

PASSWORD = "imap-secret"
CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{root}/mail/%u
first_valid_uid = 1
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


@dataclass(frozen=True)
class Dovecot:
    port: int
    root: Path

    def url(self, user: str, mailbox: str = "INBOX") -> str:
        return f"imap://{user}:{PASSWORD}@127.0.0.1:{self.port}/{mailbox}"

    def client(self, user: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        imap.login(user, PASSWORD)
        return imap


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} and OMOHUB_REQUIRE_SERVICES=1")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    log = (root / "dovecot.log").read_text(errors="replace") if (root / "dovecot.log").exists() \
        else ""
    pytest.fail(f"dovecot did not start on port {port}:\n{log[-2000:]}")


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    binary = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/sbin")
    if binary is None:
        _unavailable("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
    if os.geteuid() != 0:
        _unavailable("the test Dovecot needs root to run its mail processes as 'mail'")
    root = Path(tempfile.mkdtemp(prefix="omohub-dovecot-"))
    root.chmod(0o755)
    for folder in ("run", "state", "mail", "home"):
        (root / folder).mkdir()
    shutil.chown(root / "mail", "mail", "mail")
    shutil.chown(root / "home", "mail", "mail")
    port = _free_port()
    config = root / "dovecot.conf"
    config.write_text(CONFIG.format(root=root, port=port, password=PASSWORD))
    process = subprocess.Popen([str(binary), "-F", "-c", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, root)
        yield Dovecot(port, root)
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mailbox_user() -> str:
    return f"support-{uuid.uuid4().hex[:8]}"


def append(dovecot: Dovecot, user: str, raw: bytes, mailbox: str = "INBOX") -> None:
    imap = dovecot.client(user)
    try:
        status, _ = imap.append(mailbox, None, None, raw)
        assert status == "OK"
    finally:
        imap.logout()


def flags_and_count(dovecot: Dovecot, user: str, mailbox: str = "INBOX") -> tuple[int, bytes]:
    imap = dovecot.client(user)
    try:
        _, data = imap.select(mailbox)
        count = int(data[0] or 0)
        flags = imap.fetch("1:*", "(FLAGS)")[1] if count else []
        return count, b" ".join(f for f in flags if isinstance(f, bytes))
    finally:
        imap.logout()


@pytest.fixture
async def email_channel(services: Services) -> AsyncIterator[EmailChannel]:
    channel = services.adapters["email"]
    assert isinstance(channel, EmailChannel)
    yield channel


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, secret_key="test-secret-" + "x" * 32,
                    data_dir=str(tmp_path / "data"), support_address="support@example.com",
                    email_webhook_token="t" * 24)


async def test_poll_ingests_once_and_marks_without_reading(
        dovecot: Dovecot, mailbox_user: str, email_channel: EmailChannel,
        services: Services) -> None:
    first, first_id = make_mail(subject="IMAPのテスト", body="IMAP経由で届きました。")
    second, second_id = make_mail(charset="utf-8", body="二通目")
    await asyncio.to_thread(append, dovecot, mailbox_user, first)
    await asyncio.to_thread(append, dovecot, mailbox_user, second)
    poller = ImapPoller(ImapSettings.from_url(dovecot.url(mailbox_user)), email_channel.receive)
    try:
        assert await poller.poll_once() == 2
        assert await poller.poll_once() == 0
    finally:
        await poller.stop()
    item = await item_for(services, first_id)
    assert item is not None and item.text == "IMAP経由で届きました。"
    assert item.data["subject"] == "IMAPのテスト"
    assert await item_for(services, second_id) is not None
    count, flags = await asyncio.to_thread(flags_and_count, dovecot, mailbox_user)
    assert count == 2 and flags.count(KEYWORD.encode()) == 2
    assert b"\\Seen" not in flags  # BODY.PEEK: people using the mailbox still see it unread


async def test_processed_mail_is_moved_to_a_folder(
        dovecot: Dovecot, mailbox_user: str, email_channel: EmailChannel) -> None:
    raw, _ = make_mail()
    await asyncio.to_thread(append, dovecot, mailbox_user, raw)
    config = ImapSettings.from_url(dovecot.url(mailbox_user), processed_folder="Processed")
    poller = ImapPoller(config, email_channel.receive)
    try:
        assert await poller.poll_once() == 1
    finally:
        await poller.stop()
    inbox, _ = await asyncio.to_thread(flags_and_count, dovecot, mailbox_user)
    moved, _ = await asyncio.to_thread(flags_and_count, dovecot, mailbox_user, "Processed")
    assert (inbox, moved) == (0, 1)


async def test_a_crash_before_marking_is_deduplicated_on_the_next_poll(
        dovecot: Dovecot, mailbox_user: str, email_channel: EmailChannel,
        services: Services, monkeypatch: Any) -> None:
    raw, message_id = make_mail()
    await asyncio.to_thread(append, dovecot, mailbox_user, raw)
    poller = ImapPoller(ImapSettings.from_url(dovecot.url(mailbox_user)), email_channel.receive)

    def crash(_: bytes) -> None:
        raise ConnectionResetError("lost the server after the commit")

    try:
        with monkeypatch.context() as patch:
            patch.setattr(poller.mailbox, "mark_processed", crash)
            with pytest.raises(ConnectionResetError):
                await poller.poll_once()
        poller.mailbox.close()
        assert await poller.poll_once() == 1
        assert await poller.poll_once() == 0
    finally:
        await poller.stop()
    assert await count_items(services, channel="email", external_id=message_id) == 1


async def test_an_idle_that_times_out_reconnects_on_the_next_poll(
        dovecot: Dovecot, mailbox_user: str, email_channel: EmailChannel,
        services: Services) -> None:
    poller = ImapPoller(ImapSettings.from_url(dovecot.url(mailbox_user)), email_channel.receive)
    try:
        assert await poller.poll_once() == 0
        assert poller.mailbox.supports_idle
        await asyncio.to_thread(poller.mailbox.idle, 0.2)  # nothing arrives: times out
        raw, message_id = make_mail()
        await asyncio.to_thread(append, dovecot, mailbox_user, raw)
        assert await poller.poll_once() == 1
    finally:
        await poller.stop()
    assert await item_for(services, message_id) is not None


def test_imap_url_is_parsed() -> None:
    config = ImapSettings.from_url("imaps://me%40example.com:p%2Fw@mail.example.com/Support%20In")
    assert (config.host, config.port, config.ssl) == ("mail.example.com", 993, True)
    assert (config.user, config.password, config.mailbox) == ("me@example.com", "p/w",
                                                              "Support In")
    with pytest.raises(ValueError):
        ImapSettings.from_url("http://example.com")


class TestThroughTheHub:
    """The hub's lifespan starts the poller; IDLE brings new mail in without a poll."""

    @pytest.fixture
    def settings(self, database_url: str, tmp_path: Path, dovecot: Dovecot,
                 mailbox_user: str) -> Settings:
        return Settings(database_url=database_url, secret_key="test-secret-" + "x" * 32,
                        data_dir=str(tmp_path / "data"), support_address="support@example.com",
                        imap_url=dovecot.url(mailbox_user), imap_poll_seconds=600)

    async def test_idle_delivers_new_mail(self, hub: RunningHub, dovecot: Dovecot,
                                          mailbox_user: str) -> None:
        created: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def on_event(event: events.Event) -> None:
            if event.name == events.MESSAGE_CREATED and event.payload["channel"] == "email":
                await created.put(event.payload)

        hub.services.bus.subscribe(on_event)
        channel = hub.services.adapters["email"]
        assert isinstance(channel, EmailChannel) and channel.imap is not None
        await asyncio.wait_for(channel.imap.polled.wait(), 20)  # then it waits in IDLE
        raw, _ = make_mail(subject="IDLEで届く", body="すぐに届きます")
        await asyncio.to_thread(append, dovecot, mailbox_user, raw)
        payload = await asyncio.wait_for(created.get(), 20)  # poll_seconds is 600: IDLE did it
        assert payload["text"] == "すぐに届きます"
        assert payload["data"]["subject"] == "IDLEで届く"
