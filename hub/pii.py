"""Personal data in free text, found and masked (exports on request; APPI / GDPR).

What is masked: e-mail addresses, telephone numbers (found by ``phonenumbers``, Japanese
domestic formats and international ones), payment-card numbers (14–19 digits that pass the
Luhn check), Japanese postal codes (〒123-4567 / 123-4567) and LINE user ids. Each becomes a
bracketed label, so a reader still sees that something was there and of which kind.
Masking is idempotent: masked text has nothing left to mask.
"""

from __future__ import annotations

import re

import phonenumbers

EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# 14-19 digits from the card networks' ranges (2-6), written together or in the groups
# people type (4-4-4-4, or Amex's 4-6-5); 13 digits are left alone, as a JAN/EAN product
# code is 13. Groups are matched whole, so "4000 0000 0000 0002 3,000円" ends at the card.
CARD = re.compile(r"(?<![\d-])(?:[2-6]\d{13,18}|[2-6]\d{3}(?:[ -]\d{4}){3}"
                  r"|3\d{3}[ -]\d{6}[ -]\d{5})(?![\d-])")
POSTCODE = re.compile(r"〒\s*\d{3}-?\d{4}|(?<![\d-])\d{3}-\d{4}(?![\d-])")
LINE_USER = re.compile(r"\bU[0-9a-f]{32}\b")
LABELS = {"email": "[email]", "phone": "[phone]", "card": "[card]",
          "postcode": "[postcode]", "line": "[line-id]"}
PHONE_REGION = "JP"  # how to read numbers written without a country code


# Full-width ASCII (０-９, ＠, ｔａｒｏ, …), the ideographic space and the dashes people type in
# phone numbers, folded one character for one character: what is found in the folded copy
# is replaced at the same place in the original, which is otherwise left exactly as written.
_FOLD = str.maketrans({**{chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)},
                       "\u3000": " ", "ー": "-", "‐": "-", "‑": "-", "–": "-", "—": "-",
                       "−": "-"})


def mask_text(text: str, region: str = PHONE_REGION) -> str:
    """``text`` with every piece of personal data replaced by its label."""
    if not text:
        return text
    folded = text.translate(_FOLD)
    return _replace(text, _kept(_findings(folded, region)))


def _findings(folded: str, region: str) -> list[tuple[int, int, str]]:
    found = [(m.start(), m.end(), "email") for m in EMAIL.finditer(folded)]
    found += [(m.start(), m.end(), "line") for m in LINE_USER.finditer(folded)]
    found += [(m.start(), m.end(), "card") for m in CARD.finditer(folded)
              if _luhn_ok(re.sub(r"\D", "", m.group()))]
    found += [(m.start, m.end, "phone") for m in phonenumbers.PhoneNumberMatcher(
        folded, region, leniency=phonenumbers.Leniency.VALID)]
    found += [(m.start(), m.end(), "postcode") for m in POSTCODE.finditer(folded)]
    return found


def _kept(found: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Left to right, the longest finding wins where two overlap."""
    kept: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(found, key=lambda f: (f[0], f[0] - f[1])):
        if not kept or start >= kept[-1][1]:
            kept.append((start, end, kind))
    return kept


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
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
