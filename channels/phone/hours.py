"""Business hours for the phone line: "09:00-18:00" on the listed weekdays, in one zone."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from hub.settings import Settings


def parse_span(text: str) -> tuple[time, time] | None:
    """"09:00-18:00" → (09:00, 18:00); "" means always open (None)."""
    if not text.strip():
        return None
    start, _, end = text.partition("-")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


def is_open(settings: Settings, now: datetime) -> bool:
    span = parse_span(settings.twilio_business_hours)
    if span is None:
        return True
    local = now.astimezone(ZoneInfo(settings.twilio_timezone))
    days = {int(d) for d in settings.twilio_business_days.split(",") if d.strip().isdigit()}
    start, end = span
    return local.weekday() in days and start <= local.time().replace(tzinfo=None) < end
