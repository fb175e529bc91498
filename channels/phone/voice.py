"""Voice: the IVR that finds the caller's ticket, and the call's reports into its timeline.

Every handler takes the posted form (already signature-checked) and returns TwiML text or
nothing; what a callback carried is committed before the handler returns.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

import httpx
from sqlalchemy import select
from twilio.base.exceptions import TwilioRestException

from channels.base import Capabilities, Inbound, Outbound, SendResult
from channels.phone import parse, twiml
from channels.phone.client import fetch_recording
from channels.phone.hours import is_open
from channels.phone.sms import SmsChannel
from channels.phone.stt import SpeechToText
from hub import calls, links
from hub.background import Background
from hub.identity import InvalidIdentity, normalize_phone
from hub.ingest import IngestResult
from hub.models import Conversation, Identity, SenderType, TimelineItem, utcnow
from hub.outbox import recipient_for
from hub.services import Services
from hub.tickets import TicketError

log = logging.getLogger(__name__)
MAX_CODE_TRIES = 2
RECORDING_ORDER = {"in-progress": 0, "completed": 1, "absent": 1, "failed": 1}
Form = Mapping[str, str]


class PhoneChannel:
    """The phone channel. A text reply on a phone ticket goes out as SMS to the caller, and
    its send result says so: the outbox then labels the reply ``sms``."""

    name = "phone"
    capabilities = Capabilities(text_limit=SmsChannel.capabilities.text_limit,
                                identity_kind="phone")

    def __init__(self, services: Services, sms: SmsChannel) -> None:
        self.services = services
        self.sms = sms
        self.urls = twiml.Urls(services.settings.public_url)
        hook = services.extras.get("speech_to_text")
        self.speech_to_text: SpeechToText | None = hook if isinstance(hook, SpeechToText) else None
        self.background = Background("phone")

    def voice(self, lang: str | None = None) -> twiml.Voice:
        settings = self.services.settings
        return twiml.Voice(settings.twilio_ivr_language, settings.twilio_say_voice).switched(
            lang or settings.twilio_ivr_language)

    async def delete_recordings(self, sids: list[str]) -> int:
        """A customer's erasure: Twilio's own copies of their call recordings; returns how
        many were deleted (a recording Twilio no longer has counts as deleted)."""
        deleted = 0
        for sid in sids:
            try:
                await self.sms.client.recordings(sid).delete_async()
            except TwilioRestException as exc:
                if exc.status != 404:
                    log.warning("Twilio kept recording %s: %s", sid, exc)
                    continue
            except httpx.HTTPError as exc:
                log.warning("Twilio unreachable deleting recording %s: %s", sid, exc)
                continue
            deleted += 1
        return deleted

    async def stop(self, grace: float = 10.0) -> None:
        """Let running transcriptions finish (briefly) on shutdown."""
        await self.background.close(grace)

    async def send(self, outbound: Outbound) -> SendResult:
        return replace(await self.sms.send(outbound), channel=self.sms.name)

    # --- the call flow -----------------------------------------------------------------

    async def incoming(self, form: Form) -> str:
        """A call rings: a verified number goes straight on; anyone else is asked for a code."""
        parse.require(form, "CallSid", "From", "To")
        number = _phone(parse.customer_number(form))
        if number is None:
            await calls.keep_unmatched(self.services.sessions, "twilio.voice", dict(form))
            return twiml.to_agent(self.voice(), self.services.settings.twilio_queue)
        if await self._verified(number):
            await self._ingest_call(form)
            return self._connected(linked=False)
        return twiml.ask_code(self.urls, self.voice(), attempt=1)

    async def gathered(self, form: Form, attempt: int, lang: str | None) -> str:
        parse.require(form, "CallSid", "From", "To")
        voice = self.voice(lang)
        said = form.get("Digits") or form.get("SpeechResult") or ""
        if said.strip() == twiml.ENGLISH_KEY:
            return twiml.ask_code(self.urls, voice.switched("en"), attempt)
        if await calls.call_owner(self.services.sessions, self.name, form["CallSid"]):
            return self._connected(linked=False, voice=voice)  # a redelivered answer
        number = _phone(parse.customer_number(form))
        code = links.find_code(parse.spoken_digits(said))
        redeemed = await self._redeem(code, number) if code and number else None
        if redeemed is not None:
            await self._ingest_call(form, redeemed.conversation_id)
            return self._connected(linked=True, voice=voice)
        if attempt < MAX_CODE_TRIES:
            return twiml.ask_code(self.urls, voice, attempt + 1, retry=True)
        await self._ingest_call(form)
        return self._connected(linked=False, voice=voice)

    async def menu(self, form: Form, choice: str | None, lang: str | None) -> str:
        parse.require(form, "CallSid")
        voice = self.voice(lang)
        # a <Record> action posts the key that ended the message: the query names the step
        picked = choice if choice == "voicemail" else form.get("Digits") or choice or "1"
        if picked == "voicemail":
            return twiml.goodbye(voice, "voicemail_done")
        owner = await calls.call_owner(self.services.sessions, self.name, form["CallSid"])
        if picked == "2" and owner is not None and await self._text_chat_link(owner, voice):
            return twiml.goodbye(voice, "sms_sent")
        notice = "sms_failed" if picked == "2" else "queue"
        agent = await self._assignee(owner.conversation_id) if owner else None
        client = twiml.agent_client_name(agent) if agent else None
        return twiml.to_agent(voice, self.services.settings.twilio_queue, client, notice)

    async def answered_outbound(self, form: Form, agent_id: int | None) -> str:
        """The customer answered an agent's click-to-call: bridge them to that agent."""
        parse.require(form, "CallSid")
        client = twiml.agent_client_name(agent_id) if agent_id else None
        return twiml.outbound_bridge(self.voice(), client, self.urls)

    def _connected(self, linked: bool, voice: twiml.Voice | None = None) -> str:
        open_now = is_open(self.services.settings, utcnow())
        return twiml.connected(self.urls, voice or self.voice(), linked, open_now,
                               transcribe_voicemail=self.speech_to_text is None)

    async def _verified(self, number: str) -> bool:
        async with self.services.sessions() as session:
            identity = (await session.execute(select(Identity).where(
                Identity.kind == "phone", Identity.value == number))).scalar_one_or_none()
        return identity is not None and identity.verified

    async def _redeem(self, code: str, number: str) -> links.Redeemed | None:
        async with self.services.sessions() as session, session.begin():
            return await links.redeem(session, self.services.signer, code, "phone", number)

    async def _ingest_call(self, form: Form, hint: int | None = None) -> IngestResult:
        return await self.services.ingestor.ingest(parse.call_inbound(form, conversation_hint=hint))

    async def _assignee(self, conversation_id: int) -> int | None:
        async with self.services.sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
        return conversation.assignee_id if conversation else None

    async def _text_chat_link(self, owner: calls.CallOwner, voice: twiml.Voice) -> bool:
        """Visual IVR: an SMS whose link continues this same ticket in the web chat."""
        services = self.services
        try:
            async with services.sessions() as session, session.begin():
                link = await links.issue(session, services.signer, services.settings,
                                         owner.conversation_id, "web")
            text = (f"チャットで続きをどうぞ: {link.url}" if voice.lang == "ja"
                    else f"Continue in our chat: {link.url}")
            await services.tickets.reply(owner.conversation_id, text, agent_id=None,
                                         channel=self.sms.name, sender_type=SenderType.BOT,
                                         data={"chat_link": True})
        except (TicketError, links.LinkError) as exc:
            log.warning("chat link by SMS failed: %s", exc)
            return False
        return True

    # --- agents calling out -----------------------------------------------------------

    async def place_call(self, conversation_id: int, agent_id: int) -> TimelineItem:
        """Click-to-call: Twilio rings the customer, who is bridged to the agent's softphone.
        The call item joins this ticket (never a new one) before Twilio reports anything."""
        services = self.services
        async with services.sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                raise TicketError("not_found", f"conversation {conversation_id} not found", 404)
            identity = await recipient_for(session, conversation.customer_id, self.name)
        if identity is None:
            raise TicketError("channel_unavailable", "the customer has no phone number")
        try:
            placed = await self.sms.client.calls.create_async(
                to=identity.value, from_=services.settings.twilio_phone_number,
                url=self.urls.of("outbound", agent=agent_id), method="POST",
                status_callback=self.urls.of("status"), status_callback_method="POST",
                status_callback_event=["initiated", "ringing", "answered", "completed"])
        except TwilioRestException as exc:
            raise TicketError("provider_error", f"Twilio {exc.status}: {exc.msg}", 502) from exc
        data = {"status": "queued", "sequence": None, "events": {"queued": None},
                "direction": "outbound", "from": services.settings.twilio_phone_number,
                "to": identity.value, "identity_kind": "phone"}
        return await calls.add_agent_item(services.sessions, services.bus, calls.AgentItem(
            conversation_id, agent_id, self.name, "call", placed.sid, data=data))

    async def softphone(self, form: Form, conversation_id: int | None) -> str:
        """The TwiML App behind the inbox softphone: no number → take the next caller from
        the queue; a number → call that customer from the ticket (the call joins it)."""
        parse.require(form, "CallSid", "From")
        settings = self.services.settings
        agent_id = twiml.agent_of_client(form["From"])
        number = _phone(form.get("To", ""))
        if number is None or agent_id is None or conversation_id is None:
            return twiml.answer_queue(settings.twilio_queue)
        data = {"status": "initiated", "sequence": None, "events": {"initiated": None},
                "direction": "outbound", "from": settings.twilio_phone_number, "to": number,
                "identity_kind": "phone", "softphone": True}
        try:
            await calls.add_agent_item(self.services.sessions, self.services.bus,
                                       calls.AgentItem(conversation_id, agent_id, self.name,
                                                       "call", form["CallSid"], data=data))
        except LookupError:  # no such ticket: the call still goes out, its reports are kept
            await calls.keep_unmatched(self.services.sessions, "twilio.client", dict(form))
        return twiml.dial_customer(self.urls, self.voice(), number,
                                   settings.twilio_phone_number or "", form["CallSid"])

    # --- reports about a call ----------------------------------------------------------

    async def status(self, form: Form, call_sid: str | None = None) -> None:
        """Call progress. Unknown calls that ended (the caller hung up in the IVR) become a
        call item of that number; other unknown reports are kept for reconciliation.
        ``call_sid`` files a dialled leg's reports under the call that dialled it."""
        progress = parse.call_progress(form)
        if call_sid:
            progress = replace(progress, call_sid=call_sid)
        update = await self._update(progress)
        if update is not None:
            return
        known_number = "From" in form and "To" in form and _phone(parse.customer_number(form))
        if not progress.final or not known_number:
            await calls.keep_unmatched(self.services.sessions, "twilio.status", dict(form))
            return
        await self.services.ingestor.ingest(parse.call_inbound(form, progress.status))
        await self._update(progress)

    async def _update(self, progress: parse.CallProgress) -> calls.CallUpdate | None:
        return await calls.update_call(
            self.services.sessions, self.services.bus, self.name, progress.call_sid,
            progress.status, progress.sequence, duration=progress.duration)

    async def recording(self, form: Form) -> None:
        report = parse.recording_report(form)
        owner = await calls.call_owner(self.services.sessions, self.name, report.call_sid)
        if owner is None:
            await calls.keep_unmatched(self.services.sessions, "twilio.recording", dict(form))
            return
        order = RECORDING_ORDER.get(report.status, 1)
        data = {"call_sid": report.call_sid, "status": report.status, "sequence": order,
                "events": {report.status: order}, "recording_url": report.url,
                "duration": report.duration, "source": report.source,
                "voicemail": report.source == "RecordVerb"}
        stored = await self.services.ingestor.ingest(replace(
            _owned(owner, "recording", report.recording_sid, data), occurred_at=report.started_at))
        update = await calls.update_call(
            self.services.sessions, self.services.bus, self.name, report.recording_sid,
            report.status, order, duration=report.duration, recording_url=report.url or None)
        first_report = stored.created or (update is not None and update.changed)
        if report.status == "completed" and first_report and self.speech_to_text:
            self.background.spawn(self._transcribe_recording(owner, report))

    async def _transcribe_recording(self, owner: calls.CallOwner,
                                    report: parse.RecordingReport) -> None:
        """After the callback is answered: fetch the audio, transcribe, add the transcript."""
        assert self.speech_to_text is not None
        try:
            audio = await fetch_recording(self.services.settings, report.url)
            audio.raise_for_status()
            text = await self.speech_to_text.transcribe(
                audio.content, audio.headers.get("content-type", "audio/mpeg"),
                twiml.LANGUAGES.get(self.services.settings.twilio_ivr_language, "ja-JP"))
        except Exception:  # a transcriber's failure must not lose the recording itself
            log.exception("speech-to-text failed for %s", report.recording_sid)
            return
        if text.strip():
            data = {"call_sid": report.call_sid, "recording_sid": report.recording_sid,
                    "speaker": "customer", "source": "speech_to_text"}
            await self.services.ingestor.ingest(replace(
                _owned(owner, "transcript", f"{report.recording_sid}:stt", data),
                text=text.strip()))

    async def transcription(self, form: Form) -> None:
        said = parse.utterance(form)
        if said is None:
            return
        owner = await calls.call_owner(self.services.sessions, self.name, said.call_sid)
        if owner is None:
            await calls.keep_unmatched(self.services.sessions, "twilio.transcription",
                                       dict(form))
            return
        data = {"call_sid": said.call_sid, "speaker": said.speaker,
                "confidence": said.confidence}
        if said.speaker == "agent":  # the agent's words are the agent's items
            await calls.add_agent_item(self.services.sessions, self.services.bus, calls.AgentItem(
                owner.conversation_id, owner.agent_id, self.name, "transcript",
                said.external_id, said.text, data, said.occurred_at))
            return
        inbound = replace(_owned(owner, "transcript", said.external_id, data),
                          text=said.text, occurred_at=said.occurred_at)
        await self.services.ingestor.ingest(inbound)


def _owned(owner: calls.CallOwner, kind: str, external_id: str,
           data: dict[str, object]) -> Inbound:
    return Inbound(channel="phone", identity_kind=owner.identity_kind,
                   identity_value=owner.identity_value, kind=kind, external_id=external_id,
                   data=data, conversation_hint=owner.conversation_id)


def _phone(value: str) -> str | None:
    """The E.164 number, or None for a withheld or unreadable one."""
    if parse.withheld(value):
        return None
    try:
        return normalize_phone(value)
    except InvalidIdentity:
        return None
