"""GET /api/v1/analytics/...: counts over the stored validations and violations (DuckDB)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.decision_log import analytics
from api.decision_log.export import MissingDependency
from api.http.deps import Reader, ServicesDep
from api.http.schemas import ERROR_RESPONSES
from api.store import Invalid, Unavailable

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/analytics", tags=["decision log"], responses=ERROR_RESPONSES)

Since = Annotated[datetime | None, Query(description="at or after (ISO 8601, with zone)")]
Until = Annotated[datetime | None, Query(description="before (ISO 8601, with zone)")]


def _window(since: datetime | None, until: datetime | None) -> None:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise Invalid(name, "give a time zone (e.g. 2026-12-01T00:00:00Z)")
    if since is not None and until is not None and since >= until:
        raise Invalid("until", "must be later than since")


@router.get("/violations", summary="Violations per policy, portfolio or day")
def violations(
    services: ServicesDep,
    _caller: Reader,
    by: Annotated[analytics.Grouping, Query(description="policy, portfolio or day (UTC)")],
    since: Since = None,
    until: Until = None,
) -> list[dict[str, Any]]:
    """How many violations, in how many decisions, per policy, portfolio or day.

    Per portfolio and day also how many validations ran and how many were blocked. See
    docs/decision-log.md#analytics.
    """
    _window(since, until)
    try:
        return list(analytics.violations(services.store, by, since=since, until=until))
    except MissingDependency as exc:
        raise Unavailable(str(exc)) from exc


@router.get("/blocking", summary="The rules that blocked the most decisions")
def blocking(
    services: ServicesDep,
    _caller: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    since: Since = None,
    until: Until = None,
) -> list[dict[str, Any]]:
    """Strict policies ranked by how many blocked decisions they had a violation in.

    See docs/decision-log.md#analytics.
    """
    _window(since, until)
    try:
        return list(analytics.blocking(services.store, limit=limit, since=since, until=until))
    except MissingDependency as exc:
        raise Unavailable(str(exc)) from exc
