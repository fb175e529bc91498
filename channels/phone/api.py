"""What agents do with the phone from the inbox: call a customer from a ticket, get a
softphone token, play a call's recording (through the hub, never a Twilio URL)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath, JSONBody
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

from channels.phone import twiml
from channels.phone.client import MediaRefused, fetch_recording
from channels.phone.sms import count_segments
from channels.phone.voice import PhoneChannel
from hub.api.deps import ServicesDep
from hub.auth import AgentAuthMiddleware
from hub.models import Agent, ItemKind, TimelineItem
from hub.serialize import item_json
from hub.tickets import TicketError

TOKEN_TTL = 3600
AgentRequest = Request[Agent, str, Any]


@post("/conversations/{conversation_id:int}/calls", status_code=201, tags=["phone"])
async def click_to_call(conversation_id: FromPath[int], request: AgentRequest,
                        services: ServicesDep) -> dict[str, Any]:
    """Rings the customer's phone from this ticket; the call joins this ticket."""
    phone: PhoneChannel = services.adapters["phone"]  # type: ignore[assignment]
    item = await phone.place_call(conversation_id, request.user.id)  # type: ignore[arg-type]
    return item_json(item)


@get("/voice/token", tags=["phone"])
async def voice_token(request: AgentRequest, services: ServicesDep) -> dict[str, Any]:
    """A Twilio access token with a VoiceGrant for the inbox's browser softphone."""
    settings = services.settings
    if not (settings.twilio_api_key_sid and settings.twilio_api_key_secret):
        raise TicketError("channel_unavailable",
                          "OMOHUB_TWILIO_API_KEY_SID / _SECRET are not set")
    identity = twiml.agent_client_name(request.user.id)  # type: ignore[arg-type]
    token = AccessToken(settings.twilio_account_sid, settings.twilio_api_key_sid,
                        settings.twilio_api_key_secret, identity=identity, ttl=TOKEN_TTL)
    token.add_grant(VoiceGrant(incoming_allow=True,
                               outgoing_application_sid=settings.twilio_twiml_app_sid))
    return {"token": token.to_jwt(), "identity": identity, "ttl": TOKEN_TTL}


@get("/recordings/{item_id:int}", tags=["phone"], media_type="audio/mpeg")
async def recording_audio(item_id: FromPath[int], services: ServicesDep) -> Response[bytes]:
    """A recording in the timeline, fetched from Twilio with the hub's credentials."""
    async with services.sessions() as session:
        item = await session.get(TimelineItem, item_id)
    url = item.data.get("recording_url") if item and item.kind == ItemKind.RECORDING else None
    if not url:
        raise TicketError("not_found", f"recording {item_id} not found", 404)
    try:
        upstream = await fetch_recording(services.settings, url)
    except MediaRefused as exc:
        raise TicketError("not_found", str(exc), 404) from exc
    if upstream.status_code != 200:
        raise TicketError("provider_error", f"Twilio answered {upstream.status_code}", 502)
    return Response(upstream.content, media_type=upstream.headers.get("content-type",
                                                                      "audio/mpeg"),
                    headers={"Cache-Control": "private, no-store",
                             "X-Content-Type-Options": "nosniff"})


class SegmentsBody(msgspec.Struct):
    text: str


@post("/sms/segments", status_code=200, tags=["phone"])
async def sms_segments(data: JSONBody[SegmentsBody]) -> dict[str, Any]:
    """How a draft SMS will be sent: GSM-7 or UCS-2 (Japanese), units and segments."""
    counted = count_segments(data.text)
    return {"encoding": counted.encoding, "units": counted.units,
            "segments": counted.segments}


def phone_api() -> Router:
    """Under /api, behind the same agent authentication as the rest of the API."""
    return Router(path="/api", route_handlers=[click_to_call, voice_token, recording_audio,
                                                  sms_segments],
                  middleware=[DefineMiddleware(AgentAuthMiddleware)])
