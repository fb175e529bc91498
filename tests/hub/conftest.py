"""Fixtures shared by the hub's API tests about the knowledge base."""

from __future__ import annotations

import pytest

from hub.knowledge import import_directory
from kb.articles import default_articles_dir
from tests.conftest import RunningHub


@pytest.fixture
def lexical_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retrieval without the embedding model: fast, and the same on every machine."""
    monkeypatch.setenv("OMOHUB_KB_EMBEDDINGS", "0")


@pytest.fixture
async def kb_hub(hub: RunningHub) -> RunningHub:
    """A hub with the sample knowledge base imported (published)."""
    async with hub.services.sessions() as session, session.begin():
        await import_directory(session, default_articles_dir())
    return hub
