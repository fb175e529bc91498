"""Every error leaves as JSON ``{"error": {"code", "message"}}`` with a fitting status."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from hub.files import FileRejected
from hub.identity import InvalidIdentity, MergeError
from hub.knowledge import EditConflict
from hub.links import LinkError
from hub.tickets import TicketError
from kb.locales import InvalidLocale

log = logging.getLogger(__name__)

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_type",
         422: "unprocessable", 429: "rate_limited"}


def error_response(status: int, code: str, message: str,
                   extra: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"code": code, "message": message}
    if extra:
        body.update(extra)
    return Response({"error": body}, status_code=status, headers=headers)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    extra = None
    if isinstance(exc, ValidationException) and exc.extra:
        extra = {"details": exc.extra}
    message = exc.detail if isinstance(exc.detail, str) else CODES.get(status, "error")
    return error_response(status, CODES.get(status, "error"), message, extra)


def ticket_error(_: Request[Any, Any, Any], exc: TicketError) -> Response[dict[str, Any]]:
    return error_response(exc.status, exc.code, str(exc))


def lookup_error(_: Request[Any, Any, Any], exc: LookupError) -> Response[dict[str, Any]]:
    return error_response(404, "not_found", str(exc).strip("'\""))


def value_error(_: Request[Any, Any, Any], exc: ValueError) -> Response[dict[str, Any]]:
    code = getattr(exc, "code", "invalid")
    return error_response(400, code, str(exc))


def link_error(_: Request[Any, Any, Any], exc: LinkError) -> Response[dict[str, Any]]:
    return error_response(422 if exc.code == "channel_unavailable" else 400, exc.code, str(exc))


def edit_conflict(_: Request[Any, Any, Any], exc: EditConflict) -> Response[dict[str, Any]]:
    return error_response(409, "edit_conflict", str(exc), {"newest_version": exc.newest})


def server_error(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if _caused_by(exc, OverflowError):  # an id or count no database column can hold
        return error_response(400, "out_of_range", "a number in the request is out of range")
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "something went wrong on our side")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is in the chain: drivers wrap the OverflowError of a value too large
    for an integer column (asyncpg in DataError, SQLAlchemy in DBAPIError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


EXCEPTION_HANDLERS: dict[Any, Any] = {
    HTTPException: http_error,
    TicketError: ticket_error,
    MergeError: value_error,
    InvalidIdentity: value_error,
    InvalidLocale: value_error,
    FileRejected: value_error,
    LinkError: link_error,
    EditConflict: edit_conflict,
    LookupError: lookup_error,
    500: server_error,
}
