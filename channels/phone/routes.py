"""The Twilio webhooks: verify the signature, hand the form to the channel, answer TwiML.

Call-flow paths answer TwiML (``text/xml``); report paths answer an empty ``<Response/>``.
A bad signature is 403 and nothing is read further; missing parameters are 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response, post
from litestar.params import FromQuery
from twilio.twiml.messaging_response import MessagingResponse

from channels.phone import parse, twiml
from channels.phone.api import phone_api
from channels.phone.signature import is_signed, public_url
from channels.phone.sms import SmsChannel
from channels.phone.voice import PhoneChannel
from hub.api.deps import ServicesDep
from hub.api.errors import error_response
from hub.services import Services

XML = "text/xml"  # Litestar appends "; charset=utf-8" to text/* types itself
Handler = Callable[[dict[str, str]], Awaitable[str | None]]
AnyRequest = Request[Any, Any, Any]


async def _answer(request: AnyRequest, services: Services, handler: Handler) -> Response[Any]:
    form = await request.form()
    query = request.scope.get("query_string", b"").decode("latin-1")
    url = public_url(services.settings, request.url.path, query)
    if not is_signed(services.settings, url, form, request.headers):
        return _problem(403, "bad_signature", "X-Twilio-Signature does not match")
    fields = {key: str(value) for key, value in form.items()}
    try:
        body = await handler(fields)
    except parse.MissingParams as exc:
        return _problem(400, "missing_parameters", str(exc), {"names": exc.names})
    return Response(body if body is not None else str(MessagingResponse()), media_type=XML)


def _problem(status: int, code: str, message: str,
             extra: dict[str, Any] | None = None) -> Response[Any]:
    """The hub's JSON error shape (the routes' own media type is XML)."""
    response = error_response(status, code, message, extra)
    response.media_type = "application/json"
    return response


def _phone(services: Services) -> PhoneChannel:
    return services.adapters["phone"]  # type: ignore[return-value]


def _sms(services: Services) -> SmsChannel:
    return services.adapters["sms"]  # type: ignore[return-value]


@post("/webhooks/twilio/voice", tags=["twilio"], status_code=200, media_type=XML)
async def twilio_voice(request: AnyRequest, services: ServicesDep) -> Response[Any]:
    """An incoming call: the IVR's first TwiML."""
    return await _answer(request, services, _phone(services).incoming)


@post("/webhooks/twilio/gather", tags=["twilio"], status_code=200, media_type=XML)
async def twilio_gather(request: AnyRequest, services: ServicesDep,
                        attempt: FromQuery[int] = 1,
                        lang: FromQuery[str | None] = None) -> Response[Any]:
    """Digits or speech gathered by the IVR: the six-digit chat code."""
    phone = _phone(services)
    return await _answer(request, services, lambda form: phone.gathered(form, attempt, lang))


@post("/webhooks/twilio/menu", tags=["twilio"], status_code=200, media_type=XML)
async def twilio_menu(request: AnyRequest, services: ServicesDep,
                      lang: FromQuery[str | None] = None,
                      choice: FromQuery[str | None] = None) -> Response[Any]:
    """The menu: an agent (queue or the assignee's softphone), a chat link by SMS, voicemail."""
    phone = _phone(services)
    return await _answer(request, services, lambda form: phone.menu(form, choice, lang))


@post("/webhooks/twilio/outbound", tags=["twilio"], status_code=200, media_type=XML)
async def twilio_outbound(request: AnyRequest, services: ServicesDep,
                          agent: FromQuery[int | None] = None) -> Response[Any]:
    """An agent's click-to-call was answered: bridge the customer to the agent's softphone."""
    phone = _phone(services)
    return await _answer(request, services, lambda form: phone.answered_outbound(form, agent))


async def _report(request: AnyRequest, services: Services,
                  handler: Callable[[dict[str, str]], Awaitable[None]]) -> Response[Any]:
    async def run(form: dict[str, str]) -> None:
        await handler(form)

    return await _answer(request, services, run)


@post("/webhooks/twilio/status", tags=["twilio"], status_code=200, media_type=XML)
async def twilio_status(request: AnyRequest, services: ServicesDep,
                        call: FromQuery[str | None] = None) -> Response[Any]:
    """Call status callbacks (ordered by SequenceNumber, once per CallSid + status)."""
    phone = _phone(services)
    return await _report(request, services, lambda form: phone.status(form, call))


@post("/webhooks/twilio/client", tags=["twilio"], status_code=200, media_type=XML)
async def twilio_client(request: AnyRequest, services: ServicesDep,
                        conversation: FromQuery[int | None] = None) -> Response[Any]:
    """The voice URL of the TwiML App behind the inbox softphone (``OMOHUB_TWILIO_TWIML_APP_SID``):
    take the next queued caller, or call the customer of ``conversation``."""
    phone = _phone(services)

    async def run(form: dict[str, str]) -> str:
        chosen = conversation or _int(form.get("conversation_id"))
        return await phone.softphone(form, chosen)

    return await _answer(request, services, run)


@post("/webhooks/twilio/consent", tags=["twilio"], status_code=200, media_type=XML)
async def twilio_consent(request: AnyRequest, services: ServicesDep,
                         lang: FromQuery[str | None] = None) -> Response[Any]:
    """Played to a customer who answers an agent's call, before the bridge."""
    phone = _phone(services)

    async def run(_: dict[str, str]) -> str:
        return twiml.consent(phone.voice(lang))

    return await _answer(request, services, run)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@post("/webhooks/twilio/recording", tags=["twilio"], status_code=200, media_type=XML)
async def twilio_recording(request: AnyRequest, services: ServicesDep) -> Response[Any]:
    return await _report(request, services, _phone(services).recording)


@post("/webhooks/twilio/transcription", tags=["twilio"], status_code=200, media_type=XML)
async def twilio_transcription(request: AnyRequest, services: ServicesDep) -> Response[Any]:
    """Real-time (``<Start><Transcription>``) or legacy transcription callbacks."""
    return await _report(request, services, _phone(services).transcription)


@post("/webhooks/twilio/sms", tags=["twilio"], status_code=200, media_type=XML)
async def twilio_sms(request: AnyRequest, services: ServicesDep) -> Response[Any]:
    """An inbound SMS (a status report posted here is applied too)."""
    sms = _sms(services)

    async def run(form: dict[str, str]) -> None:
        if "MessageStatus" in form and "Body" not in form:
            await sms.delivery(form)
        else:
            await sms.receive(form)

    return await _answer(request, services, run)


@post("/webhooks/twilio/sms/status", tags=["twilio"], status_code=200, media_type=XML)
async def twilio_sms_status(request: AnyRequest, services: ServicesDep) -> Response[Any]:
    """Delivery reports for SMS the hub sent."""
    return await _report(request, services, _sms(services).delivery)


def twilio_routes() -> list[Any]:
    """The webhooks, and the agents' phone API (click-to-call, softphone token, recordings)."""
    return [twilio_voice, twilio_gather, twilio_menu, twilio_outbound, twilio_status,
            twilio_client, twilio_consent, twilio_recording, twilio_transcription, twilio_sms,
            twilio_sms_status, phone_api()]
