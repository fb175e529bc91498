"""Web chat: the customer's browser on Socket.IO namespace ``/webchat``.

A signed visitor token names the visitor, so a reload or a new tab continues the same
customer and ticket. Everything the customer sends goes through the hub's ingest; every
reply comes back through the outbox and ``send``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from typing import Any

import socketio
from sqlalchemy import select

from channels.base import Capabilities, Inbound, Outbound, SendResult
from hub import events, links
from hub.assistant import bot_will_answer, live_quick_replies
from hub.ingest import IngestResult
from hub.links import LinkError
from hub.models import Conversation, Identity
from hub.realtime import ack_error
from hub.security import BadToken
from hub.serialize import customer_item_json, iso
from hub.services import Services

log = logging.getLogger(__name__)

NAMESPACE = "/webchat"
VISITOR_TOKEN = "visitor"
_CONTEXT_VALUE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_LOCALES = {"ja", "en"}


def visitor_room(visitor_id: str) -> str:
    return f"visitor:{visitor_id}"


def clean_context(value: Any) -> str | None:
    return value if isinstance(value, str) and _CONTEXT_VALUE.match(value) else None


class WebChat:
    """The web chat channel adapter."""

    name = "web"
    capabilities = Capabilities(text_limit=10_000, quick_replies=True, identity_kind="web",
                                media_types=("image/png", "image/jpeg", "image/gif",
                                             "image/webp"))

    def __init__(self, services: Services) -> None:
        self.services = services
        self.namespace = WebChatNamespace(self)
        self.presence = services.presence

    def new_visitor_token(self) -> tuple[str, str]:
        visitor_id = secrets.token_urlsafe(16)
        return visitor_id, self.sign(visitor_id)

    def sign(self, visitor_id: str) -> str:
        days = self.services.settings.visitor_token_days
        return self.services.signer.sign(VISITOR_TOKEN, {"v": visitor_id}, days * 86400)

    def visitor_of(self, token: str) -> str:
        visitor_id = self.services.signer.unsign(VISITOR_TOKEN, token).get("v")
        if not isinstance(visitor_id, str):
            raise BadToken("token names no visitor")
        return visitor_id

    async def receive(self, inbound: Inbound) -> IngestResult:
        result = await self.services.ingestor.ingest(inbound)
        await self.namespace.after_ingest(inbound.identity_value, result)
        if bot_will_answer(self.services.settings, result):  # its answer hides the dots
            await self.services.sio.emit("typing", {"sender_type": "bot", "typing": True},
                                         room=visitor_room(inbound.identity_value),
                                         namespace=NAMESPACE)
        if result.opened and await self.presence.present(inbound.identity_value):
            # a first message makes the visitor a customer: only now can agents be told
            await self._publish_presence(result.customer.id, online=True)  # type: ignore[arg-type]
        return result

    async def issue_link(self, visitor_id: str, target: str) -> links.IssuedLink | None:
        conversation_id, _ = await self.services.tickets.customer_view("web", visitor_id, 0)
        if conversation_id is None:
            return None
        services = self.services
        async with services.sessions() as session, session.begin():
            return await links.issue(session, services.signer, services.settings,
                                     conversation_id, target)

    async def redeem_link(self, code: str, visitor_id: str) -> links.Redeemed | None:
        """A visitor who opened a /chat?link=CODE page joins the ticket the code carries."""
        found = links.find_code(code)
        if found is None:
            return None
        async with self.services.sessions() as session, session.begin():
            return await links.redeem(session, self.services.signer, found, "web", visitor_id)

    async def with_live_quick_replies(self, conversation_id: int | None,
                                      items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """History shows the quick replies of the one bot message that still takes them
        (the newest, while the bot has the ticket); older ones are history, not buttons."""
        if conversation_id is None or not items:
            return items
        async with self.services.sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
            live = (await live_quick_replies(session, conversation)
                    if conversation is not None else None)
        if live is not None:
            for item in items:
                if item["id"] == live[0]:
                    item["quick_replies"] = live[1]
        return items

    async def send(self, outbound: Outbound) -> SendResult:
        payload = {
            "id": outbound.item_id, "conversation_id": outbound.conversation_id,
            "sender_type": outbound.sender_type, "text": outbound.text,
            "attachments": list(outbound.attachments), "created_at": iso(outbound.created_at),
            "quick_replies": outbound.data.get("quick_replies", []),
        }
        await self.services.sio.emit("message", payload, room=visitor_room(outbound.recipient),
                                     namespace=NAMESPACE)
        return SendResult(ok=True,
                          recipient_away=not await self.presence.present(outbound.recipient))

    async def start(self) -> None:
        """With several hub processes, a visitor whose tabs died with another process is
        said to be offline too (within the presence heartbeat)."""
        self.presence.watch(self._gone_with_a_process)

    async def _gone_with_a_process(self, visitor_id: str) -> None:
        await self._tell_agents(visitor_id, online=False)

    async def arrive(self, visitor_id: str, sid: str) -> None:
        """A tab opened; the agents hear of it when it is the visitor's first."""
        was_present = await self.presence.present(visitor_id)
        await self.presence.arrive(visitor_id, sid)
        if not was_present:
            await self._tell_agents(visitor_id, online=True)

    async def leave(self, visitor_id: str, sid: str) -> None:
        await self.presence.leave(visitor_id, sid)
        if not await self.presence.present(visitor_id):
            await self._tell_agents(visitor_id, online=False)

    async def _tell_agents(self, visitor_id: str, online: bool) -> None:
        async with self.services.sessions() as session:
            customer_id = (await session.execute(select(Identity.customer_id).where(
                Identity.kind == "web", Identity.value == visitor_id))).scalar_one_or_none()
        if customer_id is not None:  # a visitor who never wrote is nobody's customer yet
            await self._publish_presence(customer_id, online)

    async def _publish_presence(self, customer_id: int, online: bool) -> None:
        await self.services.bus.publish(events.Event(
            events.CUSTOMER_PRESENCE, {"customer_id": customer_id, "online": online}))

    async def on_event(self, event: events.Event) -> None:
        """Agents typing reach the customer's open chat windows; after a merge or unmerge
        they are told which ticket they write into now."""
        if event.name == events.CUSTOMER_MERGED:
            await self._resend_sessions(event.payload["customer_id"], event.payload["other_id"])
            return
        if event.name != events.TYPING or event.payload.get("sender_type") != "agent":
            return
        visitors = await self.services.tickets.identities_of_conversation(
            event.conversation_id or 0, "web")
        for visitor_id in visitors:
            await self.services.sio.emit(
                "typing", {"sender_type": "agent", "typing": event.payload["typing"]},
                room=visitor_room(visitor_id), namespace=NAMESPACE)

    async def _resend_sessions(self, *customer_ids: int) -> None:
        async with self.services.sessions() as session:
            visitors = (await session.execute(select(Identity.value).where(
                Identity.kind == "web", Identity.customer_id.in_(customer_ids)))).scalars().all()
        for visitor_id in visitors:
            conversation_id, _ = await self.services.tickets.customer_view(
                "web", visitor_id, limit=0)
            await self.tell_tabs_their_ticket(visitor_id, conversation_id)

    async def tell_tabs_their_ticket(self, visitor_id: str,
                                     conversation_id: int | None) -> None:
        """A new ``session`` for every open tab of the visitor: the ticket they write into."""
        await self.services.sio.emit(
            "session", {"visitor_token": self.sign(visitor_id),
                        "conversation_id": conversation_id},
            room=visitor_room(visitor_id), namespace=NAMESPACE)


def local_sids(server: socketio.AsyncServer, room: str) -> list[str] | None:
    """The sockets in a visitor's room, or None when they cannot all be seen from here
    (with Redis, other hub processes hold sockets too)."""
    manager = server.manager
    if type(manager) is not socketio.AsyncManager:
        return None
    return [sid for sid, _ in manager.get_participants(NAMESPACE, room)]


class WebChatNamespace(socketio.AsyncNamespace):
    def __init__(self, channel: WebChat) -> None:
        super().__init__(NAMESPACE)
        self.channel = channel
        self._greetings: dict[str, asyncio.Task[None]] = {}  # sid → its greeting, while due

    async def on_connect(self, sid: str, environ: dict[str, Any],
                         auth: dict[str, Any] | None = None) -> None:
        auth = auth if isinstance(auth, dict) else {}
        token = auth.get("visitor_token")
        if token:
            try:
                visitor_id = self.channel.visitor_of(token)
            except BadToken as exc:
                raise socketio.exceptions.ConnectionRefusedError(
                    f"invalid visitor token: {exc}", {"code": "invalid_visitor_token"}) from exc
        else:
            visitor_id, token = self.channel.new_visitor_token()
            if isinstance(auth.get("link"), str):
                await self.channel.redeem_link(auth["link"], visitor_id)
        locale = auth.get("locale") if auth.get("locale") in _LOCALES else None
        await self.save_session(sid, {
            "visitor_id": visitor_id, "visitor_token": token, "locale": locale,
            "product": clean_context(auth.get("product")),
            "store": clean_context(auth.get("store"))})
        await self.enter_room(sid, visitor_room(visitor_id))
        await self.channel.arrive(visitor_id, sid)
        greeting = asyncio.get_running_loop().create_task(self._greet(sid, visitor_id, token))
        self._greetings[sid] = greeting
        greeting.add_done_callback(lambda _: self._greetings.pop(sid, None))

    async def _greet(self, sid: str, visitor_id: str, token: str) -> None:
        """Runs after the CONNECT packet is out, so these events follow it."""
        for _ in range(1000):
            if self.server.manager.is_connected(sid, NAMESPACE):
                break
            await asyncio.sleep(0)
        conversation_id, items = await self.channel.services.tickets.customer_view(
            "web", visitor_id)
        items = await self.channel.with_live_quick_replies(conversation_id, items)
        await self.emit("session", {"visitor_token": token, "conversation_id": conversation_id},
                        to=sid)
        await self.emit("history", {"conversation_id": conversation_id, "items": items}, to=sid)

    async def on_message(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        error = self._check_message(data)
        if error:
            await self.emit("error", error["error"], to=sid)
            return error
        greeting = self._greetings.get(sid)
        if greeting is not None:  # its "session" must not arrive after this message's
            await greeting
        session = await self.get_session(sid)
        client_id = clean_context(data.get("client_id"))
        reply_to = data.get("reply_to")  # a quick reply: the id of the bot message it is under
        inbound = Inbound(
            channel="web", identity_kind="web", identity_value=session["visitor_id"],
            text=data["text"].strip(), locale=session["locale"],
            external_id=f"{session['visitor_id']}:{client_id}" if client_id else None,
            data={"reply_to": reply_to} if reply_to is not None else {},
            product_sku=session["product"], store_id=session["store"])
        result = await self.channel.receive(inbound)
        if result.created:
            await self._show_in_other_tabs(sid, session["visitor_id"], result)
        return {"ok": True, "id": result.item.id, "conversation_id": result.conversation.id,
                "created_at": iso(result.item.created_at), "duplicate": not result.created}

    def _check_message(self, data: Any) -> dict[str, Any] | None:
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            return ack_error("bad_payload", 'expected {"text": string}')
        reply_to = data.get("reply_to")
        if reply_to is not None and (not isinstance(reply_to, int) or isinstance(reply_to, bool)
                                     or not 0 < reply_to < 2**63):
            return ack_error("bad_payload", "reply_to must be the id of a message")
        text = data["text"].strip()
        if not text:
            return ack_error("empty_text", "text must not be empty")
        limit = self.channel.services.settings.max_text_chars
        if len(text) > limit:
            return ack_error("too_long", f"text is longer than {limit} characters")
        return None

    async def _show_in_other_tabs(self, sid: str, visitor_id: str, result: IngestResult) -> None:
        """The visitor's other tabs (or devices with the same token) show what this one sent.
        With one tab open, which is the usual case, nothing is encoded or sent."""
        room = visitor_room(visitor_id)
        if local_sids(self.server, room) == [sid]:
            return
        await self.emit("message", customer_item_json(result.item), room=room, skip_sid=sid)

    async def after_ingest(self, visitor_id: str, result: IngestResult) -> None:
        """Tell every tab of this visitor when a new ticket opens."""
        if result.opened:
            await self.channel.tell_tabs_their_ticket(visitor_id, result.conversation.id)

    async def on_link(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        """The customer's "continue on LINE / by phone" button: a code, a deep link, a QR."""
        target = data.get("target") if isinstance(data, dict) else None
        if target not in {"line", "phone"}:
            return ack_error("bad_target", 'expected {"target": "line" | "phone"}')
        session = await self.get_session(sid)
        try:
            link = await self.channel.issue_link(session["visitor_id"], target)
        except LinkError as exc:
            return ack_error(exc.code, str(exc))
        if link is None:
            return ack_error("no_conversation", "send a message first")
        return {"ok": True, "code": link.code, "url": link.url, "qr_svg": link.qr_svg,
                "expires_at": iso(link.expires_at), "target": target}

    async def on_typing(self, sid: str, data: Any = None, *_: Any) -> None:
        if not isinstance(data, dict):
            return
        session = await self.get_session(sid)
        conversation_id, _ = await self.channel.services.tickets.customer_view(
            "web", session["visitor_id"], limit=0)
        if conversation_id is None:
            return
        await self.channel.services.bus.publish(events.Event(
            events.TYPING, {"conversation_id": conversation_id, "sender_type": "customer",
                            "typing": bool(data.get("typing", True))}, conversation_id))

    async def on_disconnect(self, sid: str, *_: Any) -> None:
        session = await self.get_session(sid)
        if session:  # a refused connection never had one
            await self.channel.leave(session["visitor_id"], sid)
