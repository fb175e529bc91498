"""Turning the bytes of a mail part or header into text, whatever its label claims.

Japanese mail is labelled ISO-2022-JP, Shift_JIS, EUC-JP or UTF-8, and the label is often
wrong: carriers send raw UTF-8 or EUC-JP under an ISO-2022-JP label, and Outlook writes
CP932 vendor characters (①, ㈱, Ⅰ) inside ISO-2022-JP that Python's codec refuses. We try
the label first, then the CP932 reading of ISO-2022-JP, then detection; never raise.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

_ALIASES = {
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "ms_kanji": "cp932", "windows-31j": "cp932", "cp932": "cp932", "ms932": "cp932",
    "x-ms-cp932": "cp932", "csshiftjis": "cp932",
    "euc-jp": "euc_jp", "x-euc-jp": "euc_jp", "eucjp": "euc_jp", "euc_jp": "euc_jp",
    "iso-2022-jp": "iso2022_jp", "iso2022-jp": "iso2022_jp", "csiso2022jp": "iso2022_jp",
    "iso-2022-jp-1": "iso2022_jp", "iso-2022-jp-2": "iso2022_jp",
    "iso-2022-jp-3": "iso2022_jp", "iso-2022-jp-2004": "iso2022_jp",
    "utf8": "utf-8", "unicode-1-1-utf-8": "utf-8", "us-ascii": "ascii", "ascii": "ascii",
}
_DETECT_ORDER = ("utf-8", "cp932", "euc_jp")
_ESC = 0x1B


@dataclass(frozen=True)
class Decoded:
    text: str
    charset: str  # the codec that produced the text
    fallback: bool = False  # True when the label was wrong, missing or unknown


def normalize_label(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when it is missing or unknown."""
    if not label:
        return None
    key = label.strip().strip("\"'").lower()
    if key in _ALIASES:
        return _ALIASES[key]
    try:
        return codecs.lookup(key).name
    except LookupError:
        return None


def decode_bytes(data: bytes, label: str | None = None) -> Decoded:
    """Decode ``data`` trusting ``label`` only as far as the bytes agree with it."""
    codec = normalize_label(label)
    if codec is not None:
        text = _try_codec(data, codec)
        if text is not None:
            return Decoded(text, codec)
    if data.isascii() and _ESC not in data:
        return Decoded(data.decode("ascii"), "ascii", fallback=codec not in {None, "ascii"})
    return _detect(data, fallback=bool(label))


def _try_codec(data: bytes, codec: str) -> str | None:
    if codec == "iso2022_jp" or (codec in {"ascii", "utf-8"} and b"\x1b$" in data
                                 and data.isascii()):
        return _iso2022_jp(data)
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _iso2022_jp(data: bytes) -> str | None:
    for codec in ("iso2022_jp", "iso2022_jp_ext"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    return jis_to_cp932(data)


def _detect(data: bytes, fallback: bool) -> Decoded:
    if _ESC in data and data.isascii():
        text = _iso2022_jp(data)
        if text is not None:
            return Decoded(text, "iso2022_jp", fallback=fallback)
    best: tuple[float, str, str] | None = None
    for codec in _DETECT_ORDER:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if codec == "utf-8":
            return Decoded(text, codec, fallback=fallback)
        score = japanese_score(text)
        if best is None or score > best[0]:
            best = (score, codec, text)
    if best is not None:
        return Decoded(best[2], best[1], fallback=fallback)
    return Decoded(data.decode("utf-8", errors="replace"), "utf-8", fallback=True)


def japanese_score(text: str) -> float:
    """How much ``text`` looks like real (Japanese or ASCII) writing, per character."""
    if not text:
        return 0.0
    score = 0
    for char in text:
        code = ord(char)
        if 0x3040 <= code <= 0x30FF or 0x3000 <= code <= 0x303F:
            score += 3  # kana and Japanese punctuation
        elif 0x4E00 <= code <= 0x9FFF or 0x20 <= code < 0x7F or char in "\r\n\t":
            score += 1
        elif 0xFF61 <= code <= 0xFF9F:
            score -= 1  # half-width katakana: what EUC-JP read as CP932 looks like
        elif code < 0x20 or 0xE000 <= code <= 0xF8FF:
            score -= 3
    return score / len(text)


def _jis_pair_to_sjis(first: int, second: int) -> bytes:
    lead = ((first + 1) >> 1) + (0x70 if first <= 0x5E else 0xB0)
    if first & 1:
        trail = second + 0x1F
        if trail >= 0x7F:
            trail += 1
    else:
        trail = second + 0x7E
    return bytes((lead, trail))


def jis_to_cp932(data: bytes) -> str | None:
    """Read ISO-2022-JP as CP932 (JIS X 0208 plus NEC/IBM rows); None when it is not JIS."""
    out = bytearray()
    mode, index = "ascii", 0
    while index < len(data):
        byte = data[index]
        if byte >= 0x80:
            return None
        if byte == _ESC:
            mode, index = _escape(data, index, mode)
            continue
        if mode == "kanji" and 0x21 <= byte <= 0x7E and index + 1 < len(data):
            second = data[index + 1]
            if not 0x21 <= second <= 0x7E:
                return None
            out += _jis_pair_to_sjis(byte, second)
            index += 2
            continue
        if mode == "kana" and 0x21 <= byte <= 0x5F:
            out.append(byte + 0x80)
        else:
            out.append(byte)
        index += 1
    try:
        return out.decode("cp932")
    except UnicodeDecodeError:
        return None


def _escape(data: bytes, index: int, mode: str) -> tuple[str, int]:
    sequence = data[index + 1:index + 3]
    if sequence in (b"$@", b"$B"):
        return "kanji", index + 3
    if sequence in (b"(B", b"(J"):
        return "ascii", index + 3
    if sequence == b"(I":
        return "kana", index + 3
    return mode, index + 1  # unknown escape: skip the ESC byte itself
