"""Kana readings of Japanese text, for a second lexical signal.

Customers often type a word in kana that the articles write in kanji (めんぜい for
免税, きげん for 期限); surface n-grams of the two share nothing. The reading
(hiragana, from ``janome``'s morphological analyser and its bundled IPA dictionary;
Apache-2.0) of both sides does. Text with no kana or kanji has no reading (English paths
are unchanged), and without ``janome`` installed every reading is empty, which turns the
signal off.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from kb.normalize import fold_kana, normalize

_JAPANESE = re.compile(r"[\u3041-\u3096\u30a1-\u30fa\u4e00-\u9fff\u3400-\u4dbf々〆]")
MAX_CHARS = 300  # a reading helps short questions; long messages would only cost time
_tokenizer: Any = None
_missing = False


def _janome() -> Any:
    global _tokenizer, _missing
    if _tokenizer is None and not _missing:
        try:
            from janome.tokenizer import Tokenizer
        except ImportError:
            _missing = True
        else:
            _tokenizer = Tokenizer()
    return _tokenizer


def available() -> bool:
    """Whether readings can be computed (``janome`` is installed)."""
    return _janome() is not None


@lru_cache(maxsize=4096)
def reading(text: str) -> str:
    """The hiragana reading of the Japanese in ``text``; "" without Japanese or janome.
    Words the dictionary does not know (Latin, digits, new coinages) keep their spelling."""
    norm = normalize(text)[:MAX_CHARS]
    if not _JAPANESE.search(norm):
        return ""
    tokenizer = _janome()
    if tokenizer is None:
        return ""
    return fold_kana("".join(token.reading if token.reading != "*" else token.surface
                             for token in tokenizer.tokenize(norm)))
