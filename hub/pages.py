"""What every HTML page shares: security headers, locale choice and template rendering."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.datastructures import Cookie

CSP_APP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
           "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; "
           "form-action 'self'; frame-ancestors 'none'")
CSP_EMBEDDABLE = CSP_APP.replace("frame-ancestors 'none'", "frame-ancestors *").replace(
    "img-src 'self' data: blob:", "img-src 'self' data: blob: https:")
# The inbox's softphone (Twilio Voice JS SDK): its signalling is wss (already allowed), its
# call-quality reports go to https://eventgw[.<region>].twilio.com, its ring tones come from
# https://sdk.twilio.com; the call's audio is WebRTC (outside CSP) played from a MediaStream.
CSP_SOFTPHONE = CSP_APP.replace("connect-src 'self' ws: wss:",
                                "connect-src 'self' ws: wss: https://*.twilio.com").replace(
    "object-src", "media-src 'self' blob: https://sdk.twilio.com; object-src")
# A video session page shows its camera and the other peer's (MediaStreams; WebRTC itself
# is outside CSP, its signalling is the Socket.IO websocket).
CSP_VIDEO = CSP_APP.replace("object-src", "media-src 'self' blob: mediastream:; object-src")
# by template name; every other page: CSP_APP
PAGE_CSP = {"inbox.html": CSP_SOFTPHONE, "video.html": CSP_VIDEO}
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
LOCALES = ("ja", "en")
LOCALE_COOKIE = "omohub_lang"
LOCALE_COOKIE_SECONDS = 365 * 24 * 3600


def pick_locale(request: Request[Any, Any, Any], default: str = "ja") -> str:
    """?lang= wins, then the language chosen before in this browser (``remember_locale``),
    then the browser's Accept-Language (by q-value), then ``default``."""
    for chosen in (request.query_params.get("lang"), request.cookies.get(LOCALE_COOKIE)):
        if chosen in LOCALES:
            return chosen
    for language in _accepted_languages(request.headers.get("accept-language", "")):
        if language in LOCALES:
            return language
    return default if default in LOCALES else LOCALES[0]


def _accepted_languages(header: str) -> list[str]:
    """Two-letter languages of an Accept-Language header, most wanted first."""
    ranked: list[tuple[float, str]] = []
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((quality, tag.strip().lower()[:2]))
    return [language for _, language in sorted(ranked, key=lambda pair: -pair[0])]


def remember_locale(request: Request[Any, Any, Any], response: Response[Any]) -> Response[Any]:
    """A page opened with ?lang= keeps that language on later pages in this browser."""
    asked = request.query_params.get("lang")
    if asked in LOCALES and request.cookies.get(LOCALE_COOKIE) != asked:
        response.set_cookie(Cookie(key=LOCALE_COOKIE, value=asked, path="/", samesite="lax",
                                   max_age=LOCALE_COOKIE_SECONDS))
    return response


def secure_headers(response: Response[Any], embeddable: bool = False) -> Response[Any]:
    page = getattr(response, "template_name", None)
    response.headers["Content-Security-Policy"] = (
        CSP_EMBEDDABLE if embeddable else PAGE_CSP.get(page or "", CSP_APP))
    if not embeddable:
        response.headers["X-Frame-Options"] = "DENY"
    response.headers.update(SECURITY_HEADERS)
    return response
