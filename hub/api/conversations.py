"""The inbox and one ticket: list, read, reply, note, assign, tag, resolve."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from hub import assist, links
from hub.api.deps import ServicesDep
from hub.models import Agent, Channel, Conversation, Status
from hub.presence import anyone_present
from hub.serialize import iso, item_json
from hub.tickets import InboxFilter, TicketError

CHANNELS = {c.value for c in Channel}
STATUSES = {s.value for s in Status}


class ReplyBody(msgspec.Struct):
    text: str
    channel: str | None = None
    internal: bool = False


class ConversationPatch(msgspec.Struct):
    status: str | msgspec.UnsetType = msgspec.UNSET
    assignee_id: int | msgspec.UnsetType | None = msgspec.UNSET
    tags: list[str] | msgspec.UnsetType = msgspec.UNSET
    handoff: str | msgspec.UnsetType = msgspec.UNSET


class LinkBody(msgspec.Struct):
    target: str


class ConversationController(Controller):
    path = "/conversations"
    tags: ClassVar[list[str]] = ["conversations"]

    @get("/")
    async def list_conversations(
        self, request: Request[Agent, str, Any], services: ServicesDep,
        status: FromQuery[str | None] = None, channel: FromQuery[str | None] = None,
        assignee: FromQuery[str | None] = None, customer_id: FromQuery[int | None] = None,
        q: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, description="at most 200 are sent")] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        if channel is not None and channel not in CHANNELS:
            raise TicketError("bad_channel", f"unknown channel {channel!r}", 400)
        if status and status not in STATUSES:
            raise TicketError("bad_status", "status must be open, pending or resolved", 400)
        if assignee and assignee not in {"me", "none", "unassigned"} and not assignee.isdigit():
            raise TicketError("bad_assignee",
                              "assignee must be me, none, unassigned or an agent id", 400)
        query = InboxFilter(status=status, channel=channel, assignee=assignee,
                            customer_id=customer_id, q=q, limit=limit, cursor=cursor)
        return await services.tickets.inbox(query, request.user.id)

    @get("/{conversation_id:int}")
    async def get_conversation(self, conversation_id: FromPath[int],
                               services: ServicesDep) -> dict[str, Any]:
        detail = await services.tickets.detail(conversation_id)
        customer = detail["customer"]
        customer["online"] = await anyone_present(services.presence, customer["identities"])
        return detail

    @get("/{conversation_id:int}/suggestions")
    async def suggestions(self, conversation_id: FromPath[int], services: ServicesDep,
                          limit: FromQuery[int] = 3) -> dict[str, Any]:
        """Agent assist: articles for the customer's latest question (``query``; null when
        they have asked nothing yet), scored as ``GET /api/kb/search`` scores them."""
        async with services.sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                raise TicketError("not_found", f"conversation {conversation_id} not found", 404)
            question = await assist.latest_question(session, conversation_id)
        knowledge = await services.knowledge.get()
        return assist.suggest(knowledge, conversation, question, max(1, min(limit, 10)))

    @post("/{conversation_id:int}/messages", status_code=201)
    async def reply(self, conversation_id: FromPath[int], data: JSONBody[ReplyBody],
                    request: Request[Agent, str, Any], services: ServicesDep) -> dict[str, Any]:
        limit = services.settings.max_text_chars
        if len(data.text) > limit:
            raise TicketError("too_long", f"text is longer than {limit} characters", 400)
        if data.channel is not None and data.channel not in CHANNELS:
            raise TicketError("bad_channel", f"unknown channel {data.channel!r}", 400)
        item = await services.tickets.reply(conversation_id, data.text,
                                            agent_id=request.user.id, channel=data.channel,
                                            internal=data.internal)
        return item_json(item)

    @patch("/{conversation_id:int}")
    async def update(self, conversation_id: FromPath[int], data: JSONBody[ConversationPatch],
                     request: Request[Agent, str, Any], services: ServicesDep) -> dict[str, Any]:
        changes = {field: getattr(data, field) for field in data.__struct_fields__
                   if getattr(data, field) is not msgspec.UNSET}
        handoff = changes.pop("handoff", None)
        if handoff not in {None, "bot"}:
            raise TicketError("bad_handoff", "handoff can only be set to bot (hand the "
                              "ticket back to the bot)", 400)
        if handoff == "bot":
            assistant = services.extras.get("assistant")
            if assistant is None:
                raise TicketError("bot_disabled", "the bot is switched off", 422)
            await assistant.hand_back(conversation_id)
        return await services.tickets.update(conversation_id, agent_id=request.user.id,
                                             changes=changes)

    @post("/{conversation_id:int}/links", status_code=201)
    async def create_link(self, conversation_id: FromPath[int], data: JSONBody[LinkBody],
                          request: Request[Agent, str, Any],
                          services: ServicesDep) -> dict[str, Any]:
        """A one-time code (and deep link + QR) that moves this ticket to another channel."""
        async with services.sessions() as session, session.begin():
            link = await links.issue(session, services.signer, services.settings,
                                     conversation_id, data.target, request.user.id)
        return {"code": link.code, "url": link.url, "qr_svg": link.qr_svg,
                "expires_at": iso(link.expires_at), "target": data.target}

    @post("/{conversation_id:int}/read", status_code=204)
    async def mark_read(self, conversation_id: FromPath[int], services: ServicesDep) -> None:
        await services.tickets.mark_read(conversation_id)
