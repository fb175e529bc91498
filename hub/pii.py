"""Personal data in free text, found and masked (exports on request; APPI / GDPR).

What is masked: e-mail addresses, telephone numbers (found by ``phonenumbers``: Japanese
domestic formats, international ones, and other countries' national formats when written in
groups), payment-card numbers (14–19 digits that pass the Luhn check), Japanese postal codes
(〒123-4567 / 123-4567), street addresses (Japanese: prefecture, municipality and block
numbers; English: house number, street and suffix, with the city, state and ZIP that follow),
LINE user ids, and what the customer's own record knows about them (``personal_terms``: their
name and identity values), wherever it appears in their text. Names are not guessed from a
dictionary. Each finding becomes a bracketed label, so a reader still sees that something was
there and of which kind. Masking is idempotent: masked text has nothing left to mask.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import phonenumbers

from hub.identity import is_guest_name

# Started only where a run of such characters starts: the same matches, found in linear time
# (from every position, a long run without "@" is read again and again).
EMAIL = re.compile(r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# 14-19 digits from the card networks' ranges (2-6), written together or in the groups
# people type (4-4-4-4, or Amex's 4-6-5); 13 digits are left alone, as a JAN/EAN product
# code is 13. Groups are matched whole, so "4000 0000 0000 0002 3,000円" ends at the card.
CARD = re.compile(r"(?<![\d-])(?:[2-6]\d{13,18}|[2-6]\d{3}(?:[ -]\d{4}){3}"
                  r"|3\d{3}[ -]\d{6}[ -]\d{5})(?![\d-])")
POSTCODE = re.compile(r"〒\s*\d{3}-?\d{4}|(?<![\d-])\d{3}-\d{4}(?![\d-])")
LINE_USER = re.compile(r"\bU[0-9a-f]{32}\b")

# Japanese addresses: prefecture, one or two municipalities (渋谷区, 大阪市北区, 〇〇郡〇〇町),
# the town and its block numbers (2-21-1, 3丁目1番1号, 北1条西2丁目); a ward or city may stand
# without its prefecture, but then its town must be written in kanji or katakana (else "地区の
# 皆さん3-4人" would be an address). Block numbers are required: "東京都渋谷区" alone names a
# place, not where someone lives. Matched in the folded text (ASCII digits and dashes).
_JA = r"[\u3005\u3006\u4e00-\u9fff\u30a1-\u30f6\u30fd\u30fe]"  # kanji, 々, katakana, ヶ
_JA_KANA = r"[\u3005\u3006\u4e00-\u9fff\u3041-\u3096\u30a1-\u30f6\u30fd\u30fe]"
_PREFECTURE = rf"(?:東京都|北海道|(?:京都|大阪)府|{_JA}{{2,3}}県)"
_MUNICIPALITY = rf"{_JA}{{1,6}}?(?:市|区|郡{_JA}{{1,5}}?[町村]|町|村)"
_BLOCK_END = r"(?:丁目|番地?|号|条|[-の](?=\d))"
_BLOCKS = rf"(?:\d+|[一二三四五六七八九十]+){_BLOCK_END}(?:\d+{_BLOCK_END}?|[東西南北](?=\d))*"
JP_ADDRESS = re.compile(rf"(?:{_PREFECTURE}(?:{_MUNICIPALITY}){{1,2}}{_JA_KANA}{{0,10}}?"
                        rf"|{_JA}{{1,6}}?[市区]{_JA}{{0,10}}?){_BLOCKS}")
# English street addresses: "1600 Amphitheatre Parkway, Mountain View, CA 94043",
# "10 Downing Street, London SW1A 2AA", "350 5th Ave, Suite 300". The street's name is
# capitalised (so "in 2 hours on the way" is not an address); its suffix may be any case.
# A suffix that is also an everyday word ("3 Google Drive files", "2 Times Square tickets")
# makes an address only with the city after it.
_STREET = (r"(?<![\w,.-])\d{1,6}[A-Za-z]?"  # the house number, then the street's name
           r"(?:\s+(?:[NSEW]\.?|\d+(?:st|nd|rd|th)|[A-Z][A-Za-z'-]+)){1,4}\s+")
_SUFFIX = (r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|parkway|pkwy|highway|hwy|"
           r"terrace|ter)\b\.?")
_WORD_SUFFIX = r"(?i:drive|dr|way|court|ct|place|pl|square|sq|circle|cir)\b\.?"
_UNIT = r"(?:,?\s+(?i:apt|apartment|suite|ste|unit|#)\.?\s*[\w-]+)?"
_CITY = r",\s*[A-Z][a-z]+(?:\s+[A-Z][a-z]+){0,2}"
_POSTCODE = (r"(?:,?\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?"  # a US state and ZIP code
             r"|\s+[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2})?")  # a UK postcode
EN_ADDRESS = re.compile(rf"{_STREET}(?:{_SUFFIX}{_UNIT}(?:{_CITY})?|{_WORD_SUFFIX}{_UNIT}{_CITY})"
                        rf"{_POSTCODE}")

LABELS = {"email": "[email]", "phone": "[phone]", "card": "[card]",
          "postcode": "[postcode]", "line": "[line-id]", "address": "[address]",
          "name": "[name]", "crm": "[crm-id]"}
ALREADY_MASKED = re.compile("|".join(re.escape(label) for label in LABELS.values()))
PHONE_REGION = "JP"  # how to read numbers written without a country code
# Other countries whose national formats are read too, but only when written in groups
# ("(415) 555-2671", "010-1234-5678"): a bare run of digits is an order number far more often
# than a foreign phone number. Regions whose numbering makes dates valid (DE, TH) are left out.
NATIONAL_FORMAT_REGIONS = ("US", "GB", "KR", "CN", "TW", "AU")
MIN_NATIONAL_DIGITS = 8  # fewer digits left over cannot be a national number with its area
# Invalid candidates each extra region's pass reads before it gives up: a message is never
# near that many, a wall of digits would cost every region a whole read.
NATIONAL_FORMAT_TRIES = 100
_WITHOUT_PLUS = phonenumbers.CountryCodeSource.FROM_NUMBER_WITHOUT_PLUS_SIGN
MIN_TERM = 2  # a one-letter name part would mask that letter everywhere

Term = tuple[str, str]  # a value from the customer's record, and its label's kind
# Identity kinds worth looking for in text (a web visitor id is random, never typed).
TERM_KINDS = {"email": "email", "phone": "phone", "line": "line", "crm": "crm"}


# Full-width ASCII (０-９, ＠, ｔａｒｏ, …), the ideographic space and the dashes people type in
# phone numbers, folded one character for one character: what is found in the folded copy
# is replaced at the same place in the original, which is otherwise left exactly as written.
_FOLD = str.maketrans({**{chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)},
                       "\u3000": " ", "ー": "-", "‐": "-", "‑": "-", "–": "-", "—": "-",
                       "−": "-"})

Span = tuple[int, int, str]


def mask_text(text: str, region: str = PHONE_REGION, known: tuple[Term, ...] = ()) -> str:
    """``text`` with every piece of personal data replaced by its label; ``known`` are the
    customer's own values (``personal_terms``), masked wherever they appear."""
    if not text:
        return text
    # A replacement can leave a neighbour standing alone ("Bob150-0001" → "Bob[postcode]",
    # and now "Bob" is a whole word): mask again until nothing changes. Labels are never
    # masked, so each round that changes something consumes unmasked text, and this ends.
    while (masked := _mask_once(text, region, known)) != text:
        text = masked
    return masked


def _mask_once(text: str, region: str, known: tuple[Term, ...]) -> str:
    folded = text.translate(_FOLD)
    labels = [(m.start(), m.end()) for m in ALREADY_MASKED.finditer(folded)]
    found = [f for f in _findings(folded, region, known) if not _overlaps(f, labels)]
    return _replace(text, _kept(found))


def _findings(folded: str, region: str, known: tuple[Term, ...]) -> list[Span]:
    found = _matches(EMAIL, folded, "email") + _matches(LINE_USER, folded, "line")
    found += _matches(JP_ADDRESS, folded, "address")  # block numbers may be 三丁目
    if any(c.isdigit() for c in folded):  # most messages have none: skip the costly part
        found += [(m.start(), m.end(), "card") for m in CARD.finditer(folded)
                  if _luhn_ok(re.sub(r"\D", "", m.group()))]
        found += [(start, end, "phone") for start, end in _phones(folded, region)]
        found += _matches(POSTCODE, folded, "postcode") + _matches(EN_ADDRESS, folded, "address")
    return found + _known_findings(folded, known)


def phone_numbers_in(text: str, region: str = PHONE_REGION) -> list[str]:
    """The phone numbers written in ``text``, as written (folded to ASCII), in order: what
    masking would replace with [phone]."""
    folded = text.translate(_FOLD)
    if not any(c.isdigit() for c in folded):
        return []
    return [folded[start:end] for start, end in sorted(_phones(folded, region))]


def _matches(pattern: re.Pattern[str], folded: str, kind: str) -> list[Span]:
    return [(m.start(), m.end(), kind) for m in pattern.finditer(folded)]


def _phones(folded: str, region: str) -> list[tuple[int, int]]:
    """Numbers valid as written in ``region`` (with or without a country code), then grouped
    numbers valid in one of ``NATIONAL_FORMAT_REGIONS`` in what is left. Leniency VALID,
    never POSSIBLE: POSSIBLE takes any 8-12 digit order, parcel or product number for one."""
    found = _valid_phones(folded, region)
    rest = _blanked(folded, found)
    for other in NATIONAL_FORMAT_REGIONS:
        if sum(c.isdigit() for c in rest) < MIN_NATIONAL_DIGITS:
            break
        spans = _valid_phones(rest, other, grouped=True, tries=NATIONAL_FORMAT_TRIES)
        found, rest = found + spans, _blanked(rest, spans)
    return found


def _valid_phones(text: str, region: str, grouped: bool = False,
                  tries: int = 65535) -> list[tuple[int, int]]:
    return [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(
        text, region, leniency=phonenumbers.Leniency.VALID, max_tries=tries)
        if not (m.raw_string.isdigit() and (grouped or _country_code_guessed(m, region)))]


def _country_code_guessed(match: phonenumbers.PhoneNumberMatch, region: str) -> bool:
    """Read with a country code nobody marked with + ("812000000000" as +81 20…): written
    together, that is an order number far more often than a phone number."""
    number = phonenumbers.parse(match.raw_string, region, keep_raw_input=True)
    return number.country_code_source == _WITHOUT_PLUS


def _blanked(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with ``spans`` replaced by spaces: the same length, so offsets still hold."""
    for start, end in spans:
        text = text[:start] + " " * (end - start) + text[end:]
    return text


def personal_terms(name: str | None,
                   identities: Iterable[tuple[str, str]] = ()) -> tuple[Term, ...]:
    """What a customer's record says about them that may reappear in their text: the name
    (whole, without its spaces, and each part: 「山田 太郎」 is also 「山田太郎」, 「山田」,
    「太郎」) unless it is the hub's "Guest 1A2B", and identity values as ``(kind, value)``."""
    terms: dict[str, str] = {}
    parts = [] if is_guest_name(name) else (name or "").split()
    for term in [" ".join(parts), "".join(parts), *parts]:
        terms.setdefault(term, "name")
    for kind, value in identities:
        if kind in TERM_KINDS:
            terms.setdefault(value.strip(), TERM_KINDS[kind])
    return tuple((term, kind) for term, kind in terms.items() if len(term) >= MIN_TERM)


def _known_findings(folded: str, known: tuple[Term, ...]) -> list[Span]:
    if not known:
        return []
    pattern, kinds = _known_pattern(known)
    return [(m.start(), m.end(), kinds.get(m.group().lower(), "name"))
            for m in pattern.finditer(folded)]


@functools.lru_cache(maxsize=1024)  # one per customer in an export, reused for each row
def _known_pattern(known: tuple[Term, ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    terms = sorted(((term.translate(_FOLD), kind) for term, kind in known),
                   key=lambda pair: -len(pair[0]))  # the whole name before its parts
    pattern = "|".join(_whole(term) for term, _ in terms)
    return re.compile(pattern, re.IGNORECASE), {term.lower(): kind for term, kind in terms}


def _whole(term: str) -> str:
    """``term`` as a regex; a Latin word only as a whole word ("Al" is not in "Alice")."""
    before = r"(?<![A-Za-z0-9])" if term[0].isascii() and term[0].isalnum() else ""
    after = r"(?![A-Za-z0-9])" if term[-1].isascii() and term[-1].isalnum() else ""
    return before + re.escape(term) + after


def _overlaps(span: tuple[int, int] | Span, others: list[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in others)


def _kept(found: list[Span]) -> list[Span]:
    """Left to right, the longest finding wins where two overlap."""
    kept: list[Span] = []
    for start, end, kind in sorted(found, key=lambda f: (f[0], f[0] - f[1])):
        if not kept or start >= kept[-1][1]:
            kept.append((start, end, kind))
    return kept


def _replace(text: str, spans: list[Span]) -> str:
    pieces, last = [], 0
    for start, end, kind in spans:
        pieces += [text[last:start], LABELS[kind]]
        last = end
    return "".join(pieces) + text[last:]


def mask_name(name: str | None, customer_id: int | None) -> str:
    """A customer's name becomes their pseudonymous number (rows can still be grouped)."""
    return f"#{customer_id}" if customer_id is not None else "***" if name else ""


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0
