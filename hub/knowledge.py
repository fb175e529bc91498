"""The knowledge base in the database: import from Markdown, export back, load for the bot.

Markdown files with front matter are the source of truth for a shop's articles; importing
stores each as a row (keyed by id + locale) and keeps every change as a version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.identity import audit
from hub.models import Article, ArticleVersion, utcnow
from kb.articles import Article as KbArticle
from kb.articles import ArticleError, load_directory
from kb.embedding import keep_vectors_in, load_default_embedder
from kb.index import KnowledgeBase, embed_ahead

Progress = Callable[[int, int], None]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[ArticleError] = field(default_factory=list)


def _row_values(article: KbArticle) -> dict[str, object]:
    return {"title": article.title, "body": article.body, "questions": list(article.questions),
            "products": list(article.products), "tags": list(article.tags)}


def record_version(session: AsyncSession, row: Article, actor_id: int | None) -> None:
    """Keep the article as it now stands in its history (every change is a version)."""
    session.add(ArticleVersion(article_id=row.id, version=row.version,  # type: ignore[arg-type]
                               title=row.title, body=row.body, questions=row.questions,
                               published=row.published, updated_by=actor_id))


def live_version(row: Article) -> int | None:
    """The version the bot answers from: the current one while the article is published
    (editing a published article changes what is live), none while it is not."""
    return row.version if row.published else None


class ArticleExists(ValueError):
    """An article with this id already exists (in any language): creating it again would
    overwrite someone's article."""

    def __init__(self, slug: str) -> None:
        super().__init__(f"an article with the id {slug} already exists")
        self.slug = slug


async def find_article(session: AsyncSession, slug: str) -> Article | None:
    """The article an id names. The editor addresses articles by id alone, so an id names
    one article whatever its language."""
    return (await session.execute(select(Article).where(Article.slug == slug)
                                  .order_by(Article.id).limit(1))).scalar_one_or_none()


async def create_article(session: AsyncSession, article: KbArticle, actor_id: int | None,
                         published: bool = False) -> Article:
    """Add a new article as version 1 — a draft the bot does not use until it is published,
    unless ``published``. Refuses (``ArticleExists``) an id that is taken, in any language."""
    if await find_article(session, article.id) is not None:
        raise ArticleExists(article.id)
    row = Article(slug=article.id, locale=article.locale, published=published,  # type: ignore[arg-type]
                  updated_by=actor_id, **_row_values(article))
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:  # created meanwhile; the caller's transaction rolls back
        raise ArticleExists(article.id) from exc
    record_version(session, row, actor_id)
    audit(session, "kb.create", "article", row.id, actor_id, published=published)
    return row


async def update_article(session: AsyncSession, row: Article, article: KbArticle,
                         actor_id: int | None) -> bool:
    """Save ``article``'s text over ``row`` as a new version (its language may change too);
    published or not stays as it is. False when nothing changed (no new version)."""
    values = {**_row_values(article), "locale": article.locale}
    if all(getattr(row, key) == value for key, value in values.items()):
        return False
    for key, value in values.items():
        setattr(row, key, value)
    row.version += 1
    row.updated_at = utcnow()
    row.updated_by = actor_id
    record_version(session, row, actor_id)
    audit(session, "kb.update", "article", row.id, actor_id, version=row.version)
    return True


async def import_articles(session: AsyncSession, articles: Sequence[KbArticle],
                          actor_id: int | None = None,
                          progress: Progress | None = None) -> ImportReport:
    report = ImportReport()
    existing = {(a.slug, a.locale): a for a in (await session.execute(select(Article))).scalars()}
    for number, article in enumerate(articles, start=1):
        values = _row_values(article)
        row = existing.get((article.id, article.locale))
        if row is None:
            row = Article(slug=article.id, locale=article.locale, **values)  # type: ignore[arg-type]
            session.add(row)
            report.created += 1
        elif any(getattr(row, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            row.version += 1
            row.updated_at = utcnow()
            report.updated += 1
        else:
            report.unchanged += 1
            continue
        row.updated_by = actor_id
        await session.flush()
        record_version(session, row, actor_id)
        if progress:
            progress(number, len(articles))
    audit(session, "kb.import", "kb", None, actor_id, created=report.created,
          updated=report.updated)
    return report


async def import_directory(session: AsyncSession, directory: Path,
                           progress: Progress | None = None) -> ImportReport:
    loaded = load_directory(directory)
    report = await import_articles(session, loaded.articles, progress=progress)
    report.errors = loaded.errors
    return report


async def published_articles(session: AsyncSession) -> list[KbArticle]:
    rows = (await session.execute(select(Article).where(Article.published.is_(True))
                                  .order_by(Article.id))).scalars()
    return [KbArticle(id=row.slug, title=row.title, body=row.body, locale=row.locale,
                      questions=tuple(row.questions), products=tuple(row.products),
                      tags=tuple(row.tags)) for row in rows]


def to_markdown(row: Article) -> str:
    meta = {"id": row.slug, "title": row.title, "locale": row.locale,
            "questions": row.questions, "products": row.products, "tags": row.tags,
            "updated": row.updated_at.date().isoformat()}
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False)
    return f"---\n{front}---\n\n{row.body.strip()}\n"


async def export_directory(session: AsyncSession, directory: Path) -> int:
    rows = (await session.execute(select(Article).order_by(Article.locale, Article.slug))).scalars()
    count = 0
    for row in rows:
        folder = directory / row.locale
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{row.slug}.md").write_text(to_markdown(row), encoding="utf-8")
        count += 1
    audit(session, "kb.export", "kb", None, None, count=count)
    return count


VECTOR_FILE = "kb-vectors.sqlite3"  # in the data dir


def vector_file(data_dir: str | Path) -> Path:
    return Path(data_dir) / VECTOR_FILE


def embed_for_the_bot(articles: Sequence[KbArticle], data_dir: str | Path,
                      progress: Callable[[int, int], None] | None = None) -> bool:
    """Store the vectors the bot's index needs, ahead of the hub's start (``omohub kb
    import``, the demo), so the bot answers at once; False without the model."""
    embedder = load_default_embedder()
    if embedder is None:
        return False
    keep_vectors_in(vector_file(data_dir))
    embed_ahead(articles, embedder, progress)
    return True


class KnowledgeCache:
    """The published articles, indexed once and rebuilt when they change — whoever changed
    them (the editor API, or `omohub kb import` from another process)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession],
                 vector_file: Path | None = None) -> None:
        self._sessions = sessions
        self._vector_file = vector_file
        self._kb: KnowledgeBase | None = None
        self._fingerprint: tuple[object, ...] | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> KnowledgeBase:
        async with self._lock:
            async with self._sessions() as session:
                fingerprint = await _fingerprint(session)
                if self._kb is None or fingerprint != self._fingerprint:
                    articles = await published_articles(session)
                    self._kb = await asyncio.to_thread(self._build, articles)
                    self._fingerprint = fingerprint
            return self._kb

    def _build(self, articles: Sequence[KbArticle]) -> KnowledgeBase:
        if self._vector_file is not None:
            keep_vectors_in(self._vector_file)
        return KnowledgeBase.from_articles(articles)

    def invalidate(self) -> None:
        self._kb = None


async def _fingerprint(session: AsyncSession) -> tuple[object, ...]:
    """Changes whenever an article is added, edited, published or unpublished."""
    row = (await session.execute(select(
        func.count(Article.id), func.coalesce(func.sum(Article.version), 0),
        func.max(Article.updated_at)))).one()
    return tuple(row)
