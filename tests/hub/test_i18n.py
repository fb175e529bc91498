"""Every string the UI asks for exists in Japanese and in English."""

from __future__ import annotations

import re
from pathlib import Path

from agent_ui.i18n import FOLDER, messages

ROOT = Path(__file__).resolve().parents[2]
# t("key"), t('key', locale), t("key", {...}): the literal keys; computed ones
# ("inbox.status." + status) cannot be read from the source and are not checked here.
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([A-Za-z0-9_.-]+)["']\s*[,)]""")
UI_SOURCES = ["agent_ui/static/*.js", "agent_ui/templates/*.html",
              "channels/*/static/*.js", "channels/*/templates/*.html"]


def _used_keys() -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for pattern in UI_SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            for key in LITERAL_KEY.findall(path.read_text(encoding="utf-8")):
                used.setdefault(key, []).append(str(path.relative_to(ROOT)))
    return used


def test_japanese_and_english_have_the_same_keys() -> None:
    locales = sorted(path.stem for path in FOLDER.glob("*.json"))
    assert locales == ["en", "ja"]
    assert set(messages("ja")) ^ set(messages("en")) == set()


def test_no_translation_is_empty() -> None:
    for locale in ("ja", "en"):
        assert [key for key, text in messages(locale).items() if not text.strip()] == []


def test_every_key_the_ui_names_is_translated() -> None:
    used = _used_keys()
    assert len(used) > 100  # the pattern still finds the UI's keys
    missing = {key: files for key, files in used.items() if key not in messages("en")}
    assert missing == {}
