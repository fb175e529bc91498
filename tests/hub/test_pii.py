"""Masking finds the personal data people really type, and leaves the rest as written."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hub.pii import LABELS, MIN_TERM, mask_name, mask_text, personal_terms

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


# --- phone numbers of any country, addresses, the customer's own name (D2) -------------

REGIONS = ("JP", "US", "GB", "KR", "CN", "TW", "AU")
FORMATS = (phonenumbers.PhoneNumberFormat.NATIONAL, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
           phonenumbers.PhoneNumberFormat.E164)


@st.composite
def phone_numbers(draw: st.DrawFn) -> str:
    """A valid number of one of ``REGIONS``, written as people of that country write it."""
    region = draw(st.sampled_from(REGIONS))
    kind = draw(st.sampled_from([phonenumbers.PhoneNumberType.MOBILE,
                                 phonenumbers.PhoneNumberType.FIXED_LINE]))
    example = phonenumbers.example_number_for_type(region, kind)
    digits = str(example.national_number)
    tail = draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
    number = phonenumbers.parse("+" + str(example.country_code) + digits[:-3] + tail)
    assume(phonenumbers.is_valid_number(number))
    return phonenumbers.format_number(number, draw(st.sampled_from(FORMATS)))


ORDER_NUMBERS = st.one_of(
    st.from_regex(r"[1-9][0-9]{7,11}", fullmatch=True),  # written together
    st.from_regex(r"[1-9][0-9]{2}-[0-9]{7}-[0-9]{7}", fullmatch=True),  # a marketplace's 3-7-7
    st.from_regex(r"20[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])", fullmatch=True),
)


def _digit_runs(text: str) -> list[str]:
    return re.findall(r"\d{3,}", text)


@settings(max_examples=300)
@given(st.lists(WORDS, max_size=3), phone_numbers(), st.lists(WORDS, max_size=3))
def test_a_recognised_phone_number_leaves_no_digit_run_behind(before: list[str], number: str,
                                                              after: list[str]) -> None:
    # Among words, as people write them: phonenumbers cannot tell where a number starts
    # when other digit groups touch it ("2026-11-22 07400 123000").
    words = " ".join([*before, *after])
    masked = mask_text(" ".join([*before, "電話", number, "まで", *after]))
    assert "[phone]" in masked
    for run in _digit_runs(number):
        assert run in words or run not in masked, masked


@given(ORDER_NUMBERS)
def test_order_numbers_and_dates_are_not_phone_numbers(number: str) -> None:
    assume(len(number) < 14)  # 14+ digits are a card number's length
    for text in (f"注文番号 {number} です", f"Order #{number} has not arrived"):
        assert mask_text(text) == text


TEXT_PIECES = st.one_of(WORDS, SECRETS, phone_numbers(), st.sampled_from(
    ["[phone]", "[name]", "name", "John", "山田", "太郎", "東京都渋谷区渋谷2-21-1", "〒150-0001",
     "1600 Amphitheatre Parkway", "Bob", "]", "["]), st.text(max_size=6))
NAMES = st.sampled_from(["山田 太郎", "John Smith", "name", "Bob", "ph", "A", ""])


@settings(max_examples=300)
@given(st.lists(TEXT_PIECES, max_size=8), st.sampled_from(["", " ", "、", "\n"]), NAMES)
def test_masking_is_idempotent_and_never_grows_unbounded(pieces: list[str], glue: str,
                                                         name: str) -> None:
    text = glue.join(pieces)
    known = personal_terms(name, [("email", "john@example.com")])
    masked = mask_text(text, known=known)
    assert mask_text(masked, known=known) == masked
    longest_label = max(len(label) for label in LABELS.values())
    assert len(masked) <= len(text) * longest_label // MIN_TERM


KANJI = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF), min_size=2,
                max_size=3)


@given(KANJI, KANJI, st.lists(WORDS, max_size=4), st.integers(0, 3))
def test_the_customers_own_name_goes_wherever_it_is(family: str, given_name: str,
                                                    words: list[str], form: int) -> None:
    written = [f"{family}{given_name}", f"{family} {given_name}", f"{family}です",
               f"{given_name}さん"][form]
    masked = mask_text(" ".join([*words, written, *words]),
                       known=personal_terms(f"{family} {given_name}"))
    assert family not in masked and given_name not in masked
    assert "[name]" in masked
    for word in words:
        assert word in masked


@pytest.mark.parametrize(("text", "masked"), [
    ("山田太郎です。", "[name]です。"),
    ("I'm John Smith, call me John.", "I'm [name], call me [name]."),
    ("Johnson & Johns are not John's name", "Johnson & Johns are not [name]'s name"),
    ("住所は東京都渋谷区渋谷2-21-1です", "住所は[address]です"),
    ("大阪府大阪市北区梅田３丁目１番１号 梅田ビル", "[address] 梅田ビル"),
    ("神奈川県横浜市西区みなとみらい2-2-1", "[address]"),
    ("送り先: 渋谷区渋谷2-21-1", "送り先: [address]"),
    ("〒150-0001 東京都渋谷区", "[postcode] 東京都渋谷区"),  # no block numbers: a place
    ("1600 Amphitheatre Parkway, Mountain View, CA 94043", "[address]"),
    ("ship to 10 Downing Street, London SW1A 2AA please", "ship to [address] please"),
    ("350 5th Ave, Suite 300, New York, NY 10118", "[address]"),
    ("I have 3 Google Drive files, 2 ways", "I have 3 Google Drive files, 2 ways"),
    ("(415) 555-2671", "[phone]"),
    ("call 415-555-2671 or 010-1234-5678", "call [phone] or [phone]"),
    ("order 250-1234567-1234567 of 2026-11-22", "order 250-1234567-1234567 of 2026-11-22"),
    ("伝票番号 1234-5678-9012", "伝票番号 1234-5678-9012"),
    ("Bob150-0001", "[name][postcode]"),  # "Bob" stands alone once the postcode went
])
def test_addresses_foreign_phones_and_names(text: str, masked: str) -> None:
    known = personal_terms("山田 太郎", [("web", "v-1")]) + personal_terms("John Smith") \
        + personal_terms("Bob")
    assert mask_text(text, known=known) == masked


def test_personal_terms_skip_guest_names_and_what_is_never_typed() -> None:
    assert personal_terms("Guest 1A2B", [("web", "visitor-token")]) == ()
    assert personal_terms("山田 太郎", [("line", "U" + "a" * 32), ("crm", "C-1001")]) == (
        ("山田 太郎", "name"), ("山田太郎", "name"), ("山田", "name"), ("太郎", "name"),
        ("U" + "a" * 32, "line"), ("C-1001", "crm"))
    assert mask_text("会員番号 C-1001", known=personal_terms("", [("crm", "C-1001")])) == \
        "会員番号 [crm-id]"
