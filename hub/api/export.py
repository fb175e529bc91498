"""GET /api/export/voc: the voice-of-customer export, streamed (supervisors and admins)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import FromQuery, QueryParameter
from litestar.response import Stream

from hub import export
from hub.api.deps import ServicesDep
from hub.auth import SUPERVISORS, require_role
from hub.hours import parse_day
from hub.models import Agent, Channel, utcnow
from hub.services import Services
from hub.tickets import TicketError

FILE_CHUNK = 256 * 1024
CHANNELS = {c.value for c in Channel}


@get("/export/voc", tags=["supervisors"], summary="Voice-of-customer export (CSV, XLSX, JSONL)",
     description="One row per customer message or transcript with its ticket's context, "
                 "oldest first; from/to are whole days in the hub's time zone. CSV is UTF-8 "
                 "with a BOM. mask_pii=true masks names, e-mail addresses, phone and card "
                 "numbers. Every export is written to the audit log.")
async def export_voc(request: Request[Agent, str, Any], services: ServicesDep,
                     format_: Annotated[str, QueryParameter(name="format")] = "csv",
                     from_: Annotated[str, QueryParameter(name="from")] = "",
                     to: FromQuery[str] = "", channel: FromQuery[str] = "",
                     mask_pii: FromQuery[bool] = False) -> Stream:
    # from, to and channel may come empty (a form's blank fields): empty means "any"
    require_role(request.user, *SUPERVISORS)
    if channel and channel not in CHANNELS:
        raise TicketError("bad_channel", f"unknown channel {channel!r}", 400)
    try:
        fmt = export.check_format(format_ or "csv")
        query = export.VocQuery.for_days(
            parse_day(from_), parse_day(to), services.settings.timezone,
            channel=channel or None, mask_pii=mask_pii)
    except ValueError as exc:  # export.ExportError or a day that is no date
        raise TicketError("bad_export", str(exc), 400) from exc
    await _audit(services, request.user, fmt, query)
    body = (_xlsx(services, query) if fmt == "xlsx"
            else export.stream(services.sessions, query, fmt))
    name = f"voc-{utcnow():%Y%m%d-%H%M%S}.{fmt}"
    return Stream(body, media_type=export.MEDIA_TYPES[fmt],
                  headers={"Content-Disposition": f'attachment; filename="{name}"',
                           "Cache-Control": "no-store"})


async def _audit(services: Services, agent: Agent, fmt: str, query: export.VocQuery) -> None:
    async with services.sessions() as session, session.begin():
        export.audit_export(session, query, fmt, agent.id)


async def _xlsx(services: Services, query: export.VocQuery) -> AsyncIterator[bytes]:
    """An XLSX file is a zip with its directory at the end: build it, then send it."""
    with tempfile.TemporaryDirectory(prefix="omohub-voc-") as folder:
        path = Path(folder) / "voc.xlsx"
        await export.write_file(services.sessions, query, "xlsx", path)
        with path.open("rb") as data:
            while chunk := data.read(FILE_CHUNK):
                yield chunk
