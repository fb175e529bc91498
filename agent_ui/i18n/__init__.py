"""UI strings in Japanese and English; one JSON file per locale."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from markupsafe import Markup

FOLDER = Path(__file__).parent
DEFAULT = "ja"


@cache
def messages(locale: str) -> dict[str, str]:
    path = FOLDER / f"{locale}.json"
    if not path.exists():
        path = FOLDER / f"{DEFAULT}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def translate(key: str, locale: str = DEFAULT) -> str:
    return messages(locale).get(key) or messages("en").get(key) or key


def messages_json(locale: str) -> Markup:
    """For a <script type="application/json"> block: escaped so it cannot close the tag."""
    text = json.dumps(messages(locale), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)
