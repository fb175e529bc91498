"""What a web chat customer types that becomes theirs: addresses and phone numbers."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from hub.given import addresses_in, phones_in


def test_phone_numbers_are_found_as_people_write_them() -> None:
    assert phones_in("折り返しはこちらへ ０９０－１２３４－５６７８ です") == ["+819012345678"]
    assert phones_in("+1 (415) 555-2671 or 03-1234-5678, 090-1234-5678") == [
        "+14155552671", "+81312345678", "+819012345678"]
    assert phones_in("090-1234-5678 と 09012345678") == ["+819012345678"]  # once


def test_order_numbers_dates_and_prices_are_not_phone_numbers() -> None:
    assert phones_in("注文番号 123456789012、2026-11-22 に 12,800円") == []


@given(st.text(alphabet="0123456789-+() ０１２３４５６７８９ー電話番号は", max_size=80))
def test_whatever_is_typed_only_e164_numbers_come_out_once(text: str) -> None:
    found = phones_in(text)
    assert all(re.fullmatch(r"\+\d{8,15}", number) for number in found)
    assert len(found) == len(set(found))


def test_addresses_are_found_in_chat_text() -> None:
    assert addresses_in("返信は Hanako.Y@Example.JP へ。") == ["hanako.y@example.jp"]
    assert addresses_in("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ と a@b.co, a@b.co") == [
        "taro@example.com", "a@b.co"]
    assert addresses_in("no address @ here, nor@localhost") == []
