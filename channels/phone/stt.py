"""A pluggable speech-to-text hook for recordings (e.g. voicemail).

**The default is Twilio's real-time transcription** (``<Start><Transcription
languageCode="ja-JP">``): on for every connected call (both tracks) and, while no hook is
set, for voicemail (the caller's track); its utterances arrive at
``/webhooks/twilio/transcription``. omohub ships no local engine: none of the offline,
CPU-only packages on PyPI (Vosk, whisper.cpp / faster-whisper, sherpa-onnx, PocketSphinx)
comes with a Japanese model inside the package; each needs model files fetched from
elsewhere (tens of MB to GBs), which the hub will not download at run time.

To transcribe recordings yourself, put anything with an async ``transcribe`` (a local Whisper
over model files you installed, a cloud API) in ``services.extras["speech_to_text"]`` before
the app starts: each completed recording is then fetched and transcribed after the callback
was answered, and voicemail is no longer sent to Twilio's transcription (one transcript each).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class SpeechToText(Protocol):
    async def transcribe(self, audio: bytes, content_type: str, language: str) -> str:
        """The words spoken in ``audio`` ("" when nothing was understood)."""
        ...
