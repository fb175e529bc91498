"""The app factory: builds the hub's parts, wires the configured channel adapters in, and
returns one ASGI app serving HTTP, webhooks and Socket.IO."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import socketio
from jinja2 import Environment, FileSystemLoader
from litestar import Litestar, Response, get
from litestar.config.response_cache import ResponseCacheConfig
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import YamlRenderPlugin
from litestar.params import FromPath
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import File
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from agent_ui import i18n
from agent_ui.routes import agent_pages
from channels.email import EmailChannel, email_configured, support_addresses
from channels.email.webhook import email_webhook
from channels.line import LineChannel
from channels.line.routes import line_routes
from channels.phone import PhoneChannel, SmsChannel
from channels.phone.client import make_client
from channels.phone.routes import twilio_routes
from channels.video import VideoChannel
from channels.video.routes import STATIC as VIDEO_STATIC
from channels.video.routes import TEMPLATES as VIDEO_TEMPLATES
from channels.video.routes import video_routes
from channels.webchat import WebChat
from channels.webchat.qr import product_qr
from channels.webchat.routes import STATIC as WEBCHAT_STATIC
from channels.webchat.routes import chat_page, upload_image, widget_script
from hub import db, realtime
from hub.api import api_router
from hub.api.deps import ServicesDep, provide_services
from hub.api.errors import EXCEPTION_HANDLERS
from hub.assistant import Assistant
from hub.events import EventBus
from hub.files import FileStore, download_disposition, served_type
from hub.follow_up import EmailFollowUp
from hub.given import GivenInChat
from hub.hours import business_hours
from hub.identity import normalize_identity
from hub.ingest import Ingestor
from hub.knowledge import KnowledgeCache, vector_file
from hub.outbox import Dispatcher
from hub.presence import make_presence
from hub.security import Signer
from hub.services import Services
from hub.settings import Settings, load_settings
from hub.tickets import Tickets

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = [ROOT / "agent_ui" / "templates", ROOT / "channels" / "webchat" / "templates",
                 VIDEO_TEMPLATES]
STATIC_DIRS = [ROOT / "agent_ui" / "static", WEBCHAT_STATIC, VIDEO_STATIC]


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/files/{key:str}/{name:str}", include_in_schema=False)
async def serve_file(key: FromPath[str], name: FromPath[str], services: ServicesDep) -> File:
    path = services.files.path_for(key, name)
    if path is None:
        raise NotFoundException("no such file")
    return File(path, media_type=served_type(name),
                headers={"content-disposition": download_disposition(name),
                         "X-Content-Type-Options": "nosniff",
                         "Content-Security-Policy": "default-src 'none'; sandbox"})


def build_services(settings: Settings) -> Services:
    engine = db.create_engine(settings.database_url)
    sessions = db.session_factory(engine)
    bus = EventBus()
    adapters: dict[str, Any] = {}
    dispatcher = Dispatcher(sessions, adapters, bus)
    services = Services(
        settings=settings, engine=engine, sessions=sessions, bus=bus,
        signer=Signer(settings.secret_key or ""),
        sio=realtime.create_server(settings.redis_url, settings.redis_channel),
        ingestor=Ingestor(sessions, bus, timedelta(hours=settings.reopen_window_hours),
                          writer=db.SqliteWriter(settings.database_url)
                          if db.SqliteWriter.usable_for(settings.database_url) else None),
        dispatcher=dispatcher,
        tickets=Tickets(sessions, bus, adapters.keys, dispatcher.wake),
        files=FileStore(Path(settings.data_dir) / "files", settings.max_upload_bytes),
        knowledge=KnowledgeCache(sessions, vector_file(settings.data_dir)),
        presence=make_presence(settings.redis_url, settings.redis_channel),
        adapters=adapters)
    _wire_channels(services)
    services.sio.register_namespace(
        realtime.AgentNamespace(sessions, services.signer, bus))
    bus.subscribe(realtime.agent_forwarder(services.sio))
    if settings.bot_enabled:
        assistant = Assistant(services, frozenset(settings.bot_channels.split(",")),
                              hours=business_hours(settings))
        services.extras["assistant"] = assistant
        bus.subscribe(assistant.on_event)
    return services


def _wire_channels(services: Services) -> None:
    """The only place that knows which adapters exist."""
    webchat = WebChat(services)
    services.adapters[webchat.name] = webchat
    services.sio.register_namespace(webchat.namespace)
    services.bus.subscribe(webchat.on_event)
    video = VideoChannel(services)  # not a message adapter: nothing is sent or replied on it
    services.extras[video.name] = video
    services.sio.register_namespace(video.namespace)
    if services.settings.line_enabled:
        services.adapters[LineChannel.name] = LineChannel(services)
    if services.settings.twilio_enabled:
        sms = SmsChannel(services, make_client(services.settings))
        phone = PhoneChannel(services, sms)
        services.adapters[sms.name] = sms
        services.adapters[phone.name] = phone
    if email_configured(services.settings):
        email = EmailChannel(services)
        services.adapters[email.name] = email
        services.bus.subscribe(EmailFollowUp(services).on_event)  # visitors who left
    _take_what_customers_give(services)


def _take_what_customers_give(services: Services) -> None:
    """E-mail addresses and phone numbers typed in web chat, for the channels that can use
    them (never the hub's own)."""
    settings = services.settings
    kinds = {"email"} if "email" in services.adapters else set()
    if settings.twilio_enabled:
        kinds.add("phone")
    own = support_addresses(settings)
    if settings.twilio_phone_number:
        own.append(normalize_identity("phone", settings.twilio_phone_number))
    if kinds:
        services.bus.subscribe(GivenInChat(services, kinds, own).on_event)


def _templates() -> TemplateConfig[JinjaTemplateEngine]:
    environment = Environment(loader=FileSystemLoader([str(d) for d in TEMPLATE_DIRS]),
                              autoescape=True)
    environment.globals["t"] = i18n.translate
    environment.globals["messages_json"] = i18n.messages_json
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))


def _lifespan(services: Services) -> Any:
    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await db.migrate_async(services.settings.database_url)
        services.dispatcher.start()
        if "assistant" in services.extras:  # index the articles now, not on the first question
            warm_up = asyncio.create_task(services.knowledge.get())
        for adapter in services.adapters.values():
            if callable(getattr(adapter, "start", None)):
                await adapter.start()  # e.g. the SMTP listener and the IMAP poller
        try:
            yield
        finally:
            if "assistant" in services.extras:
                warm_up.cancel()
            await stop_services(services)

    return lifespan


async def stop_services(services: Services) -> None:
    """Shutdown in dependency order: no new inbound, then what was committed is announced,
    the bot's answers under way finish (or are cancelled), and the outbox stops last."""
    for adapter in services.adapters.values():
        if callable(getattr(adapter, "stop", None)):
            await adapter.stop()  # e.g. the SMTP listener, the IMAP poller, LINE's downloads
    await services.ingestor.stop()
    assistant = services.extras.get("assistant")
    if assistant is not None:
        await assistant.stop()
    await services.dispatcher.stop()
    await services.presence.close()
    await services.engine.dispose()


async def _security_headers(response: Response[Any]) -> Response[Any]:
    # async on purpose: Litestar runs a sync hook in a worker thread, on every request
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def create_litestar(services: Services) -> Litestar:
    app = Litestar(
        route_handlers=[
            healthz, serve_file, api_router(), *agent_pages(),
            chat_page, widget_script, upload_image, product_qr, email_webhook,
            *video_routes(),
            *(line_routes() if services.settings.line_enabled else []),
            *(twilio_routes() if services.settings.twilio_enabled else []),
            create_static_files_router(path="/static", directories=STATIC_DIRS,
                                       include_in_schema=False),
        ],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        template_config=_templates(),
        # The schema as JSON and YAML only: Litestar's interactive pages (Swagger UI, ReDoc,
        # ...) load their scripts from public CDNs, which would run on the hub's origin
        # with a signed-in agent's cookie and no CSP.
        openapi_config=OpenAPIConfig(title="omohub", version="0.1.0", path="/schema",
                                     render_plugins=[YamlRenderPlugin()]),
        lifespan=[_lifespan(services)],
        after_request=_security_headers,
        response_cache_config=ResponseCacheConfig(),
        debug=False,
    )
    app.state.services = services
    return app


def create_app(settings: Settings | None = None) -> socketio.ASGIApp:
    services = build_services(settings or load_settings())
    asgi = socketio.ASGIApp(services.sio, other_asgi_app=create_litestar(services),
                            socketio_path="socket.io")
    asgi.services = services  # type: ignore[attr-defined]
    return asgi
