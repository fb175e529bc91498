from __future__ import annotations

import datetime as dt

import pytest

from kb.hours import HoursConfig, back_at_text, is_open, is_public_holiday, next_opening

JST = dt.timezone(dt.timedelta(hours=9))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (dt.datetime(2026, 11, 24, 10, 0, tzinfo=JST), True),  # Tuesday morning
        (dt.datetime(2026, 11, 24, 18, 0, tzinfo=JST), False),  # closing time
        (dt.datetime(2026, 11, 24, 8, 59, tzinfo=JST), False),
        (dt.datetime(2026, 11, 22, 12, 0, tzinfo=JST), False),  # Sunday
        (dt.datetime(2026, 11, 23, 12, 0, tzinfo=JST), False),  # Labour Thanksgiving Day
        (dt.datetime(2026, 1, 1, 12, 0, tzinfo=JST), False),  # New Year's Day
        (dt.datetime(2026, 11, 24, 1, 0), True),  # naive = UTC → 10:00 JST
    ],
)
def test_is_open(moment: dt.datetime, expected: bool) -> None:
    assert is_open(moment, HoursConfig()) is expected


def test_public_holidays_include_moving_ones() -> None:
    assert is_public_holiday(dt.date(2026, 9, 23))  # autumnal equinox 2026
    assert is_public_holiday(dt.date(2026, 1, 12))  # Coming of Age Day (2nd Monday)
    assert not is_public_holiday(dt.date(2026, 11, 24))


def test_configurable_week_and_closed_dates() -> None:
    config = HoursConfig(
        week={6: (dt.time(10), dt.time(12))}, closed_dates=frozenset({dt.date(2026, 11, 29)})
    )
    assert is_open(dt.datetime(2026, 11, 22, 11, 0, tzinfo=JST), config)  # Sunday only
    assert not is_open(dt.datetime(2026, 11, 29, 11, 0, tzinfo=JST), config)
    opening = next_opening(dt.datetime(2026, 11, 22, 13, 0, tzinfo=JST), config)
    assert opening == dt.datetime(2026, 12, 6, 10, 0, tzinfo=config.zone)


def test_back_at_text_in_both_languages() -> None:
    friday_night = dt.datetime(2026, 11, 20, 20, 0, tzinfo=JST)
    assert "11月21日(土) 09:00" in back_at_text(friday_night, "ja")
    assert "Saturday 21 November at 09:00" in back_at_text(friday_night, "en")
    never = HoursConfig(week={})
    assert "折り返し" in back_at_text(friday_night, "ja", never)
