"""What is new in a reply: quoted history and signatures folded away.

English and Japanese mailers announce the quoted history differently ("On … wrote:",
「山田さんは書きました:」, "-----Original Message-----", Outlook's 差出人:/送信日時: block,
Gmail's "2026年11月22日(日) 10:00 山田 <a@b>:"); a trailing run of ``>`` lines is history
too. The full text is always kept beside the new text.
"""

from __future__ import annotations

import re

_WROTE = re.compile(r"^(.{0,300}\bwrote\s*[:：]|.{0,300}書きました\s*[:：]|"
                    r".{0,300}(さん|様|氏)\s*(は|が)書きました)\s*$", re.IGNORECASE)
_DATED_SENDER = re.compile(r"^\d{4}\s*[年/\-.]\s*\d{1,2}\s*[月/\-.]\s*\d{1,2}.{0,200}"
                           r"(@|<|さん|様).{0,200}[:：]\s*$")
_SEPARATOR_HEADER = re.compile(
    r"^[-_=\s]{2,}\s*(original message|forwarded message|元のメッセージ|転送されたメッセージ|"
    r"転送メッセージ|オリジナルメッセージ)\s*[-_=\s]*$", re.IGNORECASE)
_FROM_LINE = re.compile(r"^\*?(from|差出人|送信者|送信元)\s*\*?\s*[:：]", re.IGNORECASE)
_HEADER_LINE = re.compile(
    r"^\*?(sent|date|to|subject|cc|送信日時|日時|日付|宛先|件名)\s*\*?\s*[:：]", re.IGNORECASE)
_QUOTED = re.compile(r"^\s*(>|＞|\|)")
_SIG_DELIMITER = re.compile(r"^--\s?$")
_SIG_RULE = re.compile(r"^\s*([-=_*~#━─＝＿～・]\s*){8,}$")
_SENT_FROM = re.compile(r"^(sent from my .{1,40}|.{1,20}から送信)$", re.IGNORECASE)
_SIG_MAX_LINES = 12


def is_quoted(line: str) -> bool:
    return bool(_QUOTED.match(line))


def _quote_header_at(lines: list[str], index: int) -> bool:
    line = lines[index].strip()
    if not line or is_quoted(line):
        return False
    joined = (line + " " + lines[index + 1].strip()) if index + 1 < len(lines) else line
    if _SEPARATOR_HEADER.match(line):
        return True
    if _WROTE.match(line) or (line.lower().startswith("on ") and _WROTE.match(joined)):
        return True
    if _DATED_SENDER.match(line) or (re.match(r"^\d{4}", line) and _DATED_SENDER.match(joined)):
        return True
    if _FROM_LINE.match(line):
        following = [candidate.strip() for candidate in lines[index + 1:index + 5]]
        return sum(1 for candidate in following if _HEADER_LINE.match(candidate)) >= 2
    return False


def _trailing_quote_start(lines: list[str]) -> int | None:
    start = None
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if is_quoted(line):
            start = index
        elif line.strip():
            break
    return start


def _history_start(lines: list[str]) -> int | None:
    for index in range(len(lines)):
        if _quote_header_at(lines, index):
            return index
    return _trailing_quote_start(lines)


def _signature_start(lines: list[str]) -> int | None:
    first_candidate = max(0, len(lines) - _SIG_MAX_LINES - 1)
    for index in range(first_candidate, len(lines)):
        line = lines[index].strip()
        is_rule = bool(_SIG_DELIMITER.match(lines[index]) or _SIG_RULE.match(line))
        if (is_rule and index > 0) or (_SENT_FROM.match(line) and index == len(lines) - 1):
            return index
    return None


def split_reply(text: str) -> tuple[str, bool]:
    """The new part of ``text`` and whether anything was folded away."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = _history_start(lines)
    new_lines = lines[:cut] if cut is not None else lines
    signature = _signature_start(new_lines)
    if signature is not None and "".join(new_lines[:signature]).strip():
        new_lines = new_lines[:signature]
    new_text = "\n".join(new_lines).strip()
    if not new_text:
        return text.strip(), False
    return new_text, new_text != text.strip()
