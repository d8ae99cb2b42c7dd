"""Violations review (the list, and the older resolve form) and stored validations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from api.http.deps import Admin, Reader, ServicesDep
from api.http.json_body import documented_body, json_body
from api.http.routes.violations import public_violation
from api.http.schemas import ERROR_RESPONSES, ViolationPage, ViolationPublic, ViolationResolution
from api.store import ViolationFilter, ViolationStatus
from models import PolicyValidationResponse, ViolationSeverity

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["review"], responses=ERROR_RESPONSES)
MAX_ID = 2**31 - 1


@router.get("/violations", response_model=ViolationPage, summary="List violations")
def list_violations(
    services: ServicesDep,
    _caller: Reader,
    portfolio_id: str | None = None,
    policy_name: str | None = None,
    severity: ViolationSeverity | None = None,
    resolved: bool | None = None,
    status: Annotated[
        list[ViolationStatus] | None, Query(description="one or more statuses")
    ] = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> ViolationPage:
    """Recorded violations, newest first."""
    items, total = services.store.validations.violations(
        ViolationFilter(
            portfolio_id=portfolio_id,
            policy_name=policy_name,
            severity=severity.value if severity else None,
            resolved=resolved,
            status=tuple(s.value for s in status) if status else None,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
    )
    return ViolationPage(
        total=total, limit=limit, offset=offset, items=[public_violation(v) for v in items]
    )


RESOLUTION_EXAMPLES: dict[str, Any] = {
    "resolve": {
        "summary": "Resolve with a note",
        "value": {"resolved": True, "note": "Approved by the CIO"},
    }
}


@router.patch(
    "/violations/{violation_id}",
    response_model=ViolationPublic,
    summary="Resolve a violation",
    openapi_extra=documented_body(ViolationResolution, RESOLUTION_EXAMPLES),
)
def resolve_violation(
    violation_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    services: ServicesDep,
    caller: Admin,  # before the body: an unauthorized caller is refused unread
    body: Annotated[ViolationResolution, Depends(json_body(ViolationResolution))],
) -> ViolationPublic:
    """Mark a violation resolved (or reopen it), with a note; the actor is recorded.

    The older form of `POST /violations/{id}/resolve` and `/reopen`: the same transitions,
    the note optional.
    """
    violations = services.store.violations
    if body.resolved:
        v = violations.resolve(violation_id, actor=caller.name, reason=body.note)
    else:
        v = violations.reopen(violation_id, actor=caller.name, reason=body.note)
    return public_violation(v)


@router.get(
    "/validations/{decision_id}",
    response_model=PolicyValidationResponse,
    summary="A stored validation",
)
def get_validation(decision_id: str, services: ServicesDep, _caller: Reader) -> Any:
    """The response given for `decision_id`."""
    return services.store.validations.get(decision_id)
