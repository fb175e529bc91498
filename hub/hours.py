"""Business hours from the settings, for everything that behaves differently after hours
(the bot's "we are back at …", the phone line's voicemail). The calendar rules themselves
(weekdays, Japanese public holidays, the next opening) live in kb/hours.py."""

from __future__ import annotations

from datetime import datetime, time

from hub.settings import Settings
from kb.hours import HoursConfig
from kb.hours import is_open as open_at


def parse_span(text: str) -> tuple[time, time] | None:
    """"09:00-18:00" → (09:00, 18:00); "" means always open (None)."""
    if not text.strip():
        return None
    start, _, end = text.partition("-")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


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
