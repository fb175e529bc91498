"""Text normalisation and tokenisation shared by indexing and querying.

Choices (measured in docs/benchmarks.md, "Knowledge base"):
- NFKC folds full-width/half-width variants (ｶﾀｶﾅ → カタカナ, ＡＢＣ１２３ → abc123).
- ``casefold`` folds case more aggressively than ``lower`` (ß → ss).
- Katakana is folded to hiragana so that ヘンピン and へんぴん match; the long
  vowel mark ー is kept as it is.
- Latin/digit runs become word tokens; CJK runs (kana, kanji) become character
  bigrams plus unigrams of kanji, which needs no dictionary and is robust to
  IME mistakes and missing okurigana.
"""

from __future__ import annotations

import re
import unicodedata

MAX_QUERY_CHARS = 2000

_KATAKANA_START = 0x30A1  # ァ
_KATAKANA_END = 0x30F6  # ヶ
_KANA_OFFSET = 0x60
_CONTROL_OR_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s+")
_LATIN_WORD = re.compile(r"[a-z0-9\u00c0-\u024f]+(?:'[a-z]+)?")
_CJK_RUN = re.compile(r"[\u3041-\u3096\u30fc\u4e00-\u9fff\u3400-\u4dbf々〆]+")
_KANJI = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf々〆]")
_SCRIPT_TAGS = re.compile(r"<[^>]{0,200}>")


def fold_kana(text: str) -> str:
    """Map katakana to the matching hiragana; leave everything else unchanged."""
    return "".join(
        chr(ord(ch) - _KANA_OFFSET) if _KATAKANA_START <= ord(ch) <= _KATAKANA_END else ch
        for ch in text
    )


def clean(text: str, max_chars: int = MAX_QUERY_CHARS) -> str:
    """Make arbitrary input safe to process: drop control chars, markup, excess length."""
    if not isinstance(text, str):
        text = str(text)
    text = text[: max_chars * 2]
    text = _CONTROL_OR_INVALID.sub(" ", text)
    text = _SCRIPT_TAGS.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()[:max_chars]


def normalize(text: str, kana: bool = True) -> str:
    """NFKC + case folding (+ kana folding); whitespace collapsed."""
    if not isinstance(text, str):
        text = str(text)
    text = clean(unicodedata.normalize("NFKC", text[: MAX_QUERY_CHARS * 2]))
    text = text.casefold()
    # casefold can produce sequences that NFKC composes differently; close the loop.
    text = unicodedata.normalize("NFKC", text)
    if kana:
        text = fold_kana(text)
    return _WHITESPACE.sub(" ", text).strip()


def _stem(word: str) -> str:
    """A tiny English suffix stripper (plural and -ing/-ed); enough for FAQ queries."""
    for suffix, min_len in (("ies", 5), ("ing", 6), ("ed", 5), ("es", 5), ("s", 4)):
        if word.endswith(suffix) and len(word) >= min_len and not word.endswith("ss"):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def cjk_ngrams(run: str) -> list[str]:
    """Character bigrams of a CJK run, plus unigrams of kanji (which carry meaning alone)."""
    grams = [run[i : i + 2] for i in range(len(run) - 1)]
    grams.extend(ch for ch in run if _KANJI.match(ch))
    if len(run) == 1 and not _KANJI.match(run):
        grams.append(run)
    return grams


def tokenize(text: str) -> list[str]:
    """Tokens for the lexical index: English words (stemmed) and CJK n-grams."""
    norm = normalize(text)
    tokens = [_stem(w) for w in _LATIN_WORD.findall(norm)]
    for run in _CJK_RUN.findall(norm):
        tokens.extend(cjk_ngrams(run))
    return tokens


def fuzz_key(text: str) -> str:
    """A compact form for rapidfuzz comparisons: normalised, punctuation and spaces dropped."""
    return "".join(ch for ch in normalize(text) if ch.isalnum() or ch == "ー")
