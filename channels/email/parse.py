"""Raw RFC 5322 bytes → ``ParsedMail``. Pure: no I/O, no hub, never raises.

Structure comes from Python's ``email`` package with the modern policy; every header and
text part is decoded here from its raw bytes (see ``charsets``), so a wrong or unknown
charset label costs a flag, never the message. A message that cannot be parsed at all
comes back flagged ``unparseable`` with whatever could be salvaged.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from channels.email.charsets import decode_bytes
from channels.email.htmltext import html_to_text
from channels.email.quotes import split_reply

_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,250}>")  # printable, no < >
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # NUL breaks PostgreSQL text
_LOOP_HEADERS = ("auto-submitted", "precedence", "list-id", "list-unsubscribe",
                 "return-path", "x-autoreply", "x-autorespond", "x-auto-response-suppress",
                 "x-loop", "x-omohub-loop")
MAX_TEXT_CHARS = 200_000


@functools.lru_cache(maxsize=4096)
def _parsed_header(name: str, value: str) -> Any:
    return policy.default.header_fetch_parse(name, value)


class _CachingPolicy(EmailPolicy):
    """The modern policy, remembering parsed headers: ``email`` re-parses Content-Type on
    every ``get_content_type()``/``get_param()``, which was half of the parse cost."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):
            return value
        return _parsed_header(name, value)


POLICY = _CachingPolicy()


@dataclass(frozen=True)
class MailPart:
    """A file of a mail, received or to send: its name, type and bytes."""

    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class DeliveryReport:
    """What a DSN (RFC 3464) says about one recipient."""

    action: str
    status: str
    recipient: str
    diagnostic: str

    @property
    def failed(self) -> bool:
        return self.action.lower() == "failed" or self.status.startswith("5")

    def reason(self) -> str:
        parts = [p for p in (self.status, self.diagnostic or self.action, self.recipient) if p]
        return " ".join(parts)[:480] or "delivery failed"


@dataclass
class ParsedMail:
    message_id: str | None = None
    from_address: str | None = None
    from_name: str | None = None
    to: list[str] = field(default_factory=list)
    subject: str = ""
    date: datetime | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    text: str = ""  # the new text only
    full_text: str = ""  # everything, quoted history and signature included
    folded: bool = False
    html_only: bool = False
    attachments: list[MailPart] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # the loop-relevant ones
    reports: list[DeliveryReport] = field(default_factory=list)
    original_ids: list[str] = field(default_factory=list)  # Message-IDs of returned mail
    content_type: str = "text/plain"
    flags: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    @property
    def unparseable(self) -> bool:
        return "unparseable" in self.flags

    def flag(self, name: str) -> None:
        if name not in self.flags:
            self.flags.append(name)


# --- headers ------------------------------------------------------------------------


def _raw_bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def _word_payload(encoding: bytes, payload: bytes) -> bytes:
    if encoding.lower() == b"b":
        stripped = payload.rstrip(b"=")
        return base64.b64decode(stripped + b"=" * (-len(stripped) % 4))
    return binascii.a2b_qp(payload.replace(b"_", b" "), header=True)


def _header_segments(data: bytes) -> list[tuple[str | None, bytes]]:
    """Split an unfolded header into (charset or None for raw text, bytes) runs."""
    segments: list[tuple[str | None, bytes]] = []
    position = 0
    for match in _ENCODED_WORD.finditer(data):
        between = data[position:match.start()]
        after_word = segments and segments[-1][0] is not None
        if between and not (after_word and not between.strip()):
            segments.append((None, between))
        charset = match.group(1).split(b"*")[0].decode("ascii", "replace")
        try:
            decoded = _word_payload(match.group(2), match.group(3))
        except (binascii.Error, ValueError):
            segments.append((None, match.group(0)))
        else:
            if segments and segments[-1][0] == charset:
                segments[-1] = (charset, segments[-1][1] + decoded)
            else:
                segments.append((charset, decoded))
        position = match.end()
    if position < len(data):
        segments.append((None, data[position:]))
    return segments


def decode_header_value(raw: str | bytes) -> str:
    """An RFC 2047 header (or one with raw 8-bit bytes) as text; folding undone."""
    data = _raw_bytes(raw) if isinstance(raw, str) else raw
    data = _FOLD.sub(b"", data).replace(b"\r", b"").replace(b"\n", b"")
    parts = []
    for charset, chunk in _header_segments(data):
        parts.append(decode_bytes(chunk, charset or "ascii").text)
    return re.sub(r"\s+", " ", _CONTROLS.sub("", "".join(parts))).strip()


def _raw_header(message: Message, name: str) -> str | None:
    for key, value in message.raw_items():
        if key.lower() == name:
            return str(value)
    return None


def _first_address(raw: str | None) -> tuple[str | None, str | None]:
    if not raw:
        return None, None
    unfolded = re.sub(r"\s+", " ", raw)
    for name, address in getaddresses([unfolded]):
        if "@" in address:
            decoded = decode_header_value(name) if name else None
            return decoded or None, decode_header_value(address)
    match = re.search(r"[\w.+\-]+@[\w\-]+(\.[\w\-]+)+", decode_header_value(raw))
    return None, (match.group(0) if match else None)


def _ids(raw: str | None) -> list[str]:
    return _MESSAGE_ID.findall(re.sub(r"\s+", "", raw)) if raw else []


def _date(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        moment = parsedate_to_datetime(decode_header_value(raw))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _read_headers(message: Message, mail: ParsedMail) -> None:
    mail.from_name, mail.from_address = _first_address(_raw_header(message, "from"))
    if mail.from_address is None:
        mail.from_name, mail.from_address = _first_address(_raw_header(message, "sender"))
    to_raw = " ".join(filter(None, (_raw_header(message, "to"), _raw_header(message, "cc"))))
    mail.to = [decode_header_value(a) for _, a in getaddresses([to_raw]) if "@" in a]
    mail.subject = decode_header_value(_raw_header(message, "subject") or "")[:998]
    ids = _ids(_raw_header(message, "message-id"))
    mail.message_id = ids[0] if ids else None
    replies = _ids(_raw_header(message, "in-reply-to"))
    mail.in_reply_to = replies[0] if replies else None
    mail.references = _ids(_raw_header(message, "references"))[-50:]
    mail.date = _date(_raw_header(message, "date"))
    for name in _LOOP_HEADERS:
        value = _raw_header(message, name)
        if value is not None:
            mail.headers[name] = decode_header_value(value)[:300]


# --- body and attachments -----------------------------------------------------------


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return _raw_bytes(raw) if isinstance(raw, str) else b""


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except (TypeError, ValueError, LookupError):
        name = None
    if name and "\ufffd" in name:  # raw 8-bit bytes (e.g. Shift_JIS): read them ourselves
        name = _raw_param(part, "content-disposition", "filename") or _raw_param(
            part, "content-type", "name") or name
    if not name:
        return None
    text = decode_header_value(name) if ("=?" in name or not name.isascii()) else name
    return _CONTROLS.sub("", text).strip() or None


def _raw_param(part: Message, header: str, param: str) -> str | None:
    raw = _raw_header(part, header) or ""
    match = re.search(rf'(?i)(?:^|;)\s*{param}\s*=\s*(?:"([^"]*)"|([^;\s]+))', raw)
    return (match.group(1) or match.group(2)) if match else None


def _decode_text_part(part: Message, mail: ParsedMail) -> str:
    data = _payload_bytes(part)
    try:
        label = part.get_content_charset()
    except (TypeError, ValueError, LookupError):
        label = None
    decoded = decode_bytes(data, label)
    if decoded.fallback:
        mail.flag("charset_fallback")
    return decoded.text


def _best_alternative(parts: list[Message]) -> Message | None:
    ranking = {"text/plain": 0, "multipart/related": 1, "multipart/mixed": 1,
               "multipart/alternative": 1, "text/html": 2}
    ranked = [(ranking.get(p.get_content_type(), 9), i, p) for i, p in enumerate(parts)]
    ranked = [r for r in ranked if r[0] < 9]
    return min(ranked, key=lambda r: (r[0], r[1]))[2] if ranked else None


class _Walker:
    """Collects body texts and attachments from a message tree."""

    def __init__(self, mail: ParsedMail) -> None:
        self.mail = mail
        self.texts: list[str] = []
        self.html_texts: list[str] = []

    def walk(self, part: Message, depth: int = 0) -> None:
        ctype = part.get_content_type()
        if depth > 20:
            self.mail.flag("too_deep")
            return
        if ctype == "message/rfc822" or ctype == "text/rfc822-headers":
            self._returned_message(part)
            return
        if ctype == "message/delivery-status":
            self._delivery_status(part)
            return
        if part.is_multipart():
            self._multipart(part, ctype, depth)
            return
        self._leaf(part, ctype)

    def _multipart(self, part: Message, ctype: str, depth: int) -> None:
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        if ctype == "multipart/alternative":
            best = _best_alternative(children)
            children = [best] if best is not None else []
        for child in children:
            self.walk(child, depth + 1)

    def _leaf(self, part: Message, ctype: str) -> None:
        filename = _filename(part)
        inline = part.get_content_disposition() != "attachment" and not filename
        if ctype == "text/plain" and inline:
            self.texts.append(_decode_text_part(part, self.mail))
        elif ctype == "text/html" and inline:
            self.html_texts.append(html_to_text(_decode_text_part(part, self.mail)))
        elif ctype.startswith("multipart/"):
            self.mail.flag("broken_multipart")
            self.texts.append(_decode_text_part(part, self.mail))
        else:
            name = filename or _default_name(ctype, len(self.mail.attachments) + 1)
            self.mail.attachments.append(MailPart(name, ctype, _payload_bytes(part)))

    def _returned_message(self, part: Message) -> None:
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            data = inner[0].as_bytes(policy=policy.SMTP.clone(linesep="\r\n"))
        else:
            data = _payload_bytes(part)
        self.mail.original_ids.extend(_returned_ids(data))
        name = _filename(part) or f"attached-{len(self.mail.attachments) + 1}.eml"
        self.mail.attachments.append(MailPart(name, "message/rfc822", data))

    def _delivery_status(self, part: Message) -> None:
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            blocks = list(BytesParser(policy=policy.compat32).parsebytes(
                _payload_bytes(part)).walk())
        for block in blocks[1:] if len(blocks) > 1 else blocks:
            if isinstance(block, Message):
                self.mail.reports.append(_report(block))


def _returned_ids(data: bytes) -> list[str]:
    headers = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    match = re.search(rb"(?im)^message-id:\s*(<[^<>\s]+>)", headers)
    return [match.group(1).decode("ascii", "replace")] if match else []


def _report(block: Message) -> DeliveryReport:
    def field_value(name: str) -> str:
        raw = _raw_header(block, name) or ""
        return decode_header_value(raw)

    recipient = field_value("final-recipient") or field_value("original-recipient")
    return DeliveryReport(action=field_value("action"), status=field_value("status"),
                          recipient=recipient.split(";")[-1].strip(),
                          diagnostic=field_value("diagnostic-code"))


def _default_name(ctype: str, number: int) -> str:
    extension = {"text/plain": "txt", "text/html": "html", "image/png": "png",
                 "image/jpeg": "jpg", "image/gif": "gif", "application/pdf": "pdf",
                 "text/calendar": "ics"}.get(ctype, "bin")
    return f"part-{number}.{extension}"


# --- the whole message --------------------------------------------------------------


def _collect_defects(message: Message) -> list[str]:
    names: list[str] = []
    for part in message.walk():
        names.extend(type(defect).__name__ for defect in getattr(part, "defects", []))
    return sorted(set(names))


def _fill_body(message: Message, mail: ParsedMail) -> None:
    walker = _Walker(mail)
    walker.walk(message)
    texts = [t for t in walker.texts if t.strip()]
    if not texts and walker.html_texts:
        texts = walker.html_texts
        mail.html_only = True
    full = "\n\n".join(t.strip("\r\n") for t in texts)
    full = full.replace("\r\n", "\n").replace("\r", "\n")[:MAX_TEXT_CHARS]
    full = _CONTROLS.sub("", full)
    mail.full_text = full
    mail.text, mail.folded = split_reply(full) if full else ("", False)


def parse_message(raw: bytes) -> ParsedMail:
    """Parse ``raw``; on any failure return what could be salvaged, flagged."""
    try:
        message: Any = BytesParser(policy=POLICY).parsebytes(_strip_mbox_line(raw))
        mail = ParsedMail(content_type=message.get_content_type())
        _read_headers(message, mail)
        _fill_body(message, mail)
        mail.defects = _collect_defects(message)
    except Exception as exc:  # the email package has many corners; never lose the mail
        mail = _salvage(raw, exc)
    if mail.from_address is None:
        mail.flag("no_sender")
    if mail.defects:
        mail.flag("defects")
    return mail


def _strip_mbox_line(raw: bytes) -> bytes:
    if raw.startswith(b"From "):
        newline = raw.find(b"\n")
        return raw[newline + 1:] if newline >= 0 else b""
    return raw


def _salvage(raw: bytes, exc: Exception) -> ParsedMail:
    mail = ParsedMail(flags=["unparseable"], defects=[type(exc).__name__])
    head = raw[:65536]
    for pattern, attribute in ((rb"(?im)^from:([^\r\n]*)", "from"),
                               (rb"(?im)^subject:([^\r\n]*)", "subject"),
                               (rb"(?im)^message-id:([^\r\n]*)", "message_id")):
        match = re.search(pattern, head)
        if match is None:
            continue
        value = match.group(1).decode("utf-8", "surrogateescape")
        try:
            if attribute == "from":
                mail.from_name, mail.from_address = _first_address(value)
            elif attribute == "subject":
                mail.subject = decode_header_value(value)
            else:
                ids = _ids(value)
                mail.message_id = ids[0] if ids else None
        except Exception:  # a salvage attempt must not fail either
            continue
    return mail


def synthetic_message_id(raw: bytes) -> str:
    """A stable id for mail that has none (or an unusable one), so redelivery dedupes."""
    return f"<{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id.omohub.invalid>"
