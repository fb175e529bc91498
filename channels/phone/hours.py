"""Business hours for the phone line: its own span when OMOHUB_TWILIO_BUSINESS_HOURS is set,
else the hub's (hub/hours.py); days, zone and public holidays are the hub's."""

from __future__ import annotations

from datetime import datetime

from hub import hours
from hub.settings import Settings


def is_open(settings: Settings, now: datetime) -> bool:
    span = settings.twilio_business_hours or settings.business_hours
    return hours.is_open(settings, now, span)
