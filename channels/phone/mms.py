"""MMS pictures: downloaded from Twilio after the SMS webhook was answered, kept by the
hub's file store (``hub.files``) like LINE media and web chat uploads, and attached to the
message they came with.

The message (its text) is committed first; each picture is then fetched with the account's
credentials from a URL of this account only, refused past a size limit or when it is not a
PNG, JPEG, GIF or WebP image (declared type first, then its bytes), and the outcome is
written to the item: ``attachments`` and ``data.media`` (``status`` ``stored``,
``partial`` or ``failed``, with the ``reason`` for what was refused).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from channels.base import Attachment
from channels.phone.client import MediaRefused, fetch_message_media
from hub.files import IMAGE_SIGNATURES, FileRejected
from hub.media import settle_media
from hub.services import Services

log = logging.getLogger(__name__)
MMS_MAX_BYTES = 5 * 1024 * 1024  # Twilio's own limit for an incoming MMS
ACCEPTED = frozenset(IMAGE_SIGNATURES)
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}


class MmsMedia:
    """Downloads the pictures of inbound MMS; ``retries`` are the pauses between tries of a
    network error or a 429/5xx answer."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.max_bytes = min(MMS_MAX_BYTES, services.settings.max_upload_bytes)
        self.retries: tuple[float, ...] = (0.5, 2.0)

    async def download(self, item_id: int, message_sid: str, media: dict[str, Any]) -> None:
        """Fetch every announced file, store the pictures, attach them to the item."""
        stored: list[dict[str, Any]] = []
        refused: list[str] = []
        for index, file in enumerate(media.get("files") or []):
            outcome = await self._one(message_sid, index, file)
            if isinstance(outcome, Attachment):
                stored.append(outcome.as_dict())
            else:
                refused.append(f"#{index + 1}: {outcome}")
        state: dict[str, Any] = {**media, "status": "failed" if refused and not stored
                                 else "partial" if refused else "stored"}
        if refused:
            state["reason"] = "; ".join(refused)[:500]
        await settle_media(self.services.sessions, self.services.bus, item_id, stored, state)

    async def _one(self, message_sid: str, index: int, file: dict[str, Any]) -> Attachment | str:
        """The stored picture, or why there is none."""
        declared = str(file.get("content_type") or "")
        if declared not in ACCEPTED:
            return f"{declared or 'unknown type'} is not accepted"
        reason = "not downloaded"
        for delay in (*self.retries, None):
            try:
                data, _ = await fetch_message_media(self.services.settings, str(file["url"]),
                                                    self.max_bytes)
            except MediaRefused as exc:
                return str(exc)
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                reason = f"Twilio answered {status}"
                if status != 429 and status < 500:
                    return reason
            except httpx.HTTPError as exc:
                reason = f"network: {exc!r}"[:300]
            else:
                name = f"mms-{message_sid}-{index + 1}.{EXTENSIONS[declared]}"
                try:
                    return self.services.files.save_image(name, data)
                except FileRejected as exc:
                    return str(exc)
            if delay is not None:
                await asyncio.sleep(delay)
        return reason
