"""Masking finds the personal data people really type, and leaves the rest as written."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.pii import mask_name, mask_text

WORDS = st.sampled_from(["注文した", "商品が", "届きません", "Hello", "order", "3,000円",
                         "2026-11-22", "品番 4901234567894", "在庫は3個", "ありがとう"])


def _luhn_digit(body: str) -> str:
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char) * (1 if position % 2 else 2)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


CARDS = st.from_regex(r"4\d{14}", fullmatch=True).map(lambda body: body + _luhn_digit(body))
MOBILES = st.from_regex(r"0[789]0-[1-9]\d{3}-\d{4}", fullmatch=True)
EMAILS = st.from_regex(r"[a-z][a-z0-9._]{0,10}@[a-z]{2,8}\.(?:co\.jp|com|jp)", fullmatch=True)
GROUPED_CARDS = CARDS.map(lambda card: " ".join(card[i:i + 4] for i in range(0, 16, 4)))
SECRETS = st.one_of(CARDS, GROUPED_CARDS, MOBILES, EMAILS)


@given(st.lists(st.one_of(WORDS, SECRETS), max_size=8))
def test_personal_data_goes_and_everything_else_stays(pieces: list[str]) -> None:
    text = " ".join(pieces)
    masked = mask_text(text)
    for piece in pieces:
        if piece in {"Hello", "order", "注文した", "2026-11-22", "品番 4901234567894"}:
            assert piece in masked
        elif "@" in piece or piece[0] in "04":
            assert piece not in masked
    assert mask_text(masked) == masked


@pytest.mark.parametrize(("text", "masked"), [
    ("電話は０９０－１２３４－５６７８です。", "電話は[phone]です。"),
    ("ｔａｒｏ＠example.co.jp まで！", "[email] まで！"),
    ("〒150-0001 東京都渋谷区", "[postcode] 東京都渋谷区"),
    ("call +44 20 7946 0958 now", "call [phone] now"),
    ("カード 5555 5555 5555 4444 です", "カード [card] です"),
    ("カード 5555 5555 5555 4445 です", "カード 5555 5555 5555 4445 です"),  # fails Luhn
    ("友だち U" + "0123456789abcdef" * 2, "友だち [line-id]"),
    ("合計３，０００円（税込）", "合計３，０００円（税込）"),
])
def test_examples(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_a_name_becomes_the_customer_number() -> None:
    assert mask_name("山田 太郎", 42) == "#42"
    assert mask_name("", None) == ""
