"""``POST /webhooks/email``: a mail provider's inbound hook posting the raw message.

``Authorization: Bearer OMOHUB_EMAIL_WEBHOOK_TOKEN`` is required (401 without it). When
no token is configured the route answers 404: the endpoint is off, and a provider should
not keep retrying into it. 200 only after the message is committed.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request, Response, post

from channels.email.receive import MAX_MESSAGE_BYTES
from hub.api.deps import ServicesDep
from hub.api.errors import error_response


def _authorized(header: str, token: str) -> bool:
    return hmac.compare_digest(header.encode("utf-8", "replace"),
                               f"Bearer {token}".encode())


@post("/webhooks/email", request_max_body_size=MAX_MESSAGE_BYTES + 64 * 1024,
      status_code=200, tags=["webhooks"])
async def email_webhook(request: Request[Any, Any, Any],
                        services: ServicesDep) -> Response[dict[str, Any]]:
    """Ingest one raw RFC 5322 message; answers what became of it."""
    token = services.settings.email_webhook_token
    channel = services.adapters.get("email")
    if not token or channel is None:
        return error_response(404, "not_found", "the e-mail webhook is not configured")
    if not _authorized(request.headers.get("authorization", ""), token):
        return error_response(401, "unauthorized", "a valid bearer token is required")
    raw = await request.body()
    if not raw.strip():
        return error_response(400, "empty_message", "the body must be a raw RFC 5322 message")
    if len(raw) > MAX_MESSAGE_BYTES:
        return error_response(413, "too_large", "the message is larger than 25 MB")
    received = await channel.receive(raw)  # type: ignore[attr-defined]
    return Response(received.as_dict(), status_code=200)
