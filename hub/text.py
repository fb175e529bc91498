"""Text as it may be stored: no NUL or other control characters (PostgreSQL refuses NUL)."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Bidi embeddings, overrides and isolates: in a name, "\u202eLINE_nimda" reads as
# "admin_ENIL" to the agent. Names never need them (the marks U+200E/F stay).
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_C1_CONTROLS = re.compile("[\x80-\x9f]")  # in a name, only ever mis-decoded bytes
_CONTROL_OR_BIDI = re.compile(
    f"{_CONTROL.pattern}|{_BIDI_CONTROLS.pattern}|{_C1_CONTROLS.pattern}")


def clean_text(text: str) -> str:
    """Drop control characters except tab, newline and carriage return."""
    return _CONTROL.sub("", text)


def clean_name(name: str) -> str:
    """A person's name as it may be shown: no control characters (C0 but tab and line
    ends, and C1), no bidi controls, no whitespace at either end."""
    return _CONTROL_OR_BIDI.sub("", name).strip()
