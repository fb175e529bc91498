"""Business hours with Japanese public holidays, and the "we are back at …" text.

Holidays come from the ``holidays`` package (``holidays.JP``: statutory
holidays, substitute holidays and equinoxes computed per year). Without the
package a small rule table of the fixed-date holidays is used instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from zoneinfo import ZoneInfo

# Monday=0 … Sunday=6 → (opens, closes); a missing day is closed.
DEFAULT_WEEK: dict[int, tuple[dt.time, dt.time]] = {
    day: (dt.time(9, 0), dt.time(18, 0)) for day in range(6)
}
FIXED_HOLIDAYS = {
    (1, 1),
    (2, 11),
    (2, 23),
    (4, 29),
    (5, 3),
    (5, 4),
    (5, 5),
    (8, 11),
    (11, 3),
    (11, 23),
}
WEEKDAYS_JA = "月火水木金土日"
SEARCH_DAYS = 30


@dataclass(frozen=True)
class HoursConfig:
    timezone: str = "Asia/Tokyo"
    week: dict[int, tuple[dt.time, dt.time]] = field(default_factory=lambda: dict(DEFAULT_WEEK))
    closed_on_public_holidays: bool = True
    closed_dates: frozenset[dt.date] = frozenset()  # e.g. year-end closing days

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@lru_cache(maxsize=16)
def _jp_holidays(year: int) -> frozenset[dt.date]:
    try:
        import holidays
    except ImportError:
        return frozenset(dt.date(year, month, day) for month, day in FIXED_HOLIDAYS)
    return frozenset(holidays.country_holidays("JP", years=year))


def is_public_holiday(day: dt.date) -> bool:
    return day in _jp_holidays(day.year)


def _is_closed_day(day: dt.date, config: HoursConfig) -> bool:
    if day in config.closed_dates or day.weekday() not in config.week:
        return True
    return config.closed_on_public_holidays and is_public_holiday(day)


def _local(moment: dt.datetime, config: HoursConfig) -> dt.datetime:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return aware.astimezone(config.zone)


def is_open(moment: dt.datetime, config: HoursConfig | None = None) -> bool:
    """True when people are at work at ``moment`` (naive datetimes are taken as UTC)."""
    config = config or HoursConfig()
    local = _local(moment, config)
    if _is_closed_day(local.date(), config):
        return False
    opens, closes = config.week[local.weekday()]
    return opens <= local.time() < closes


def next_opening(moment: dt.datetime, config: HoursConfig | None = None) -> dt.datetime | None:
    """The next time people are at work (local time), or None if not within 30 days."""
    config = config or HoursConfig()
    local = _local(moment, config)
    for offset in range(SEARCH_DAYS + 1):
        day = local.date() + dt.timedelta(days=offset)
        if _is_closed_day(day, config):
            continue
        opens, closes = config.week[day.weekday()]
        start = dt.datetime.combine(day, opens, tzinfo=config.zone)
        if offset == 0 and local.time() >= closes:
            continue
        return max(start, local) if offset == 0 else start
    return None


def back_at_text(moment: dt.datetime, locale: str = "ja", config: HoursConfig | None = None) -> str:
    """What the bot says outside business hours: when people are back and what happens next."""
    opening = next_opening(moment, config)
    if locale.startswith("ja"):
        if opening is None:
            return (
                "ただいま担当者は不在です。"
                "ご用件を残していただければ、担当者から折り返しご連絡します。"
            )
        when = f"{opening.month}月{opening.day}日({WEEKDAYS_JA[opening.weekday()]}) {opening:%H:%M}"
        return (
            f"ただいま営業時間外です。担当者は{when}から対応いたします。"
            "このままメッセージを残していただければ、順番にご返信します。"
        )
    if opening is None:
        return "Our team is away right now. Leave your message and an agent will get back to you."
    when = f"{opening:%A %d %B at %H:%M} ({opening.tzname()})"
    return (
        f"We're closed right now; our team is back on {when}. "
        "Leave your message here and an agent will reply as soon as we open."
    )
