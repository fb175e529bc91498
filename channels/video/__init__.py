"""Video sessions in the ticket: an agent and a customer in a browser-to-browser WebRTC call.

A session is one timeline item (kind and channel ``video``) whose ``data`` is its state:
``status`` created → live → ended, the links ``used``, who ``joined`` and is ``present``,
``started_at``, ``ended_at``, ``duration`` (seconds) and ``ended_by``. Every change goes
through ``hub.calls.change_item``, so agents see it (``message.updated``) as it happens.

Each role gets its own link token (signed, 30 minutes, single use). Opening the page only
checks it; the page's script then spends it (``POST /video/{id}/join``, recorded in the
item) for a per-page credential, so a link preview that fetches the URL (LINE and most chat
apps do) cannot use it up. The credential opens the Socket.IO namespace ``/video``, which
relays offers, answers and ICE candidates between the two peers of that one session only.
The media flows browser to browser; the hub never sees it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import socketio

from hub import calls
from hub.models import ItemKind, TimelineItem, utcnow
from hub.realtime import ack_error
from hub.security import BadToken
from hub.serialize import iso
from hub.services import Services
from hub.tickets import TicketError

NAME = "video"
NAMESPACE = "/video"
ROLES = ("agent", "customer")
LINK_PURPOSE = "video-link"
PEER_PURPOSE = "video-peer"
LINK_TTL = timedelta(minutes=30)
PEER_TTL = timedelta(hours=1)  # the page's socket may reconnect this long after loading


class VideoRefused(TicketError):
    """A link or credential that does not (or no longer) open a session (403 unless said)."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(code, message, status)


@dataclass(frozen=True)
class Started:
    item: TimelineItem
    agent_url: str
    customer_url: str
    expires_at: datetime


@dataclass(frozen=True)
class Peer:
    """Who a page's socket is: one role in one session."""

    session_id: int
    role: str


# --- the session's state: pure functions of the item's data -----------------------------

def new_state(expires_at: datetime) -> dict[str, Any]:
    return {"status": "created", "expires_at": iso(expires_at), "used": {}, "joined": {},
            "present": dict.fromkeys(ROLES, 0), "started_at": None, "ended_at": None,
            "duration": None, "ended_by": None}


def consume(data: dict[str, Any], role: str, now: datetime) -> dict[str, Any] | None:
    """The role's link is used now; None when it was used before or the session ended."""
    if data.get("status") == "ended" or role in data.get("used", {}):
        return None
    return {**data, "used": {**data.get("used", {}), role: iso(now)}}


def arrive(data: dict[str, Any], role: str, now: datetime) -> dict[str, Any] | None:
    """A peer's socket joined; with both roles present the session goes live."""
    if data.get("status") == "ended":
        return None
    present = {**data["present"], role: data["present"].get(role, 0) + 1}
    joined = {**data.get("joined", {}), role: data.get("joined", {}).get(role) or iso(now)}
    changed = {**data, "present": present, "joined": joined}
    if data["status"] == "created" and all(present.get(r) for r in ROLES):
        changed.update(status="live", started_at=iso(now))
    return changed


def leave(data: dict[str, Any], role: str, now: datetime) -> dict[str, Any] | None:
    """A peer's socket left; when nobody is left the session ends."""
    if data.get("status") == "ended":
        return None
    present = {**data["present"], role: max(0, data["present"].get(role, 0) - 1)}
    changed = {**data, "present": present}
    if not any(present.values()):
        return end(changed, "left", now)
    return changed


def end(data: dict[str, Any], by: str, now: datetime) -> dict[str, Any] | None:
    if data.get("status") == "ended":
        return None
    started = data.get("started_at")
    duration = (now - datetime.fromisoformat(started)).total_seconds() if started else 0
    return {**data, "status": "ended", "ended_at": iso(now), "ended_by": by,
            "duration": round(duration), "present": dict.fromkeys(ROLES, 0)}


# --- the channel ---------------------------------------------------------------------------

class VideoChannel:
    """Starts sessions, opens their pages and keeps their items current."""

    name = NAME

    def __init__(self, services: Services) -> None:
        self.services = services
        self.namespace = VideoNamespace(self)

    async def start_session(self, conversation_id: int, agent_id: int | None) -> Started:
        expires_at = utcnow() + LINK_TTL
        session = calls.AgentItem(conversation_id, agent_id, NAME, ItemKind.VIDEO,
                                  external_id=None, data=new_state(expires_at),
                                  moves_ticket=False)
        item = await calls.add_agent_item(self.services.sessions, self.services.bus, session)
        assert item.id is not None
        return Started(item, self.url(item.id, "agent"), self.url(item.id, "customer"),
                       expires_at)

    def url(self, session_id: int, role: str) -> str:
        base = self.services.settings.public_url.rstrip("/")
        return f"{base}/video/{session_id}?t={self.link_token(session_id, role)}"

    def link_token(self, session_id: int, role: str, ttl: timedelta = LINK_TTL) -> str:
        return self.services.signer.sign(LINK_PURPOSE, {"s": session_id, "r": role},
                                         ttl.total_seconds())

    async def check_link(self, session_id: int, token: str) -> Peer:
        """The peer a link names, while it still opens the session; nothing is spent."""
        peer = self._verify(LINK_PURPOSE, token, session_id)
        async with self.services.sessions() as session:
            item = await session.get(TimelineItem, session_id)
        if item is None or item.kind != ItemKind.VIDEO:
            raise VideoRefused("not_found", "no such video call", 404)
        _refuse_spent(item.data, peer.role)
        return peer

    async def join(self, session_id: int, token: str) -> tuple[Peer, str]:
        """Spend a link: the peer it names and a fresh credential for the page's socket."""
        peer = self._verify(LINK_PURPOSE, token, session_id)
        update = await self._change(session_id, lambda data: consume(data, peer.role, utcnow()))
        if not update.changed:
            _refuse_spent(update.item.data, peer.role)
        credential = self.services.signer.sign(
            PEER_PURPOSE, {"s": session_id, "r": peer.role, "p": secrets.token_urlsafe(8)},
            PEER_TTL.total_seconds())
        return peer, credential

    def peer_of(self, credential: Any) -> Peer:
        return self._verify(PEER_PURPOSE, credential, None)

    async def arrive(self, peer: Peer) -> TimelineItem:
        update = await self._change(peer.session_id,
                                    lambda data: arrive(data, peer.role, utcnow()))
        if not update.changed:
            raise VideoRefused("session_ended", "this video call has ended")
        return update.item

    async def leave(self, peer: Peer) -> TimelineItem:
        update = await self._change(peer.session_id,
                                    lambda data: leave(data, peer.role, utcnow()))
        return update.item

    async def hang_up(self, peer: Peer) -> TimelineItem:
        update = await self._change(peer.session_id, lambda data: end(data, peer.role, utcnow()))
        return update.item

    def _verify(self, purpose: str, token: Any, session_id: int | None) -> Peer:
        try:
            payload = self.services.signer.unsign(purpose, token)
        except BadToken as exc:
            expired = "expired" in str(exc)
            raise VideoRefused("link_expired" if expired else "bad_link",
                               "this link has expired" if expired
                               else "this link is not valid") from exc
        sid, role = payload.get("s"), payload.get("r")
        if not isinstance(sid, int) or role not in ROLES or session_id not in (None, sid):
            raise VideoRefused("bad_link", "this link is not valid")
        return Peer(sid, role)

    async def _change(self, session_id: int, change: calls.ItemChange) -> calls.CallUpdate:
        update = await calls.change_item(
            self.services.sessions, self.services.bus,
            (TimelineItem.id == session_id, TimelineItem.kind == ItemKind.VIDEO), change)
        if update is None:
            raise VideoRefused("not_found", "no such video call", 404)
        return update


def _refuse_spent(data: dict[str, Any], role: str) -> None:
    if data.get("status") == "ended":
        raise VideoRefused("session_ended", "this video call has ended")
    if role in data.get("used", {}):
        raise VideoRefused("link_used", "this link was already used")


# --- signalling ----------------------------------------------------------------------------

def session_room(session_id: int) -> str:
    return f"video:{session_id}"


def clean_signal(data: Any) -> dict[str, Any] | None:
    """An offer, an answer or an ICE candidate, reduced to the fields WebRTC reads."""
    if not isinstance(data, dict):
        return None
    description, candidate = data.get("description"), data.get("candidate")
    if (isinstance(description, dict) and description.get("type") in {"offer", "answer"}
            and isinstance(description.get("sdp"), str)):
        return {"description": {"type": description["type"], "sdp": description["sdp"]}}
    if isinstance(candidate, dict) and isinstance(candidate.get("candidate"), str):
        fields = ("candidate", "sdpMid", "sdpMLineIndex", "usernameFragment")
        return {"candidate": {name: candidate.get(name) for name in fields}}
    return None


class VideoNamespace(socketio.AsyncNamespace):
    """``/video``: a page's socket joins the room of the one session its credential names
    and everything it sends goes to that room only.

    Client → server: ``hello`` (ack: ``{"ok", "role", "present"}``, the other roles here
    now), ``signal`` ``{"description"}`` or ``{"candidate"}``, ``hangup``. Server → client:
    ``peer-joined`` / ``peer-left`` ``{"role"}``, ``signal``, ``ended`` ``{"by", "duration"}``.
    """

    def __init__(self, channel: VideoChannel) -> None:
        super().__init__(NAMESPACE)
        self.channel = channel

    async def on_connect(self, sid: str, environ: dict[str, Any],
                         auth: dict[str, Any] | None = None) -> None:
        credential = auth.get("credential") if isinstance(auth, dict) else None
        try:
            peer = self.channel.peer_of(credential)
            await self.channel.arrive(peer)
        except VideoRefused as exc:
            raise socketio.exceptions.ConnectionRefusedError(
                str(exc), {"code": exc.code}) from exc
        await self.save_session(sid, {"session_id": peer.session_id, "role": peer.role})
        await self.enter_room(sid, session_room(peer.session_id))
        await self.emit("peer-joined", {"role": peer.role},
                        room=session_room(peer.session_id), skip_sid=sid)

    async def on_hello(self, sid: str, *_: Any) -> dict[str, Any]:
        peer = await self._peer(sid)
        async with self.channel.services.sessions() as session:
            item = await session.get(TimelineItem, peer.session_id)
        present = item.data.get("present", {}) if item else {}
        return {"ok": True, "role": peer.role,
                "present": [r for r in ROLES if r != peer.role and present.get(r)]}

    async def on_signal(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        signal = clean_signal(data)
        if signal is None:
            return ack_error("bad_payload", "a signal is {description} or {candidate}")
        peer = await self._peer(sid)
        await self.emit("signal", signal, room=session_room(peer.session_id), skip_sid=sid)
        return {"ok": True}

    async def on_hangup(self, sid: str, *_: Any) -> dict[str, Any]:
        peer = await self._peer(sid)
        item = await self.channel.hang_up(peer)
        room = session_room(peer.session_id)
        await self.emit("ended", {"by": item.data.get("ended_by"),
                                  "duration": item.data.get("duration")}, room=room)
        await self.close_room(room)  # nothing said after the end reaches anyone
        return {"ok": True}

    async def on_disconnect(self, sid: str, *_: Any) -> None:
        peer = await self._peer(sid)
        try:
            await self.channel.leave(peer)
        except VideoRefused:  # the item is gone: nothing to keep current
            return
        await self.emit("peer-left", {"role": peer.role},
                        room=session_room(peer.session_id), skip_sid=sid)

    async def _peer(self, sid: str) -> Peer:
        saved = await self.get_session(sid)
        return Peer(saved["session_id"], saved["role"])
