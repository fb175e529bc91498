"""Twilio form parameters → the hub's shapes. Pure, so every fixture can be a unit test."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from channels.base import Inbound, StatusUpdate

Form = Mapping[str, str]
_KANJI_DIGITS = str.maketrans("〇零一二三四五六七八九", "00123456789")
_BETWEEN_DIGITS = re.compile(r"(?<=\d)[\s\-‐ー、，,.。・]+(?=\d)")
FINAL_CALL_STATES = {"completed", "busy", "failed", "no-answer", "canceled"}
# What Twilio puts in From when the caller withheld their number (it shows as a word on
# phones: ANONYMOUS, RESTRICTED, UNKNOWN, BLOCKED). Never an identity.
WITHHELD = {"+266696687", "+7378742833", "+8656696", "+2562533", "anonymous", "restricted",
            "unknown", "blocked", "unavailable", "private", ""}
SMS_STATES = {"queued": "queued", "accepted": "queued", "sending": "queued", "sent": "sent",
              "delivered": "delivered", "read": "delivered", "undelivered": "failed",
              "failed": "failed"}


class MissingParams(ValueError):
    """A callback without the parameters Twilio always sends: answered with 400."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"missing parameters: {', '.join(names)}")
        self.names = names


def require(form: Form, *names: str) -> None:
    missing = [name for name in names if not form.get(name, "").strip()]
    if missing:
        raise MissingParams(missing)


def spoken_digits(text: str) -> str:
    """What a caller keyed or said, with spoken numbers as digit runs: "１２３ ４５６",
    "一二三四五六" and "123-456" all become "123456" (speech recognisers group digits)."""
    flat = unicodedata.normalize("NFKC", text or "").translate(_KANJI_DIGITS)
    return _BETWEEN_DIGITS.sub("", flat)


def moment(text: str | None) -> datetime | None:
    """Twilio's timestamps: RFC 2822 (status callbacks) or ISO 8601 (transcriptions)."""
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def number(form: Form, name: str) -> int | None:
    value = form.get(name, "").strip()
    return int(value) if value.lstrip("-").isdigit() else None


def is_outbound(form: Form) -> bool:
    return form.get("Direction", "inbound").startswith("outbound")


def withheld(number: str) -> bool:
    return number.strip().lower() in WITHHELD


def customer_number(form: Form) -> str:
    """The customer's side of a call: the caller, or the callee of our outbound calls."""
    return form["To"] if is_outbound(form) else form["From"]


def call_inbound(form: Form, status: str | None = None,
                 conversation_hint: int | None = None) -> Inbound:
    """The call item: one per CallSid, kept current by status callbacks."""
    require(form, "CallSid", "From", "To")
    state = status or form.get("CallStatus") or "ringing"
    sequence = number(form, "SequenceNumber")
    data = {"status": state, "sequence": sequence, "events": {state: sequence},
            "direction": "outbound" if is_outbound(form) else "inbound",
            "from": form["From"], "to": form["To"], "identity_kind": "phone"}
    duration = number(form, "CallDuration")
    if duration is not None:
        data["duration"] = duration
    return Inbound(channel="phone", identity_kind="phone", identity_value=customer_number(form),
                   external_id=form["CallSid"], kind="call", data=data,
                   occurred_at=moment(form.get("Timestamp")),
                   conversation_hint=conversation_hint)


@dataclass(frozen=True)
class CallProgress:
    call_sid: str
    status: str
    sequence: int | None
    duration: int | None
    final: bool


def call_progress(form: Form) -> CallProgress:
    require(form, "CallSid", "CallStatus")
    status = form["CallStatus"]
    return CallProgress(form["CallSid"], status, number(form, "SequenceNumber"),
                        number(form, "CallDuration"), status in FINAL_CALL_STATES)


@dataclass(frozen=True)
class RecordingReport:
    call_sid: str
    recording_sid: str
    status: str
    url: str
    duration: int | None
    started_at: datetime | None
    source: str


def recording_report(form: Form) -> RecordingReport:
    require(form, "CallSid", "RecordingSid", "RecordingStatus")
    return RecordingReport(form["CallSid"], form["RecordingSid"], form["RecordingStatus"],
                           form.get("RecordingUrl", ""), number(form, "RecordingDuration"),
                           moment(form.get("RecordingStartTime")),
                           form.get("RecordingSource", ""))


@dataclass(frozen=True)
class Utterance:
    """One final piece of a transcript: real-time (per utterance) or legacy (per recording)."""

    call_sid: str
    external_id: str
    text: str
    speaker: str  # "customer" or "agent"
    confidence: float | None
    occurred_at: datetime | None


def utterance(form: Form) -> Utterance | None:
    """None for events that carry no final text (started, stopped, partial results)."""
    require(form, "CallSid")
    if "TranscriptionEvent" in form:
        return _realtime_utterance(form)
    require(form, "TranscriptionSid")
    if form.get("TranscriptionStatus", "completed") != "completed":
        return None
    text = form.get("TranscriptionText", "").strip()
    return Utterance(form["CallSid"], form["TranscriptionSid"], text, "customer", None,
                     None) if text else None


def _realtime_utterance(form: Form) -> Utterance | None:
    if form["TranscriptionEvent"] != "transcription-content":
        return None
    if form.get("Final", "true").lower() != "true":
        return None
    require(form, "TranscriptionSid", "TranscriptionData")
    try:
        data = json.loads(form["TranscriptionData"])
    except json.JSONDecodeError as exc:
        raise MissingParams(["TranscriptionData"]) from exc
    text = str(data.get("transcript", "")).strip() if isinstance(data, dict) else ""
    if not text:
        return None
    sequence = form.get("SequenceId", "")
    speaker = "agent" if form.get("Track", "inbound_track") == "outbound_track" else "customer"
    confidence = data.get("confidence")
    return Utterance(form["CallSid"], f"{form['TranscriptionSid']}:{sequence}", text, speaker,
                     float(confidence) if isinstance(confidence, int | float) else None,
                     moment(form.get("Timestamp")))


MAX_MMS_MEDIA = 10  # Twilio's limit per message


def sms_media(form: Form) -> list[dict[str, str]]:
    """The pictures (and other files) of an MMS: ``[{"url", "content_type"}]`` from
    ``NumMedia`` and ``MediaUrl0…`` / ``MediaContentType0…``."""
    count = min(number(form, "NumMedia") or 0, MAX_MMS_MEDIA)
    return [{"url": form[f"MediaUrl{i}"].strip(),
             "content_type": form.get(f"MediaContentType{i}", "").strip().lower()}
            for i in range(count) if form.get(f"MediaUrl{i}", "").strip()]


def sms_inbound(form: Form) -> Inbound:
    """The message; its media are announced in ``data.media`` (status ``pending``) and
    become attachments once the hub has downloaded them."""
    require(form, "MessageSid", "From")
    data: dict[str, object] = {"segments": number(form, "NumSegments")}
    media = sms_media(form)
    if media:
        data["media"] = {"provider": "twilio", "status": "pending", "files": media}
    return Inbound(channel="sms", identity_kind="phone", identity_value=form["From"],
                   text=form.get("Body", ""), external_id=form["MessageSid"], kind="message",
                   data=data)


def sms_status(form: Form) -> StatusUpdate | None:
    require(form, "MessageSid", "MessageStatus")
    status = SMS_STATES.get(form["MessageStatus"])
    if status is None:
        return None
    error = form.get("ErrorCode") or None
    return StatusUpdate(channel="sms", external_id=form["MessageSid"], status=status,
                        error=f"Twilio error {error}" if error else None)
