"""The running hub's parts, built once by the app factory and handed to handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import socketio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from channels.base import ChannelAdapter
from hub.auth import LoginThrottle
from hub.events import EventBus
from hub.files import FileStore
from hub.ingest import Ingestor
from hub.knowledge import KnowledgeCache
from hub.outbox import Dispatcher
from hub.presence import Presence
from hub.security import Signer
from hub.settings import Settings
from hub.tickets import Tickets


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    signer: Signer
    sio: socketio.AsyncServer
    ingestor: Ingestor
    dispatcher: Dispatcher
    tickets: Tickets
    files: FileStore
    knowledge: KnowledgeCache
    presence: Presence  # who has a chat open, across hub processes
    logins: LoginThrottle = field(default_factory=LoginThrottle)
    adapters: dict[str, ChannelAdapter] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
