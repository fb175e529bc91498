"""Text as it may be stored: no NUL or other control characters (PostgreSQL refuses NUL)."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Bidi embeddings, overrides and isolates: in a name, "\u202eLINE_nimda" reads as
# "admin_ENIL" to the agent. Names never need them (the marks U+200E/F stay).
# C1 controls (U+0080-9F) in a name are only ever mis-decoded bytes.
_NOT_IN_A_NAME = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: str) -> str:
    """Drop control characters except tab, newline and carriage return."""
    return _CONTROL.sub("", text)


def clean_name(name: str) -> str:
    """A person's name as it may be shown: no control characters (C0 but tab and line
    ends, and C1), no bidi controls, no whitespace at either end."""
    return _NOT_IN_A_NAME.sub("", name).strip()
