from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from kb.normalize import fold_kana, fuzz_key, normalize, tokenize

ASCII_PRINTABLE = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
)


def to_full_width(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if 0x21 <= ord(ch) <= 0x7E else ch for ch in text)


@given(st.text(max_size=200))
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@given(st.text(max_size=200))
def test_normalized_text_is_nfkc(text: str) -> None:
    once = normalize(text, kana=False)
    assert unicodedata.normalize("NFKC", once) == once


@given(ASCII_PRINTABLE)
def test_full_width_and_half_width_ascii_normalise_equal(text: str) -> None:
    assert normalize(to_full_width(text)) == normalize(text)


@given(st.text(alphabet="ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾗﾘﾙﾚﾛﾜｦﾝﾞﾟｰ", min_size=1, max_size=20))
def test_half_width_katakana_matches_full_width(text: str) -> None:
    full = unicodedata.normalize("NFKC", text)
    assert normalize(text) == normalize(full)


def test_katakana_folds_to_hiragana() -> None:
    assert fold_kana("ポイント") == "ぽいんと"
    assert normalize("ﾎﾟｲﾝﾄ") == normalize("ぽいんと") == normalize("ポイント")


def test_case_and_width_fold() -> None:
    assert normalize("ＰａｙＰａｙ　で払える？") == "paypay で払える?"


def test_tokenize_mixes_english_words_and_japanese_ngrams() -> None:
    tokens = tokenize("LINEと連携したい Returns")
    assert "line" in tokens and "return" in tokens
    assert "連携" in tokens and "携" in tokens


def test_markup_and_control_characters_are_dropped() -> None:
    assert "script" not in normalize("<script>alert(1)</script>返品")
    assert normalize("a\x00b\x07c") == "a b c"


def test_fuzz_key_ignores_punctuation_and_spaces() -> None:
    assert fuzz_key("返品 したい！") == fuzz_key("返品したい")
