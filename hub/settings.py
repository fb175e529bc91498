"""One typed settings object, read once from ``OMOHUB_*`` environment variables.

A TOML file named by ``OMOHUB_CONFIG`` may set the same keys, spelt as the variables
(``OMOHUB_DATABASE_URL``) or as the settings (``database_url``); the environment wins over
the file, and a key the file gets wrong stops the hub with its name.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field, fields
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PREFIX = "OMOHUB_"


DATABASES = ("sqlite", "postgresql")
_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[\w.-]*):\d{1,5}")


class SettingsError(ValueError):
    """A setting that cannot be used; the message names it and says what is expected."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite+aiosqlite:///./omohub.db"
    redis_url: str | None = None
    redis_channel: str = "omohub"
    secret_key: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    data_dir: str = "./.omohub"
    line_channel_secret: str | None = None
    line_channel_access_token: str | None = None
    line_api_base: str = "https://api.line.me"
    line_data_api_base: str = "https://api-data.line.me"
    line_basic_id: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    twilio_phone_number: str | None = None
    smtp_listen: str | None = None
    smtp_relay: str | None = None
    support_address: str = "support@example.com"
    email_webhook_token: str | None = None
    reopen_window_hours: float = 72.0
    visitor_token_days: float = 180.0
    agent_session_hours: float = 12.0
    max_text_chars: int = 10_000
    max_upload_bytes: int = 10 * 1024 * 1024
    require_services: bool = False
    bot_enabled: bool = True
    business_hours: str = ""  # e.g. "09:00-18:00"; empty = always open
    business_days: str = "0,1,2,3,4"  # Monday = 0
    timezone: str = "Asia/Tokyo"
    closed_on_public_holidays: bool = True
    bot_channels: str = "web,line,sms"
    extra: dict[str, Any] = field(default_factory=dict)
    # Phone and SMS (Twilio). Hours are "HH:MM-HH:MM" on weekdays ("" = always open).
    twilio_ivr_language: str = "ja"
    twilio_say_voice: str = ""
    twilio_business_hours: str = ""
    twilio_queue: str = "support"
    twilio_api_key_sid: str | None = None
    twilio_api_key_secret: str | None = None
    twilio_twiml_app_sid: str | None = None
    # E-mail (IMAP polling, automatic acknowledgement, outbound charset).
    imap_url: str | None = None  # imap[s]://user:password@host[:port]/MAILBOX
    imap_poll_seconds: float = 60.0
    imap_processed_folder: str | None = None  # move processed mail there (else flag it)
    email_auto_ack: str | None = None  # text of the automatic acknowledgement; unset = none
    email_charset: str = "utf-8"  # or iso-2022-jp for legacy Japanese mail clients
    # Outbound relay: AUTH and TLS (auto = implicit TLS on port 465, else STARTTLS when
    # offered, and required before a password is sent; starttls | implicit | none).
    smtp_relay_user: str | None = None
    smtp_relay_password: str | None = None
    smtp_relay_tls: str = "auto"
    smtp_relay_ca_file: str | None = None  # PEM CA bundle for a private relay's certificate

    @property
    def line_enabled(self) -> bool:
        return bool(self.line_channel_secret and self.line_channel_access_token)

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_changes(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def _coerce(raw: Any, default: Any) -> Any:
    if isinstance(default, bool):
        word = str(raw).strip().lower()
        if word not in TRUE_WORDS | FALSE_WORDS:  # "maybe" must not quietly mean off
            raise ValueError("not one of 1/0, true/false, yes/no, on/off")
        return word in TRUE_WORDS
    if isinstance(default, int) and not isinstance(default, bool):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return str(raw)


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from a TOML file (optional) overlaid with the environment."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    config_path = env.get(f"{PREFIX}CONFIG")
    if config_path:
        values.update(_file_values(config_path))
    for f in fields(Settings):
        key = f"{PREFIX}{f.name.upper()}"
        if key in env and env[key] != "":
            values[f.name] = env[key]
    defaults = Settings()
    coerced = {name: _coerced(name, value, getattr(defaults, name))
               for name, value in values.items()
               if name in {f.name for f in fields(Settings)} and name != "extra"}
    settings = Settings(**coerced)
    check(settings)
    if not settings.secret_key:
        settings = settings.with_changes(secret_key=_persistent_secret(Path(settings.data_dir)))
    return settings


def _file_values(path: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{PREFIX}CONFIG={path}: cannot read it "
                            f"({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{PREFIX}CONFIG={path}: not a TOML file ({exc})") from exc
    names = {f.name for f in fields(Settings)} - {"extra"}
    values = {}
    for key, value in data.items():
        name = key.lower().removeprefix(PREFIX.lower())
        if name not in names:  # a typo would otherwise leave the default in force silently
            raise SettingsError(f"{path}: unknown setting {key!r} (settings are named as "
                                f"the {PREFIX}* variables, e.g. {PREFIX}DATABASE_URL)")
        values[name] = value
    return values


def _coerced(name: str, raw: Any, default: Any) -> Any:
    if default is None:
        return str(raw)
    try:
        return _coerce(raw, default)
    except ValueError as exc:
        kind = type(default).__name__
        raise SettingsError(f"{PREFIX}{name.upper()}={raw!r}: expected {kind} ({exc})") from exc


def parse_span(text: str) -> tuple[time, time] | None:
    """"09:00-18:00" → (09:00, 18:00); "" means always open (None)."""
    if not text.strip():
        return None
    start, dash, end = text.partition("-")
    if not dash:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM")
    opens, closes = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    if closes <= opens:  # "22:00-02:00" would read as never open, not as overnight
        raise ValueError("the end must be after the start: a span across midnight is not "
                         "supported")
    return opens, closes


def check(settings: Settings) -> None:
    """Refuse, by name, the settings that would only fail later (at start-up or after
    hours): opening hours, business days, the time zone."""
    for name in ("business_hours", "twilio_business_hours"):
        try:
            parse_span(getattr(settings, name))
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}{name.upper()}={getattr(settings, name)!r}: expected "
                                f"HH:MM-HH:MM within one day, e.g. 09:00-18:00; empty for "
                                f"always open ({exc})") from exc
    days = [d.strip() for d in settings.business_days.split(",") if d.strip()]
    if not all(d.isdigit() and int(d) <= 6 for d in days):
        raise SettingsError(f"{PREFIX}BUSINESS_DAYS={settings.business_days!r}: expected "
                            "weekday numbers 0-6 separated by commas (Monday = 0)")
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(f"{PREFIX}TIMEZONE={settings.timezone!r}: expected an IANA time "
                            "zone such as Asia/Tokyo or Europe/Paris") from exc
    _check_urls(settings)


def _check_urls(settings: Settings) -> None:
    if not settings.database_url.startswith(DATABASES):
        raise SettingsError(f"{PREFIX}DATABASE_URL (not shown: it may hold a password): "
                            "expected a SQLite (sqlite+aiosqlite:///…) "
                            "or PostgreSQL (postgresql+asyncpg://…) URL")
    if settings.redis_url and not settings.redis_url.startswith(("redis://", "rediss://",
                                                                 "unix://")):
        raise SettingsError(f"{PREFIX}REDIS_URL (not shown: it may hold a password): "
                            "expected redis://host:port/db")
    if settings.smtp_listen and not _HOST_PORT.fullmatch(settings.smtp_listen.strip()):
        raise SettingsError(f"{PREFIX}SMTP_LISTEN={settings.smtp_listen!r}: expected "
                            "host:port, e.g. 0.0.0.0:2525")


def _persistent_secret(data_dir: Path) -> str:
    """Generate the secret key once into the data dir, so restarts keep sessions valid."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key)
    return key
