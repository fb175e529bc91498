"""Phone and SMS through Twilio: signed webhooks, a Japanese IVR that finds the caller's
ticket by a chat code, calls/recordings/transcripts in the timeline, SMS in and out."""

from __future__ import annotations

from channels.phone.sms import SmsChannel
from channels.phone.voice import PhoneChannel

__all__ = ["PhoneChannel", "SmsChannel"]
