"""GET /api/metrics: the supervisor's figures (supervisors and admins)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import FromQuery, QueryParameter

from hub import metrics
from hub.api.deps import ServicesDep
from hub.auth import SUPERVISORS, require_role
from hub.models import Agent


@get("/metrics", tags=["supervisors"])
async def get_metrics(request: Request[Agent, str, Any], services: ServicesDep,
                      from_: Annotated[date | None, QueryParameter(name="from")] = None,
                      to: FromQuery[date | None] = None) -> dict[str, Any]:
    require_role(request.user, *SUPERVISORS)
    timezone = services.settings.timezone
    start, end = metrics.period(from_, to, timezone)
    async with services.sessions() as session:
        return await metrics.collect(session, start, end, timezone)
