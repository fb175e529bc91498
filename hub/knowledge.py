"""The knowledge base in the database: import from Markdown, export back, load for the bot.

Markdown files with front matter are the source of truth for a shop's articles; importing
stores each as a row (keyed by id + locale) and keeps every change as a version.

The article row holds the text the bot answers from (the live version, while published).
An edit of a published article is not live at once: it is a pending draft, a newer
version, until it is published (the draft becomes the live version) or discarded (a newer
version restates the live text; history is append-only). An unpublished article has no
pending draft; it is edited in place. Importing publishes what it imports directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import yaml
from sqlalchemy import func, select
from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.identity import audit
from hub.models import Article, ArticleVersion, utcnow
from kb.articles import Article as KbArticle
from kb.articles import ArticleError, load_directory
from kb.embedding import keep_vectors_in, load_default_embedder
from kb.index import KnowledgeBase, embed_ahead
from kb.locales import normalize_locale

Progress = Callable[[int, int], None]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[ArticleError] = field(default_factory=list)
    discarded_drafts: list[str] = field(default_factory=list)  # ids whose live text changed


CONTENT = ("title", "body", "locale", "questions", "products", "tags")  # a version, whole
Content = Mapping[str, object]


def _row_values(article: KbArticle) -> dict[str, object]:
    return {"title": article.title, "body": article.body, "questions": list(article.questions),
            "products": list(article.products), "tags": list(article.tags)}


def _article_content(article: KbArticle) -> dict[str, object]:
    return {**_row_values(article), "locale": article.locale}


def _with_valid_locale(article: KbArticle) -> KbArticle:
    """The article with its locale in the usual spelling; ``InvalidLocale`` when it is not
    a language tag (the Markdown loader refuses such files before they get here)."""
    return replace(article, locale=normalize_locale(article.locale))


def _stated_update_time(article: KbArticle) -> datetime:
    """When the article says it was last updated (its front matter's ``updated``, a date
    read as midnight UTC), else now."""
    if article.updated is None:
        return utcnow()
    stated = datetime.fromisoformat(article.updated)
    return stated.replace(tzinfo=UTC) if stated.tzinfo is None else stated.astimezone(UTC)


def content_of(source: Article | ArticleVersion) -> dict[str, object]:
    """The text of an article row or of a version (lists copied)."""
    return {key: list(value) if isinstance(value := getattr(source, key), list) else value
            for key in CONTENT}


def _apply(row: Article, content: Content) -> None:
    for key in CONTENT:
        value = content[key]
        setattr(row, key, list(value) if isinstance(value, list | tuple) else value)


def record_version(session: AsyncSession, row: Article, actor_id: int | None,
                   draft: Content | None = None) -> None:
    """Keep the article as it now stands in its history (every change is a version) — or,
    given ``draft``, that text as the pending draft ``row.draft_version``."""
    content = content_of(row) if draft is None else {key: draft[key] for key in CONTENT}
    session.add(ArticleVersion(
        article_id=row.id, version=row.version if draft is None else row.draft_version,  # type: ignore[arg-type]
        published=row.published, draft=draft is not None, updated_by=actor_id, **content))


def live_version(row: Article) -> int | None:
    """The version the bot answers from — the article row's text — while the article is
    published (a pending draft is not live), none while it is not."""
    return row.version if row.published else None


def newest_version(row: Article) -> int:
    """The article's newest version: its pending draft if there is one."""
    return row.draft_version if row.draft_version is not None else row.version


async def find_version(session: AsyncSession, row: Article, number: int) -> ArticleVersion | None:
    return (await session.execute(select(ArticleVersion).where(
        ArticleVersion.article_id == row.id, ArticleVersion.version == number)
    )).scalars().first()


async def pending_draft(session: AsyncSession, row: Article) -> ArticleVersion | None:
    """The edit of a published article waiting to be published, if any."""
    if row.draft_version is None:
        return None
    return await find_version(session, row, row.draft_version)


class ArticleExists(ValueError):
    """An article with this id already exists (in any language): creating it again would
    overwrite someone's article."""

    def __init__(self, slug: str) -> None:
        super().__init__(f"an article with the id {slug} already exists")
        self.slug = slug


async def find_article(session: AsyncSession, slug: str,
                       to_change: bool = False) -> Article | None:
    """The article an id names. The editor addresses articles by id alone, so an id names
    one article whatever its language.

    ``to_change`` first takes the article's write lock for the rest of the transaction, so
    two saves at once number their versions one after the other instead of both writing
    the same next number (and the second silently overwriting the first)."""
    if to_change:
        await _lock_articles(session, slug)
    return (await session.execute(select(Article).where(Article.slug == slug)
                                  .order_by(Article.id).limit(1))).scalar_one_or_none()


async def _lock_articles(session: AsyncSession, slug: str) -> None:
    # An UPDATE that changes nothing: on PostgreSQL it locks the rows until commit; on
    # SQLite, whose driver begins a transaction only at the first write, it takes the
    # database's write lock before anything is read (a SELECT FOR UPDATE would be ignored).
    table = Article.__table__  # type: ignore[attr-defined]
    await session.execute(sa_update(table).where(table.c.slug == slug)
                          .values(slug=table.c.slug))


class EditConflict(Exception):
    """The article changed since the editor opened it (its newest version is not the one
    the edit started from)."""

    def __init__(self, slug: str, newest: int) -> None:
        super().__init__(f"article {slug} was changed by someone else since you opened it: "
                         f"version {newest} is now the newest; reload it and edit again")
        self.newest = newest


def check_edit_base(row: Article, base_version: int | None) -> None:
    """Refuse (``EditConflict``) an edit started from a version that is no longer the
    newest; an edit that names none is not checked (imports, scripts)."""
    if base_version is not None and base_version != newest_version(row):
        raise EditConflict(row.slug, newest_version(row))


async def create_article(session: AsyncSession, article: KbArticle, actor_id: int | None,
                         published: bool = False) -> Article:
    """Add a new article as version 1 — a draft the bot does not use until it is published,
    unless ``published``. Refuses (``ArticleExists``) an id that is taken, in any language,
    and (``InvalidLocale``) a locale that is not a language tag."""
    article = _with_valid_locale(article)
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
    """Save ``article``'s text (its language may change too) as a new version: over an
    unpublished article in place; for a published one as its pending draft, the live text
    untouched. False when nothing changed (no new version). ``InvalidLocale`` for a locale
    that is not a language tag."""
    content = _article_content(_with_valid_locale(article))
    return await _save(session, row, content, actor_id, "kb.update")


async def _save(session: AsyncSession, row: Article, content: Content, actor_id: int | None,
                action: str, always: bool = False, **details: object) -> bool:
    if row.published:
        draft = await pending_draft(session, row)
        if not always and content_of(draft if draft is not None else row) == dict(content):
            return False
        row.draft_version = newest_version(row) + 1
        record_version(session, row, actor_id, draft=content)
        audit(session, action, "article", row.id, actor_id, version=row.draft_version,
              draft=True, **details)
        return True
    if not always and content_of(row) == dict(content):
        return False
    _apply(row, content)
    row.version += 1
    row.updated_at = utcnow()
    row.updated_by = actor_id
    record_version(session, row, actor_id)
    audit(session, action, "article", row.id, actor_id, version=row.version, **details)
    return True


async def restore_version(session: AsyncSession, row: Article, number: int,
                          actor_id: int | None) -> bool:
    """Bring back version ``number``'s text as a new version (history is never rewritten):
    a published article's as its pending draft, an unpublished one's in place. False when
    there is no such version."""
    old = await find_version(session, row, number)
    if old is None:
        return False
    await _save(session, row, content_of(old), actor_id, "kb.restore", always=True,
                restored_version=number)
    return True


async def publish_article(session: AsyncSession, row: Article, actor_id: int | None) -> bool:
    """Make the article live: an unpublished one as a new version; a published one's pending
    draft becomes its live version. False when there is nothing to publish."""
    if row.published:
        draft = await pending_draft(session, row)
        if draft is None:
            return False
        _apply(row, content_of(draft))
        row.version, row.draft_version = draft.version, None
    else:
        row.published = True
        row.version += 1
        record_version(session, row, actor_id)
    row.updated_at = utcnow()
    row.updated_by = actor_id
    audit(session, "kb.publish", "article", row.id, actor_id, version=row.version)
    return True


async def unpublish_article(session: AsyncSession, row: Article, actor_id: int | None) -> bool:
    """Take the article away from the bot, as a new version; a pending draft becomes its text
    (an unpublished article is all draft). False when it is not published."""
    if not row.published:
        return False
    draft = await pending_draft(session, row)
    if draft is not None:
        _apply(row, content_of(draft))
    row.published = False
    row.version, row.draft_version = newest_version(row) + 1, None
    row.updated_at = utcnow()
    row.updated_by = actor_id
    record_version(session, row, actor_id)
    audit(session, "kb.unpublish", "article", row.id, actor_id, version=row.version)
    return True


async def discard_draft(session: AsyncSession, row: Article, actor_id: int | None) -> bool:
    """Drop a published article's pending edit. The draft stays in the history; a newer
    version restates the live text (so the history says so), the text the bot answers with
    unchanged. False when there is no pending draft."""
    if row.draft_version is None:
        return False
    discarded = row.draft_version
    row.version, row.draft_version = discarded + 1, None
    row.updated_at = utcnow()
    row.updated_by = actor_id
    record_version(session, row, actor_id)
    audit(session, "kb.discard", "article", row.id, actor_id, discarded_version=discarded,
          version=row.version)
    return True


async def import_articles(session: AsyncSession, articles: Sequence[KbArticle],
                          actor_id: int | None = None, progress: Progress | None = None,
                          actor_type: str = "agent") -> ImportReport:
    """Publish ``articles`` as they are; an article's ``updated`` (else the import time)
    becomes its update time when it is created or its text changes."""
    report = ImportReport()
    existing = {(a.slug, a.locale): a for a in (await session.execute(select(Article))).scalars()}
    for number, article in enumerate(articles, start=1):
        values = _row_values(article)
        row = existing.get((article.id, article.locale))
        if row is None:
            row = Article(slug=article.id, locale=article.locale,  # type: ignore[arg-type]
                          updated_at=_stated_update_time(article), **values)
            session.add(row)
            report.created += 1
        elif any(getattr(row, key) != value for key, value in values.items()):
            # imported text is live at once; a pending draft was an edit of the text it
            # replaces, so it is discarded (it stays in the history)
            if row.draft_version is not None:
                report.discarded_drafts.append(row.slug)
            for key, value in values.items():
                setattr(row, key, value)
            row.version, row.draft_version = newest_version(row) + 1, None
            row.updated_at = _stated_update_time(article)
            report.updated += 1
        else:
            report.unchanged += 1
            continue
        row.updated_by = actor_id
        await session.flush()
        record_version(session, row, actor_id)
        if progress:
            progress(number, len(articles))
    audit(session, "kb.import", "kb", None, actor_id, actor_type, created=report.created,
          updated=report.updated, discarded_drafts=report.discarded_drafts)
    return report


async def import_directory(session: AsyncSession, directory: Path,
                           progress: Progress | None = None,
                           actor_type: str = "agent") -> ImportReport:
    loaded = load_directory(directory)
    report = await import_articles(session, loaded.articles, progress=progress,
                                   actor_type=actor_type)
    report.errors = loaded.errors
    return report


async def published_articles(session: AsyncSession) -> list[KbArticle]:
    """The live text of every published article (never a pending draft): what the bot,
    search and agent suggestions answer from."""
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


async def export_directory(session: AsyncSession, directory: Path,
                           actor_type: str = "agent") -> int:
    rows = (await session.execute(select(Article).order_by(Article.locale, Article.slug))).scalars()
    count = 0
    for row in rows:
        folder = directory / row.locale
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{row.slug}.md").write_text(to_markdown(row), encoding="utf-8")
        count += 1
    audit(session, "kb.export", "kb", None, None, actor_type, count=count)
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
    """Changes whenever the live text changes: an article added, edited while unpublished,
    published (a draft too: its version becomes the live one), unpublished, or a draft
    discarded. Saving a pending draft leaves it as it is (the bot's text is the same)."""
    row = (await session.execute(select(
        func.count(Article.id), func.coalesce(func.sum(Article.version), 0),
        func.max(Article.updated_at)))).one()
    return tuple(row)
