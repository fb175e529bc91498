"""Knowledge base: bot retrieval with scores, and the supervisors' article editor.

A new article is a draft (the bot and search do not use it) until it is published;
``POST /articles`` only creates (409 for an id that exists), ``PUT /articles/{id}`` saves.
Saving a published article keeps the edit as a pending draft (``draft``) while the bot,
search and suggestions answer from the live text (the article's own fields, version
``live_version``) until ``/publish`` makes the draft live or ``/discard`` drops it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import select

from hub.api.deps import ServicesDep
from hub.assist import hit_json
from hub.auth import SUPERVISORS, require_role
from hub.knowledge import (
    ArticleExists,
    check_edit_base,
    create_article,
    discard_draft,
    find_article,
    live_version,
    publish_article,
    restore_version,
    unpublish_article,
    update_article,
)
from hub.models import Agent, Article, ArticleVersion
from hub.serialize import iso
from kb.articles import Article as KbArticle
from kb.articles import first_paragraph


class ArticleBody(msgspec.Struct):
    title: str
    body: str
    locale: str = "ja"
    questions: list[str] = []
    products: list[str] = []
    tags: list[str] = []
    # The newest version the editor's form was loaded from (its pending draft, else its
    # version): a save over a newer one is refused with 409 edit_conflict. Optional.
    base_version: int | None = None


class NewArticleBody(ArticleBody, kw_only=True):
    id: str


ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,120}")  # kb_articles.slug holds 120


def _kb_article(slug: str, data: ArticleBody) -> KbArticle:
    return KbArticle(id=slug, title=data.title.strip(), body=data.body, locale=data.locale,
                     questions=tuple(data.questions), products=tuple(data.products),
                     tags=tuple(data.tags))


def article_json(row: Article, full: bool = False) -> dict[str, Any]:
    """The article as the bot answers from it (its live text while published), with
    ``has_draft`` / ``draft_version`` when an edit of it is pending."""
    data: dict[str, Any] = {
        "id": row.slug, "title": row.title, "locale": row.locale, "published": row.published,
        "version": row.version, "live_version": live_version(row), "tags": row.tags,
        "products": row.products, "answer": first_paragraph(row.body),
        "updated_at": iso(row.updated_at), "has_draft": row.draft_version is not None,
        "draft_version": row.draft_version}
    if full:
        data.update(body=row.body, questions=row.questions)
    return data


def draft_json(version: ArticleVersion | None) -> dict[str, Any] | None:
    """A pending draft, whole: what the editor edits, and what ``/publish`` makes live."""
    if version is None:
        return None
    return {"version": version.version, "title": version.title, "body": version.body,
            "locale": version.locale, "questions": version.questions,
            "products": version.products, "tags": version.tags,
            "answer": first_paragraph(version.body), "updated_by": version.updated_by,
            "updated_at": iso(version.created_at)}


class RestoreBody(msgspec.Struct):
    version: int


class KnowledgeController(Controller):
    path = "/kb"
    tags: ClassVar[list[str]] = ["knowledge base"]

    @get("/search")
    async def search(self, services: ServicesDep, q: FromQuery[str] = "",
                     locale: FromQuery[str | None] = None,
                     product: FromQuery[str | None] = None,
                     limit: FromQuery[int] = 5) -> dict[str, Any]:
        knowledge = await services.knowledge.get()
        query = q[: services.settings.max_text_chars]
        hits = knowledge.search(query, locale=locale, product=product, limit=max(1, min(limit, 20)))
        decision = knowledge.decide(query, locale=locale, product=product)
        return {
            "items": [hit_json(hit) for hit in hits],
            "decision": {"answer": decision.answer.article_id if decision.answer else None,
                         "confidence": decision.confidence, "reason": decision.reason,
                         "threshold": knowledge.threshold}}

    @get("/articles")
    async def list_articles(self, services: ServicesDep,
                            locale: FromQuery[str | None] = None) -> dict[str, Any]:
        async with services.sessions() as session:
            query = select(Article).order_by(Article.locale, Article.slug)
            if locale:
                query = query.where(Article.locale == locale)
            rows = (await session.execute(query)).scalars().all()
        return {"items": [article_json(row) for row in rows]}

    @get("/articles/{slug:str}")
    async def get_article(self, slug: FromPath[str], services: ServicesDep) -> dict[str, Any]:
        return await _article_detail(services, slug)

    @post("/articles")
    async def create(self, data: JSONBody[NewArticleBody], request: Request[Agent, str, Any],
                     services: ServicesDep) -> dict[str, Any]:
        """Create an article as an unpublished draft, version 1 (supervisors); an id that
        exists, in any language, is refused with 409 rather than overwritten."""
        require_role(request.user, *SUPERVISORS)
        if not ID_PATTERN.fullmatch(data.id):
            raise ClientException("the id may contain only letters, digits and hyphens "
                                  "(1 to 120 of them)")
        if not data.title.strip():
            raise ClientException("the title is required")
        async with services.sessions() as session, session.begin():
            await _create(session, _kb_article(data.id, data), request.user.id)
        return await _article_detail(services, data.id)

    @put("/articles/{slug:str}")
    async def save_article(self, slug: FromPath[str], data: JSONBody[ArticleBody],
                           request: Request[Agent, str, Any],
                           services: ServicesDep) -> dict[str, Any]:
        """Save an article (supervisors); every change is a new version, and published or
        not stays as it is. A published article's edit is its pending draft (``draft``): the
        bot keeps the live text until it is published. An id not taken yet creates the
        article, as a draft."""
        require_role(request.user, *SUPERVISORS)
        article = _kb_article(slug, data)
        async with services.sessions() as session, session.begin():
            row = await find_article(session, slug, to_change=True)
            if row is None:
                await _create(session, article, request.user.id)
            else:
                check_edit_base(row, data.base_version)
                await update_article(session, row, article, request.user.id)
        # what the bot answers with is unchanged (a draft, or an unpublished article): the
        # index is left as it is
        return await _article_detail(services, slug)

    @post("/articles/{slug:str}/publish", status_code=200)
    async def publish(self, slug: FromPath[str], request: Request[Agent, str, Any],
                      services: ServicesDep) -> dict[str, Any]:
        return await _change_live_text(slug, publish_article, request.user, services)

    @post("/articles/{slug:str}/unpublish", status_code=200)
    async def unpublish(self, slug: FromPath[str], request: Request[Agent, str, Any],
                        services: ServicesDep) -> dict[str, Any]:
        return await _change_live_text(slug, unpublish_article, request.user, services)

    @post("/articles/{slug:str}/discard", status_code=200)
    async def discard(self, slug: FromPath[str], request: Request[Agent, str, Any],
                      services: ServicesDep) -> dict[str, Any]:
        """Drop a published article's pending draft (supervisors): the live text stays; the
        draft stays in the history, and a newer version restates the live text."""
        return await _change_live_text(slug, discard_draft, request.user, services)

    @post("/articles/{slug:str}/restore", status_code=200)
    async def restore(self, slug: FromPath[str], data: JSONBody[RestoreBody],
                      request: Request[Agent, str, Any], services: ServicesDep) -> dict[str, Any]:
        """Bring back an earlier version's text as a new version (history is never
        rewritten); published or not stays as it is — on a published article the restored
        text is a pending draft, live once published. Supervisors."""
        require_role(request.user, *SUPERVISORS)
        async with services.sessions() as session, session.begin():
            row = await _article(session, slug, to_change=True)
            if not await restore_version(session, row, data.version, request.user.id):
                raise NotFoundException(f"article {slug} has no version {data.version}")
        return await _article_detail(services, slug)


async def _create(session: Any, article: KbArticle, actor_id: int | None) -> None:
    try:
        await create_article(session, article, actor_id)
    except ArticleExists as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc


async def _article(session: Any, slug: str, to_change: bool = False) -> Article:
    row = await find_article(session, slug, to_change)
    if row is None:
        raise NotFoundException(f"article {slug} not found")
    return row  # type: ignore[no-any-return]


async def _article_detail(services: ServicesDep, slug: str) -> dict[str, Any]:
    async with services.sessions() as session:
        row = await _article(session, slug)
        versions = (await session.execute(select(ArticleVersion).where(
            ArticleVersion.article_id == row.id).order_by(ArticleVersion.version.desc())
        )).scalars().all()
    draft = next((v for v in versions if v.version == row.draft_version), None)
    live = live_version(row)
    # "published": whether the article was published when that version was made (history);
    # "live": the version the bot answers from now — none while the article is unpublished;
    # "draft": saved as an edit of the live text; "pending": the draft waiting to be published
    return {**article_json(row, full=True), "draft": draft_json(draft), "versions": [
        {"version": v.version, "title": v.title, "body": v.body, "locale": v.locale,
         "questions": v.questions, "products": v.products, "tags": v.tags,
         "published": v.published, "live": v.version == live, "draft": v.draft,
         "pending": v.version == row.draft_version, "updated_by": v.updated_by,
         "created_at": iso(v.created_at)} for v in versions]}


async def _change_live_text(slug: str, change: Callable[[Any, Article, int | None],
                                                      Awaitable[bool]],
                            agent: Agent, services: ServicesDep) -> dict[str, Any]:
    """Publish, unpublish or discard a draft (supervisors); the bot's index is rebuilt when
    what it answers with changed."""
    require_role(agent, *SUPERVISORS)
    async with services.sessions() as session, session.begin():
        row = await _article(session, slug, to_change=True)
        changed = await change(session, row, agent.id)
        result = article_json(row)
    if changed:
        services.knowledge.invalidate()
    return result
