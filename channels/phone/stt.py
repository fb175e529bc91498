"""A pluggable speech-to-text hook for recordings (e.g. voicemail), the alternative to
Twilio's real-time transcription. Anything with an async ``transcribe`` fits: a local
Whisper, a cloud API. Put one in ``services.extras["speech_to_text"]`` before the app starts.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class SpeechToText(Protocol):
    async def transcribe(self, audio: bytes, content_type: str, language: str) -> str:
        """The words spoken in ``audio`` ("" when nothing was understood)."""
        ...
