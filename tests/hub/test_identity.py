"""Identity normalisation: every spelling of the same address or number is one identity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.identity import InvalidIdentity, normalize_email, normalize_identity, normalize_phone

FULL_WIDTH = str.maketrans("0123456789+-", "０１２３４５６７８９＋－")


@pytest.mark.parametrize("raw", [
    "090-1234-5678", "09012345678", "+81 90 1234 5678", "+81-90-1234-5678", "(090) 1234-5678",
    "０９０－１２３４－５６７８", "+８１９０１２３４５６７８"])
def test_japanese_mobile_spellings_are_one_number(raw: str) -> None:
    assert normalize_phone(raw) == "+819012345678"


def test_international_number_keeps_its_country() -> None:
    assert normalize_phone("+1 (415) 555-0100") == "+14155550100"
    assert normalize_phone("+44 20 7946 0958") == "+442079460958"


@pytest.mark.parametrize("raw", ["", "abc", "12", "+"])
def test_garbage_is_not_a_phone_number(raw: str) -> None:
    with pytest.raises(InvalidIdentity):
        normalize_phone(raw)


subscriber = st.integers(min_value=10_000_000, max_value=99_999_999)
prefix = st.sampled_from(["70", "80", "90"])


@given(prefix, subscriber, st.sampled_from(["", "-", " "]), st.booleans(), st.booleans())
def test_jp_mobile_formats_agree(prefix: str, number: int, separator: str, international: bool,
                                 full_width: bool) -> None:
    digits = str(number)
    local = f"0{prefix}{separator}{digits[:4]}{separator}{digits[4:]}"
    text = f"+81{separator}{prefix}{separator}{digits}" if international else local
    if full_width:
        text = text.translate(FULL_WIDTH)
    assert normalize_phone(text) == f"+81{prefix}{digits}"


@given(st.text(max_size=40))
def test_phone_normaliser_is_idempotent_or_refuses(text: str) -> None:
    try:
        once = normalize_phone(text)
    except InvalidIdentity:
        return
    assert normalize_phone(once) == once
    assert once.startswith("+")


def test_email_is_lower_cased_and_unwrapped() -> None:
    assert normalize_email("  Hanako.Yamada@Example.JP ") == "hanako.yamada@example.jp"
    assert normalize_email("Hanako <HANAKO@example.jp>") == "hanako@example.jp"
    assert normalize_email("ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｊｐ") == "hanako@example.jp"


@pytest.mark.parametrize("raw", ["", "no-at-sign", "@example.com", "a@b", "a b@example.com"])
def test_email_refuses_non_addresses(raw: str) -> None:
    with pytest.raises(InvalidIdentity):
        normalize_email(raw)


local_part = st.from_regex(r"[a-z][a-z0-9._]{0,15}", fullmatch=True)
domain = st.from_regex(r"[a-z][a-z0-9]{0,10}\.(jp|com|net|co\.jp)", fullmatch=True)


@given(local_part, domain, st.booleans())
def test_email_case_never_splits_a_customer(local: str, dom: str, upper: bool) -> None:
    address = f"{local}@{dom}"
    spelled = address.upper() if upper else address.title()
    assert normalize_email(spelled) == normalize_email(address) == address


@given(st.sampled_from(["web", "line", "crm"]), st.text(min_size=1, max_size=50))
def test_opaque_ids_are_trimmed_or_refused(kind: str, value: str) -> None:
    try:
        cleaned = normalize_identity(kind, value)
    except InvalidIdentity:
        return
    assert cleaned == cleaned.strip() and cleaned
    assert normalize_identity(kind, cleaned) == cleaned


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(InvalidIdentity):
        normalize_identity("fax", "123")
