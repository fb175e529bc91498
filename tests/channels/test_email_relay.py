"""Outbound relay with AUTH and TLS: a real aiosmtpd server on loopback that requires a
login, with a self-signed certificate made by the `openssl` command for this run."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from channels.email.send import RelayConfig, relay
from hub.services import Services
from hub.settings import Settings
from tests.channels.test_email import SUPPORT, Updates, email_settings, make_mail
from tests.fakes.smtp_sink import SmtpSink

USER, PASSWORD = "relay-user", "relay-pass-ｐ"  # a non-ASCII password too
# the implicit-TLS and the deliberately insecure test relays make aiosmtpd say so
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("relay-tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return Cert(folder / "cert.pem", folder / "key.pem")


def over_tls(server: SMTP, session: Session) -> bool:
    """After STARTTLS (session.ssl) or from the first byte (an SSL transport)."""
    transport = server.transport
    return session.ssl is not None or (
        transport is not None and transport.get_extra_info("ssl_object") is not None)


@dataclass
class AuthRelay:
    """Keeps each accepted message with the login that sent it and whether it was TLS."""

    received: asyncio.Queue[tuple[str, bool, bytes]] = field(default_factory=asyncio.Queue)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, over TLS)
    port: int = 0
    server: asyncio.base_events.Server | None = None

    def authenticator(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        user, password = data.login.decode(), data.password.decode()
        self.logins.append((user, over_tls(server, session)))
        return AuthResult(success=(user, password) == (USER, PASSWORD), handled=False)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        login = self.logins[-1][0] if session.authenticated and self.logins else ""
        await self.received.put((login, over_tls(server, session),
                                 raw if isinstance(raw, bytes) else raw.encode()))
        return "250 OK"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def server_context(cert: Cert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert.cert), str(cert.key))
    return context


async def start(make: Callable[[AuthRelay], SMTP], implicit: ssl.SSLContext | None = None,
                ) -> AuthRelay:
    relay_server = AuthRelay()
    relay_server.server = await asyncio.get_running_loop().create_server(
        lambda: make(relay_server), "127.0.0.1", 0, ssl=implicit)
    relay_server.port = relay_server.server.sockets[0].getsockname()[1]
    return relay_server


@pytest.fixture
async def starttls_relay(cert: Cert) -> AsyncIterator[AuthRelay]:
    """STARTTLS required, AUTH required and only over TLS (aiosmtpd's defaults)."""
    server = await start(lambda r: SMTP(
        r, hostname="relay.test", tls_context=server_context(cert), require_starttls=True,
        authenticator=r.authenticator, auth_required=True))
    yield server
    assert server.server is not None
    server.server.close()


@pytest.fixture
async def implicit_relay(cert: Cert) -> AsyncIterator[AuthRelay]:
    """TLS from the first byte (the port-465 style), AUTH required."""
    server = await start(lambda r: SMTP(
        r, hostname="relay.test", authenticator=r.authenticator, auth_required=True,
        auth_require_tls=False), implicit=server_context(cert))
    yield server
    assert server.server is not None
    server.server.close()


@pytest.fixture
async def cleartext_relay() -> AsyncIterator[AuthRelay]:
    """No TLS at all, yet it offers AUTH: a password must never go to it by default."""
    server = await start(lambda r: SMTP(
        r, hostname="relay.test", authenticator=r.authenticator, auth_required=True,
        auth_require_tls=False))
    yield server
    assert server.server is not None
    server.server.close()


def mail() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = SUPPORT, "taro@example.jp", "件名"
    message["Message-ID"] = "<relay-test@example.com>"
    message.set_content("本文です。")
    return message


def config(server: AuthRelay, cert: Cert | None, **changes: Any) -> RelayConfig:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": server.port, "username": USER,
                              "password": PASSWORD, "tls": "auto",
                              "ca_file": str(cert.cert) if cert else None}
    values.update(changes)
    return RelayConfig(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, sink: SmtpSink) -> Settings:
    return email_settings(database_url, tmp_path, sink).with_changes(bot_enabled=False)


async def test_a_reply_leaves_through_starttls_and_auth(
        services: Services, starttls_relay: AuthRelay, cert: Cert) -> None:
    relay_settings = services.settings.with_changes(
        smtp_relay=starttls_relay.address, smtp_relay_user=USER,
        smtp_relay_password=PASSWORD, smtp_relay_ca_file=str(cert.cert))
    object.__setattr__(services, "settings", relay_settings)
    stored = await services.adapters["email"].receive(make_mail()[0])  # type: ignore[attr-defined]
    updates = Updates(services)
    reply = await services.tickets.reply(stored.conversation_id, "承知しました。",
                                         agent_id=None, channel="email")
    login, over_tls, raw = await asyncio.wait_for(starttls_relay.received.get(), 10)
    assert (login, over_tls) == (USER, True)
    assert b"taro@example.jp" in raw
    assert (await updates.until(reply.id or 0, "sent"))["delivery_status"] == "sent"
    assert starttls_relay.logins == [(USER, True)]


async def test_implicit_tls_relay(implicit_relay: AuthRelay, cert: Cert) -> None:
    result = await relay(mail(), config(implicit_relay, cert, tls="implicit"), SUPPORT,
                         "taro@example.jp")
    assert result.ok, result.error
    login, over_tls, _ = await asyncio.wait_for(implicit_relay.received.get(), 10)
    assert (login, over_tls) == (USER, True)


async def test_a_wrong_password_fails_for_good_with_the_relays_answer(
        starttls_relay: AuthRelay, cert: Cert) -> None:
    result = await relay(mail(), config(starttls_relay, cert, password="wrong"), SUPPORT,
                         "taro@example.jp")
    assert not result.ok and not result.retryable
    assert result.error is not None and result.error.startswith("535")
    assert starttls_relay.received.empty()


async def test_a_password_is_never_sent_in_clear(cleartext_relay: AuthRelay) -> None:
    result = await relay(mail(), config(cleartext_relay, None), SUPPORT, "taro@example.jp")
    assert not result.ok and not result.retryable
    assert result.error is not None and "STARTTLS" in result.error
    assert cleartext_relay.logins == [] and cleartext_relay.received.empty()
    required = await relay(mail(), config(cleartext_relay, None, username=None, tls="starttls"),
                           SUPPORT, "taro@example.jp")
    assert not required.ok and "STARTTLS" in (required.error or "")
    allowed = await relay(mail(), config(cleartext_relay, None, tls="none"), SUPPORT,
                          "taro@example.jp")  # the operator said so
    assert allowed.ok, allowed.error
    assert cleartext_relay.logins == [(USER, False)]


async def test_an_untrusted_certificate_is_refused(starttls_relay: AuthRelay) -> None:
    result = await relay(mail(), config(starttls_relay, None), SUPPORT, "taro@example.jp")
    assert not result.ok and result.retryable  # the operator can add the CA and it goes out
    assert starttls_relay.logins == [] and starttls_relay.received.empty()


def test_relay_settings() -> None:
    base = Settings(smtp_relay="smtp.example.com:465")
    assert RelayConfig.from_settings(base).mode == "implicit"
    assert RelayConfig.from_settings(base.with_changes(smtp_relay="smtp.example.com:587")
                                     ).mode == "auto"
    assert RelayConfig.from_settings(base.with_changes(smtp_relay_tls="NONE")).mode == "none"
    with pytest.raises(ValueError, match="OMOHUB_SMTP_RELAY_TLS"):
        RelayConfig.from_settings(base.with_changes(smtp_relay_tls="ssl"))
