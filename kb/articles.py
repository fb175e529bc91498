"""Knowledge-base articles: Markdown files with a YAML front matter block.

```
---
id: returns-policy
title: Returns and exchanges
locale: en
questions:
  - Can I return an item?
products: [OMO-TEA-001]
tags: [returns]
updated: 2026-11-01
---
Short answer paragraph.

Longer details…
```
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

FRONT_MATTER_FENCE = "---"
REQUIRED_FIELDS = ("id", "title")
LIST_FIELDS = ("questions", "products", "tags")


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    body: str
    locale: str = "ja"
    questions: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    updated: str | None = None
    source: str | None = None

    @property
    def short_answer(self) -> str:
        """The first paragraph of the body: what the bot says in a chat bubble."""
        return first_paragraph(self.body)


class ArticleError(ValueError):
    """A malformed article file, with the path and 1-based line where it went wrong."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


@dataclass
class LoadResult:
    articles: list[Article] = field(default_factory=list)
    errors: list[ArticleError] = field(default_factory=list)


def first_paragraph(body: str) -> str:
    for block in body.strip().split("\n\n"):
        text = " ".join(line.strip() for line in block.splitlines() if line.strip())
        if text:
            return text
    return ""


def _split_front_matter(text: str, path: str) -> tuple[str, str, int]:
    """Return (front matter, body, line number where the front matter starts)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != FRONT_MATTER_FENCE:
        raise ArticleError(path, 1, "missing front matter: the file must start with '---'")
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() == FRONT_MATTER_FENCE:
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1 :]), 2
    raise ArticleError(path, len(lines), "front matter is not closed by a '---' line")


def _as_str_tuple(value: object, name: str, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return tuple(str(v) for v in value)
    raise ArticleError(path, 1, f"'{name}' must be a list of strings")


def _parse_meta(front: str, path: str, first_line: int) -> dict[str, object]:
    try:
        meta = yaml.safe_load(front) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = first_line + (mark.line if mark else 0)
        raise ArticleError(path, line, f"invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ArticleError(path, first_line, f"invalid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise ArticleError(path, first_line, "front matter must be a mapping")
    return meta


def _field_line(front: str, name: str, first_line: int) -> int:
    for offset, line in enumerate(front.splitlines()):
        if line.startswith(f"{name}:"):
            return first_line + offset
    return first_line


def parse_article(text: str, path: str = "<string>") -> Article:
    """Parse one article; raise ArticleError with path and line when it is malformed."""
    front, body, first_line = _split_front_matter(text, path)
    meta = _parse_meta(front, path, first_line)
    for name in REQUIRED_FIELDS:
        if not str(meta.get(name) or "").strip():
            raise ArticleError(path, first_line, f"missing required field '{name}'")
    lists = {}
    for name in LIST_FIELDS:
        try:
            lists[name] = _as_str_tuple(meta.get(name), name, path)
        except ArticleError as exc:
            raise ArticleError(path, _field_line(front, name, first_line), exc.message) from None
    if not body.strip():
        raise ArticleError(path, first_line + len(front.splitlines()) + 1, "empty body")
    updated = meta.get("updated")
    return Article(
        id=str(meta["id"]).strip(),
        title=str(meta["title"]).strip(),
        body=body.strip(),
        locale=str(meta.get("locale") or "ja").strip(),
        updated=updated.isoformat() if isinstance(updated, dt.date) else _opt_str(updated),
        source=path,
        **lists,
    )


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def load_file(path: Path) -> Article:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ArticleError(str(path), line, "not valid UTF-8") from exc
    return parse_article(text, str(path))


def load_articles(paths: Iterable[Path]) -> LoadResult:
    """Load every file; a malformed one is recorded in ``errors`` and does not stop the rest."""
    result = LoadResult()
    seen: dict[str, str] = {}
    for path in sorted(paths):
        try:
            article = load_file(path)
        except ArticleError as exc:
            result.errors.append(exc)
            continue
        if article.id in seen:
            message = f"duplicate id '{article.id}' (also in {seen[article.id]})"
            result.errors.append(ArticleError(str(path), 1, message))
            continue
        seen[article.id] = str(path)
        result.articles.append(article)
    return result


def load_directory(directory: str | Path) -> LoadResult:
    """Load every ``*.md`` under ``directory`` (recursively)."""
    return load_articles(Path(directory).rglob("*.md"))


def default_articles_dir() -> Path:
    """The sample knowledge base shipped with omohub."""
    return Path(__file__).parent / "articles"
