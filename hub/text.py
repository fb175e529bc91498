"""Text as it may be stored: no NUL or other control characters (PostgreSQL refuses NUL)."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Drop control characters except tab, newline and carriage return."""
    return _CONTROL.sub("", text)
