"""Socket.IO for agents: every committed change reaches the inbox of every agent who may
see it. Through Redis when OMOHUB_REDIS_URL is set, so several hub processes serve one site."""

from __future__ import annotations

import logging
from typing import Any

import socketio

from hub import events, wire_json
from hub.auth import agent_from_token
from hub.security import Signer

log = logging.getLogger(__name__)

AGENT_NAMESPACE = "/agent"
AGENTS_ROOM = "agents"
# A chat message may be 10,000 characters; written as JSON \u escapes, 10,000 emoji take
# about 120 KB. Larger frames close the socket with no word to the client, so the limit
# must leave every message the text limit allows room to be refused politely instead.
MAX_SOCKET_MESSAGE_BYTES = 256 * 1024


def create_server(redis_url: str | None, channel: str = "omohub") -> socketio.AsyncServer:
    manager = socketio.AsyncRedisManager(redis_url, channel=channel) if redis_url else None
    server = socketio.AsyncServer(
        async_mode="asgi", client_manager=manager, cors_allowed_origins="*",
        max_http_buffer_size=MAX_SOCKET_MESSAGE_BYTES, logger=False, engineio_logger=False,
        json=wire_json)
    server.packet_class = HubPacket
    return server


def ack_error(code: str, message: str) -> dict[str, Any]:
    """What every Socket.IO namespace's ack says when it refuses a call."""
    return {"ok": False, "error": {"code": code, "message": message}}


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _has_binary(data: Any) -> bool:
    if isinstance(data, dict):
        data = data.values()
    elif not isinstance(data, list):
        return isinstance(data, bytes | bytearray)
    return any(type(item) not in _SCALARS and _has_binary(item) for item in data)


class HubPacket(socketio.packet.Packet):
    """python-socketio's packet, with the same answer to "does this event carry bytes?"
    found without building a list at every level: it is asked of every event emitted,
    and it cost more than encoding the event."""

    json = wire_json

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        return _has_binary(data)


class AgentNamespace(socketio.AsyncNamespace):
    def __init__(self, sessions: Any, signer: Signer, bus: events.EventBus) -> None:
        super().__init__(AGENT_NAMESPACE)
        self._sessions = sessions
        self._signer = signer
        self._bus = bus

    async def on_connect(self, sid: str, environ: dict[str, Any],
                         auth: dict[str, Any] | None = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str):
            raise socketio.exceptions.ConnectionRefusedError(
                "auth.token is required", {"code": "unauthorized"})
        async with self._sessions() as session:
            agent = await agent_from_token(session, self._signer, token)
        if agent is None:
            raise socketio.exceptions.ConnectionRefusedError(
                "invalid or expired token", {"code": "unauthorized"})
        await self.save_session(sid, {"agent_id": agent.id, "name": agent.name})
        await self.enter_room(sid, AGENTS_ROOM)

    async def on_typing(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("conversation_id"), int):
            return ack_error("bad_payload", "conversation_id is required")
        session = await self.get_session(sid)
        await self._bus.publish(events.Event(
            events.TYPING, {"conversation_id": data["conversation_id"],
                            "typing": bool(data.get("typing", True)), "sender_type": "agent"},
            data["conversation_id"], meta={"agent_id": session["agent_id"]}))
        return {"ok": True}


def agent_forwarder(sio: socketio.AsyncServer) -> events.Handler:
    """Turn bus events into `/agent` socket events."""

    async def forward(event: events.Event) -> None:
        if event.name == events.TYPING and event.payload.get("sender_type") == "agent":
            return
        payload = event.payload
        if event.name in {events.MESSAGE_CREATED, events.MESSAGE_UPDATED}:
            payload = {**payload, "conversation_id": event.conversation_id}
        await sio.emit(event.name, payload, room=AGENTS_ROOM, namespace=AGENT_NAMESPACE)

    return forward
