"""Shared by the end-to-end tests (not a test module): Debian's Chromium and the rule for
when it is missing, a free loopback port, and a real hub (`omohub demo`) in a subprocess."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import REQUIRE_SERVICES

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]


def require_chromium() -> None:
    """At the top of a browser test module: skip it where Debian's Chromium is missing,
    fail instead when OMOHUB_REQUIRE_SERVICES=1."""
    if CHROMIUM.exists():
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{CHROMIUM} is missing and OMOHUB_REQUIRE_SERVICES=1 "
                    "(scripts/setup.sh --test installs Debian's chromium)", pytrace=False)
    pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} "
                "(apt-get install chromium)", allow_module_level=True)


@contextlib.contextmanager
def chromium(*extra_args: str) -> Iterator[Browser]:
    """Debian's Chromium under Playwright, with ``CHROMIUM_ARGS`` and ``extra_args``."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists()
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=[*CHROMIUM_ARGS, *extra_args])
        yield instance
        instance.close()


def signed_in(browser: Browser, hub_url: str, email: str, password: str,
              prepare: Callable[[Page], object] | None = None, **context: Any) -> Page:
    """A page in a new browser context (English, 1280×860 unless ``context`` says
    otherwise) signed in through /login; ``prepare`` sees the page before the login."""
    page = browser.new_context(**{"viewport": {"width": 1280, "height": 860},
                                  "locale": "en-US", **context}).new_page()
    if prepare is not None:
        prepare(page)
    page.goto(f"{hub_url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{hub_url}/")
    return page


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def omohub_command() -> list[str]:
    script = Path(sys.executable).with_name("omohub")
    if script.exists():
        return [str(script)]
    found = shutil.which("omohub")
    return [found] if found else [sys.executable, "-m", "hub.cli"]


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float,
                 log_path: Path | None = None) -> None:
    """Until ``url``/healthz answers 200; fails the test (with the log) when the process
    exits first or ``timeout`` seconds pass."""
    def log() -> str:
        return f":\n{log_path.read_text(errors='replace')}" if log_path else ""

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            pytest.fail(f"the hub at {url} exited with {process.returncode}{log()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the hub at {url} did not answer /healthz within {timeout:g} s{log()}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def database_path(data_dir: Path) -> Path:
    """The SQLite database of a hub started by ``running_demo(data_dir)``."""
    return data_dir / "omohub.db"


@contextlib.contextmanager
def running_demo(data_dir: Path, env: Mapping[str, str] | None = None,
                 drop_env: Iterable[str] = (), timeout: float = 60) -> Iterator[str]:
    """`omohub demo` on a free loopback port with its own SQLite database and data dir
    (``data_dir``), this process's environment plus ``env`` less ``drop_env`` and
    OMOHUB_REDIS_URL; logs to ``data_dir``/hub.log. Yields the hub's URL."""
    port = free_port()
    full_env = {**os.environ, **(env or {}),
                "OMOHUB_DATABASE_URL": f"sqlite+aiosqlite:///{database_path(data_dir)}",
                "OMOHUB_DATA_DIR": str(data_dir)}
    for name in ("OMOHUB_REDIS_URL", *drop_env):
        full_env.pop(name, None)
    log_path = data_dir / "hub.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*omohub_command(), "demo", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, timeout, log_path)
        yield url
    finally:
        stop(process)
