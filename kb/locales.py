"""An article's language, as a BCP 47 language tag: ``ja``, ``en``, ``zh-TW``, ``pt-BR``.

A tag here is a language — two letters from ISO 639-1, or three (ISO 639-2/3, too many to
list, so only their form is checked) — with at most one subtag: a script (``zh-Hant``) or a
region (``pt-BR``, ``es-419``). That covers what shops write and fits ``kb_articles.locale``
(8 characters). Tags are case-insensitive; ``normalize_locale`` gives the usual spelling
(``pt-br`` → ``pt-BR``), so that a search for one language finds all its articles.
"""

from __future__ import annotations

import re

_ISO_639_1_CODES = """
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu
    cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi
    ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks
    ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl
    nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl
    sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve
    vi vo wa wo xh yi yo za zh zu
"""
ISO_639_1 = frozenset(_ISO_639_1_CODES.split())

# ASCII classes spelled out: under re.IGNORECASE, [a-z] would also match "ſ" and "K" (Kelvin)
_TAG = re.compile(r"(?P<language>[A-Za-z]{2,3})"
                  r"(?:-(?:(?P<script>[A-Za-z]{4})|(?P<region>[A-Za-z]{2}|[0-9]{3})))?")
EXAMPLES = "ja, en, zh-TW or pt-BR"


class InvalidLocale(ValueError):
    """Not a language tag this knowledge base accepts."""

    code = "invalid_locale"  # the API's error code

    def __init__(self, value: object) -> None:
        super().__init__(f"'locale' must be a language tag such as {EXAMPLES}, not {value!r}")
        self.value = value


def normalize_locale(value: object) -> str:
    """``value`` as a language tag in its usual spelling; ``InvalidLocale`` when it is not
    one (a number, an empty or unknown language, an underscore instead of a hyphen…)."""
    match = _TAG.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InvalidLocale(value)
    language = match["language"].lower()
    if len(language) == 2 and language not in ISO_639_1:
        raise InvalidLocale(value)
    if match["script"]:
        return f"{language}-{match['script'].title()}"
    if match["region"]:
        return f"{language}-{match['region'].upper()}"
    return language
