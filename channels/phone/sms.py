"""SMS through Twilio: inbound messages join the sender's ticket, replies go out through
the REST API (the client pointed at ``OMOHUB_TWILIO_API_BASE``). MMS pictures come in
through ``mms.py``; agents' images go out as MMS ``MediaUrl``s."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from channels.base import Capabilities, Outbound, SendResult, StatusUpdate
from channels.phone import parse
from channels.phone.mms import EXTENSIONS, MmsMedia
from hub import links
from hub.background import Background
from hub.identity import InvalidIdentity, normalize_phone
from hub.ingest import IngestResult
from hub.media import pending_media
from hub.models import utcnow
from hub.services import Services
from hub.status import apply_status

log = logging.getLogger(__name__)
GSM_7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJ"
            "KLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_7_EXTENDED = set("^{}\\[~]|€\f")
RETRYABLE = {429}


@dataclass(frozen=True)
class Segments:
    """How an SMS is billed: encoding, length in its units, and how many segments."""

    encoding: str
    units: int
    segments: int


def count_segments(text: str) -> Segments:
    """GSM-7 (160 per message, 153 per part) or UCS-2 (70 / 67) for Japanese and emoji."""
    if all(c in GSM_7 or c in GSM_7_EXTENDED for c in text):
        units = sum(2 if c in GSM_7_EXTENDED else 1 for c in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else -(-units // part)
    return Segments(encoding, units, segments)


class SmsChannel:
    name = "sms"
    capabilities = Capabilities(text_limit=1600, identity_kind="phone",
                                media_types=("image/jpeg", "image/png", "image/gif"))

    def __init__(self, services: Services, client: Client) -> None:
        self.services = services
        self.client = client
        self.media = MmsMedia(services)
        self.background = Background("SMS")
        self._started = utcnow()
        self._resumed = False

    async def start(self) -> None:
        """Called by the hub after migrations: resume MMS downloads a previous run left."""
        if not self._resumed:
            self._resumed = True
            self.background.spawn(self._resume_media())

    async def stop(self, grace: float = 10.0) -> None:
        """Let media downloads finish (briefly), then close the Twilio client's connections."""
        await self.background.close(grace)
        await self.client.http_client.close()  # type: ignore[union-attr]

    async def drain(self) -> None:
        """Wait for the background work started so far (tests, shutdown)."""
        await self.background.drain()

    async def _resume_media(self) -> None:
        for item in await pending_media(self.services.sessions, "sms", self._started):
            await self.media.download(item.id or 0, item.external_id or "",
                                      dict(item.data["media"]))

    async def send(self, outbound: Outbound) -> SendResult:
        settings = self.services.settings
        callback = f"{settings.public_url.rstrip('/')}/webhooks/twilio/sms/status"
        media = _media_urls(settings.public_url, outbound.attachments)
        text = outbound.text[: self.capabilities.text_limit]
        extra: dict[str, Any] = {"media_url": media} if media else {}
        if text or not media:
            extra["body"] = text
        try:
            message = await self.client.messages.create_async(
                to=outbound.recipient, from_=settings.twilio_phone_number,
                status_callback=callback, **extra)
        except TwilioRestException as exc:
            retryable = exc.status in RETRYABLE or exc.status >= 500
            return SendResult(False, retryable=retryable,
                              error=f"Twilio {exc.status} {exc.code or ''}: {exc.msg}"[:500])
        except (TwilioException, OSError) as exc:
            return SendResult(False, retryable=True, error=str(exc)[:500])
        return SendResult(True, external_id=message.sid)

    async def receive(self, form: Mapping[str, str]) -> IngestResult:
        """An SMS from a number joins its customer's ticket; one carrying a chat code joins
        the ticket the code was issued for."""
        inbound = parse.sms_inbound(form)
        size = count_segments(inbound.text)
        inbound = replace(inbound, data={**inbound.data, "segments": size.segments,
                                         "encoding": size.encoding})
        code = links.find_code(inbound.text)
        number = _phone(inbound.identity_value)
        if code and number:
            async with self.services.sessions() as session, session.begin():
                redeemed = await links.redeem(session, self.services.signer, code, "phone",
                                              number)
            if redeemed is not None:
                inbound = replace(inbound, conversation_hint=redeemed.conversation_id)
        result = await self.services.ingestor.ingest(inbound)
        media = inbound.data.get("media")
        if result.created and media and result.item.id:  # committed: fetch after answering
            self.background.spawn(self.media.download(result.item.id, inbound.external_id or "",
                                                 media))
        return result

    async def delivery(self, form: Mapping[str, str]) -> None:
        update = parse.sms_status(form)
        if update is None:
            return
        services = self.services
        if await apply_status(services.sessions, services.bus, update) is None:
            # a text reply on a phone ticket sent before the outbox relabelled such
            # replies ``sms`` (SendResult.channel) still sits on the phone channel
            await apply_status(services.sessions, services.bus,
                               StatusUpdate("phone", update.external_id, update.status,
                                            update.error))


def _media_urls(public_url: str, attachments: tuple[dict[str, Any], ...]) -> list[str]:
    """The public, unguessable hub URLs of an outgoing message's pictures (Twilio fetches
    them); other files are not sent by MMS."""
    base = public_url.rstrip("/")
    return [f"{base}{a['url']}" for a in attachments
            if a.get("content_type") in EXTENSIONS and str(a.get("url", "")).startswith("/files/")]


def _phone(value: str) -> str | None:
    try:
        return normalize_phone(value)
    except InvalidIdentity:
        return None
