"""``X-Twilio-Signature`` checked with twilio's ``RequestValidator`` against the public URL.

Twilio signs the URL it called (``OMOHUB_PUBLIC_URL`` + path + query) and the posted form
parameters; behind a proxy the hub's own idea of its URL would be wrong, so the request's
host is never used.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from hub.settings import Settings


def public_url(settings: Settings, path: str, query: str = "") -> str:
    url = settings.public_url.rstrip("/") + path
    return f"{url}?{query}" if query else url


def is_signed(settings: Settings, url: str, form: Mapping[str, object],
              headers: Mapping[str, str]) -> bool:
    signature = headers.get(SIGNATURE_HEADER.lower()) or headers.get(SIGNATURE_HEADER) or ""
    token = settings.twilio_auth_token
    if not signature or not token:
        return False
    algorithm = get_signature_algorithm(headers.get(SIGNATURE_SETTINGS_HEADER.lower(), ""))
    return bool(RequestValidator(token).validate(url, form, signature, algorithm))
