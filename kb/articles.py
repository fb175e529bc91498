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

``id`` and ``title`` are required; ``locale`` is a language tag (``kb.locales``; ``ja`` when
left out); ``questions``, ``products`` and ``tags`` are lists; ``updated`` is the date the
hub keeps as the article's update time (the import's time when left out). An id declared
by two files is an error in both, and neither is loaded.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import yaml

from kb.locales import normalize_locale

FRONT_MATTER_FENCE = "---"
REQUIRED_FIELDS = ("id", "title")
DEFAULT_LOCALE = "ja"  # of an article whose front matter names no locale
LIST_FIELDS = ("questions", "products", "tags")

T = TypeVar("T")


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    body: str
    locale: str = DEFAULT_LOCALE
    questions: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    updated: str | None = None  # ISO date (or date and time) from the front matter
    source: str | None = None
    source_line: int | None = None  # where ``id`` is declared in ``source``

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


def _as_str_tuple(value: object, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # one string would silently become one item
        raise ValueError(f"'{name}' must be a list of strings ('- ' items), not one string")
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return tuple(str(v) for v in value)
    raise ValueError(f"'{name}' must be a list of strings")


def _as_updated(value: object) -> str | None:
    """The front matter's ``updated`` as an ISO date (or date and time)."""
    if value is None:
        return None
    for parse in (dt.date.fromisoformat, dt.datetime.fromisoformat):
        try:
            return parse(str(value)).isoformat()
        except ValueError:
            continue
    raise ValueError(f"'updated' must be a date (YYYY-MM-DD), not {value!r}")


class _FrontMatterLoader(yaml.SafeLoader):
    """Safe YAML whose dates stay text: YAML's own date type would fail on a date such as
    2026-13-01 with no line to report, and ``_as_updated`` reads them anyway."""


_FrontMatterLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _parse_meta(front: str, path: str, first_line: int) -> dict[str, object]:
    try:
        meta = yaml.load(front, Loader=_FrontMatterLoader) or {}  # a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = first_line + (mark.line if mark else 0)
        raise ArticleError(path, line, f"invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ArticleError(path, first_line, f"invalid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise ArticleError(path, first_line, "front matter must be a mapping")
    return meta


@dataclass(frozen=True)
class _FrontMatter:
    text: str
    meta: dict[str, object]
    path: str
    first_line: int

    def line_of(self, name: str) -> int:
        for offset, line in enumerate(self.text.splitlines()):
            if line.startswith(f"{name}:"):
                return self.first_line + offset
        return self.first_line

    def read(self, name: str, parse: Callable[[object], T], default: object = None) -> T:
        """``parse`` the field; its ValueError becomes an ArticleError at the field's line."""
        try:
            return parse(self.meta.get(name, default))
        except ValueError as exc:
            raise ArticleError(self.path, self.line_of(name), str(exc)) from None


def parse_article(text: str, path: str = "<string>") -> Article:
    """Parse one article; raise ArticleError with path and line when it is malformed."""
    front, body, first_line = _split_front_matter(text, path)
    fields = _FrontMatter(front, _parse_meta(front, path, first_line), path, first_line)
    for name in REQUIRED_FIELDS:
        if not str(fields.meta.get(name) or "").strip():
            raise ArticleError(path, first_line, f"missing required field '{name}'")
    lists = {name: fields.read(name, partial(_as_str_tuple, name=name)) for name in LIST_FIELDS}
    locale = fields.read("locale", normalize_locale, default=DEFAULT_LOCALE)
    updated = fields.read("updated", _as_updated)
    if not body.strip():
        raise ArticleError(path, first_line + len(front.splitlines()) + 1, "empty body")
    return Article(
        id=str(fields.meta["id"]).strip(),
        title=str(fields.meta["title"]).strip(),
        body=body.strip(),
        locale=locale,
        updated=updated,
        source=path,
        source_line=fields.line_of("id"),
        **lists,
    )


def load_file(path: Path) -> Article:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ArticleError(str(path), line, "not valid UTF-8") from exc
    return parse_article(text, str(path))


def load_articles(paths: Iterable[Path]) -> LoadResult:
    """Load every file; a malformed one is recorded in ``errors`` and does not stop the rest.

    Files that declare the same id are all refused, each error naming the others: which one
    is meant cannot be told, and importing either could overwrite the article with the wrong
    text (the article already in the hub, if any, stays as it is)."""
    result = LoadResult()
    loaded: list[Article] = []
    for path in sorted(paths):
        try:
            loaded.append(load_file(path))
        except ArticleError as exc:
            result.errors.append(exc)
    declaring: dict[str, list[Article]] = defaultdict(list)
    for article in loaded:
        declaring[article.id].append(article)
    for article in loaded:
        if len(declaring[article.id]) == 1:
            result.articles.append(article)
        else:
            result.errors.append(_duplicate_id(article, declaring[article.id]))
    result.errors.sort(key=lambda error: (error.path, error.line))
    return result


def _duplicate_id(article: Article, declaring: list[Article]) -> ArticleError:
    others = ", ".join(f"{other.source}:{other.source_line}"
                       for other in declaring if other is not article)
    return ArticleError(str(article.source), article.source_line or 1,
                        f"duplicate id '{article.id}', also declared in {others}: "
                        "none of these files is imported")


def load_directory(directory: str | Path) -> LoadResult:
    """Load every ``*.md`` under ``directory`` (recursively)."""
    return load_articles(Path(directory).rglob("*.md"))


def default_articles_dir() -> Path:
    """The sample knowledge base shipped with omohub."""
    return Path(__file__).parent / "articles"
