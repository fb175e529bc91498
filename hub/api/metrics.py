"""GET /api/metrics: the supervisor's figures (supervisors and admins)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import FromQuery, QueryParameter

from hub import metrics
from hub.api.deps import ServicesDep
from hub.auth import SUPERVISORS, require_role
from hub.hours import parse_day
from hub.models import Agent
from hub.tickets import TicketError


@get("/metrics", tags=["supervisors"])
async def get_metrics(request: Request[Agent, str, Any], services: ServicesDep,
                      from_: Annotated[str, QueryParameter(name="from")] = "",
                      to: FromQuery[str] = "") -> dict[str, Any]:
    require_role(request.user, *SUPERVISORS)
    timezone = services.settings.timezone
    start, end = metrics.period(_day("from", from_), _day("to", to), timezone)
    async with services.sessions() as session:
        return await metrics.collect(session, start, end, timezone)


def _day(name: str, text: str) -> date | None:
    try:
        return parse_day(text)
    except ValueError as exc:  # named as the caller wrote it ("from", not Python's from_)
        raise TicketError("bad_period", f"{name}: {exc}", 400) from exc
