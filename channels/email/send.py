"""Outbound mail: one reply → one RFC 5322 message with our own Message-ID and the
threading headers customers' mailers need, sent through the configured relay.

UTF-8 by default; ISO-2022-JP on request for legacy Japanese clients (falling back to
UTF-8 for a message whose text ISO-2022-JP cannot carry, e.g. ①). Every value that goes
into a header is stripped of line breaks and control characters first (no injection).
"""

from __future__ import annotations

import html
import re
import ssl
from dataclasses import dataclass, field
from email.charset import BASE64, Charset
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from typing import Any

from channels.base import SendResult
from channels.email.parse import MailPart
from hub.models import utcnow

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv|答复|回复|返信)\s*[:：]\s*)+", re.IGNORECASE)
_TAG = re.compile(r"\[#(\d{1,12})\]")
SMTP_TIMEOUT = 30.0
DEFAULT_SUBJECT = "お問い合わせの件 / Your inquiry"


def clean_header(value: str, limit: int = 200) -> str:
    """A header value that cannot start a new header line."""
    return " ".join(_CONTROL.sub(" ", value).split())[:limit]


def reply_subject(conversation_id: int, customer_subject: str | None,
                  agent_subject: str | None = None) -> str:
    """``Re: <their subject> [#id]``; the agent's own subject wins when given."""
    subject = clean_header(agent_subject or "")
    if not subject:
        base = _REPLY_PREFIX.sub("", clean_header(customer_subject or ""))
        base = _TAG.sub("", base).strip()
        subject = f"Re: {base}" if base else DEFAULT_SUBJECT
    tag = f"[#{conversation_id}]"
    return subject if tag in subject else f"{subject} {tag}"


@dataclass(frozen=True)
class MailDraft:
    sender: str
    sender_name: str
    recipient: str
    subject: str
    text: str
    message_id: str
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    files: tuple[MailPart, ...] = ()
    automatic: bool = False
    charset: str = "utf-8"
    extra_headers: dict[str, str] = field(default_factory=dict)


def _charset(name: str) -> Charset:
    charset = Charset(name)
    if name == "utf-8":
        charset.body_encoding = BASE64
    return charset


def _pick_charset(draft: MailDraft) -> str:
    if draft.charset.lower().replace("_", "-") != "iso-2022-jp":
        return "utf-8"
    try:
        (draft.text + draft.subject + draft.sender_name).encode("iso2022_jp")
    except UnicodeEncodeError:
        return "utf-8"
    return "iso-2022-jp"


def text_to_html(text: str) -> str:
    body = "<br>\n".join(html.escape(line) for line in text.split("\n"))
    return f'<!doctype html><html><body><div style="white-space:pre-wrap">{body}</div>' \
           "</body></html>"


def _body(draft: MailDraft, charset: str) -> Message:
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText(draft.text, "plain", _charset(charset)))  # type: ignore[arg-type]
    alternative.attach(MIMEText(text_to_html(draft.text), "html",
                                _charset(charset)))  # type: ignore[arg-type]
    if not draft.files:
        return alternative
    mixed = MIMEMultipart("mixed")
    mixed.attach(alternative)
    for file in draft.files:
        maintype, _, subtype = file.content_type.partition("/")
        part = MIMEApplication(file.data, _subtype=subtype or "octet-stream")
        part.replace_header("Content-Type", f"{maintype or 'application'}/"
                                            f"{subtype or 'octet-stream'}")
        part.add_header("Content-Disposition", "attachment",
                        filename=("utf-8", "", clean_header(file.name, 120)))
        mixed.attach(part)
    return mixed


def build_message(draft: MailDraft) -> Message:
    charset = _pick_charset(draft)
    message = _body(draft, charset)
    message["Message-ID"] = draft.message_id
    message["Date"] = format_datetime(utcnow())
    message["From"] = formataddr((clean_header(draft.sender_name), draft.sender), charset)
    message["To"] = draft.recipient
    message["Subject"] = Header(clean_header(draft.subject, 900), charset)  # type: ignore[assignment]
    if draft.in_reply_to:
        message["In-Reply-To"] = draft.in_reply_to
    if draft.references:
        message["References"] = " ".join(draft.references)
    if draft.automatic:
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
    for name, value in draft.extra_headers.items():
        message[clean_header(name, 60)] = clean_header(value, 900)
    return message


def classify_error(exc: BaseException) -> SendResult:
    """4xx and network trouble are retried; 5xx is a permanent failure with its text."""
    code = getattr(exc, "code", None)
    refused = getattr(exc, "recipients", None)  # aiosmtplib.SMTPRecipientsRefused
    if isinstance(refused, list) and refused and hasattr(refused[0], "code"):
        code = refused[0].code
        text = f"{code} {refused[0].message}"
    else:
        text = f"{code} {getattr(exc, 'message', exc)}" if code else str(exc) or repr(exc)
    permanent = isinstance(code, int) and 500 <= code < 600
    return SendResult(False, retryable=not permanent, error=text[:480])


@dataclass(frozen=True)
class RelayConfig:
    """Where and how replies leave: ``OMOHUB_SMTP_RELAY`` (host:port), optional AUTH
    (``_USER``/``_PASSWORD``) and TLS (``_TLS``): ``auto`` (the default) is implicit TLS on
    port 465 and otherwise STARTTLS whenever the relay offers it — and a password is never
    sent without TLS; ``starttls`` requires STARTTLS, ``implicit`` is TLS from the first
    byte, ``none`` never encrypts. ``_CA_FILE`` trusts a private relay's certificate."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: str = "auto"
    ca_file: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> RelayConfig:
        host, port = split_host_port(settings.smtp_relay or "")
        tls = (settings.smtp_relay_tls or "auto").strip().lower()
        if tls not in TLS_MODES:
            raise ValueError(f"OMOHUB_SMTP_RELAY_TLS must be one of {sorted(TLS_MODES)}")
        return cls(host, port, settings.smtp_relay_user or None,
                   settings.smtp_relay_password or None, tls, settings.smtp_relay_ca_file)

    @property
    def mode(self) -> str:
        return "implicit" if self.tls == "auto" and self.port == 465 else self.tls


TLS_MODES = frozenset({"auto", "starttls", "implicit", "none"})


class RelayRefused(Exception):
    """We would not go on with this relay (no TLS where it is needed)."""


async def relay(message: Message, config: RelayConfig, sender: str,
                recipient: str) -> SendResult:
    import aiosmtplib  # here, so the hub imports without it when no relay is configured

    mode = config.mode
    context = ssl.create_default_context(cafile=config.ca_file) if mode != "none" else None
    client = aiosmtplib.SMTP(hostname=config.host, port=config.port, timeout=SMTP_TIMEOUT,
                             use_tls=mode == "implicit", start_tls=False, tls_context=context)
    try:
        await client.connect()
        try:
            if mode in {"auto", "starttls"}:
                await client.ehlo()
                if client.supports_extension("starttls"):
                    await client.starttls(tls_context=context)
                elif mode == "starttls":
                    raise RelayRefused("the relay does not offer STARTTLS "
                                       "(OMOHUB_SMTP_RELAY_TLS=starttls)")
                elif config.username:
                    raise RelayRefused("the relay does not offer STARTTLS; the password is "
                                       "not sent in clear (OMOHUB_SMTP_RELAY_TLS=none allows)")
            if config.username:
                await client.login(config.username, config.password or "")
            await client.send_message(message, sender=sender, recipients=[recipient])
        finally:
            client.close()
    except RelayRefused as exc:
        return SendResult(False, retryable=False, error=str(exc))
    except ssl.SSLError as exc:
        return SendResult(False, retryable=True, error=f"TLS with the relay failed: {exc}"[:480])
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return classify_error(exc)
    return SendResult(True, external_id=str(message["Message-ID"]))


def split_host_port(value: str, default_port: int = 25) -> tuple[str, int]:
    host, _, port = value.strip().rpartition(":")
    if not host:
        return port or "127.0.0.1", default_port
    return host.strip("[]"), int(port)
