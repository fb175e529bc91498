"""Fixtures of the browser tests; the helpers themselves are in demo_hub.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.e2e.demo_hub import chromium

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium (a module that needs other flags overrides this fixture)."""
    with chromium() as instance:
        yield instance
