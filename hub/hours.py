"""Business hours from the settings, for everything that behaves differently after hours
(the bot's "we are back at …", the phone line's voicemail). The calendar rules themselves
(weekdays, Japanese public holidays, the next opening) live in kb/hours.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from hub.settings import Settings, parse_span
from kb.hours import HoursConfig
from kb.hours import is_open as open_at


def business_hours(settings: Settings, span: str | None = None) -> HoursConfig | None:
    """The configured opening hours, or None when the hub is always open."""
    parsed = parse_span(settings.business_hours if span is None else span)
    if parsed is None:
        return None
    days = {int(d) for d in settings.business_days.split(",") if d.strip().isdigit()}
    return HoursConfig(timezone=settings.timezone, week={day: parsed for day in days},
                       closed_on_public_holidays=settings.closed_on_public_holidays)


def is_open(settings: Settings, now: datetime, span: str | None = None) -> bool:
    config = business_hours(settings, span)
    return config is None or open_at(now, config)


def local_midnight(day: date, timezone: str) -> datetime:
    """The start of ``day`` where the support team works (``OMOHUB_TIMEZONE``), in UTC:
    days in dashboards and exports are the team's days, not UTC's."""
    return datetime.combine(day, time(), ZoneInfo(timezone)).astimezone(UTC)


def parse_day(text: str) -> date | None:
    """A ``YYYY-MM-DD`` day; blank means no bound (what an HTML form sends). ``ValueError``
    says what was wrong, for a person to read."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError as exc:
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from exc
