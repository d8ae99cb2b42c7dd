"""The violation lifecycle over HTTP (docs/violations.md).

One violation with its history; acknowledge, resolve, reopen; bulk acknowledge and resolve.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from fastapi.types import DecoratedCallable
from pydantic import BaseModel

from api.escalation import destination
from api.http.deps import Admin, Reader, ServicesDep
from api.http.json_body import documented_body, json_body
from api.http.schemas import (
    ERROR_RESPONSES,
    Acknowledgement,
    BulkAction,
    BulkResult,
    BulkSkipped,
    ErrorResponse,
    Resolution,
    TransitionPublic,
    ViolationDetail,
    ViolationPublic,
    WebhookDeliveryPublic,
)
from api.http.security import Caller
from api.store import Delivery, StoredViolation, Transition

__all__ = ["public_delivery", "public_violation", "router"]

router = APIRouter(prefix="/api/v1/violations", tags=["review"], responses=ERROR_RESPONSES)
MAX_ID = 2**31 - 1
ViolationId = Annotated[int, Path(ge=1, le=MAX_ID)]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "the violation's status does not allow it"}
}


def public_violation(v: StoredViolation) -> ViolationPublic:
    """The wire form of a stored violation."""
    return ViolationPublic(
        id=v.id,
        decision_id=v.decision_id,
        portfolio_id=v.portfolio_id,
        created_at=v.created_at,
        status=v.status,
        escalation_level=v.escalation_level,
        occurrences=v.occurrences,
        last_seen_at=v.last_seen_at,
        last_decision_id=v.last_decision_id,
        acknowledged_at=v.acknowledged_at,
        acknowledged_by=v.acknowledged_by,
        resolved=v.resolved,
        resolved_at=v.resolved_at,
        resolved_by=v.resolved_by,
        resolution_note=v.resolution_note,
        violation=v.violation,
    )


def _transition(t: Transition) -> TransitionPublic:
    return TransitionPublic(
        action=t.action,
        from_status=t.from_status,
        to_status=t.to_status,
        escalation_level=t.escalation_level,
        actor=t.actor,
        reason=t.reason,
        decision_id=t.decision_id,
        at=t.at,
    )


def public_delivery(d: Delivery) -> WebhookDeliveryPublic:
    """The wire form of a webhook delivery, its URL reduced to where it goes."""
    return WebhookDeliveryPublic(
        id=d.id,
        rule=d.rule,
        destination=destination(d.url),
        status=d.status,
        attempts=d.attempts,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        delivered_at=d.delivered_at,
    )


def _detail(services: ServicesDep, v: StoredViolation) -> ViolationDetail:
    history = [_transition(t) for t in services.store.violations.history(v.id)]
    return ViolationDetail(**public_violation(v).model_dump(), history=history)


@router.get("/{violation_id}", response_model=ViolationDetail, summary="A violation")
def get_violation(
    violation_id: ViolationId, services: ServicesDep, _caller: Reader
) -> ViolationDetail:
    """One violation, its status and its history."""
    return _detail(services, services.store.violations.get(violation_id))


@router.get(
    "/{violation_id}/deliveries",
    response_model=list[WebhookDeliveryPublic],
    summary="A violation's webhook deliveries",
)
def violation_deliveries(
    violation_id: ViolationId, services: ServicesDep, _caller: Reader
) -> list[WebhookDeliveryPublic]:
    """Every webhook call its escalations asked for, oldest first, with how each went.

    404 when the violation does not exist; an empty list when no rule sent one.
    """
    services.store.violations.get(violation_id)  # 404 for an unknown violation
    return [public_delivery(d) for d in services.store.escalations.deliveries(violation_id)]


Action = Literal["acknowledge", "resolve", "reopen"]
"""A reviewer's action on one violation: the last segment of its route's path."""


def _action_route(
    action: Action, *, summary: str, body: type[BaseModel], examples: dict[str, Any]
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """The POST of one reviewer action: its body documented, 409 when the status forbids it."""
    return router.post(
        f"/{{violation_id}}/{action}",
        response_model=ViolationDetail,
        summary=summary,
        responses=CONFLICT,
        openapi_extra=documented_body(body, examples),
    )


def _moved(
    services: ServicesDep, action: Action, violation_id: int, caller: Caller, reason: str | None
) -> ViolationDetail:
    """Apply `action` to the violation as `caller`; its detail afterwards."""
    violations = services.store.violations
    move = {
        "acknowledge": violations.acknowledge,
        "resolve": violations.resolve,
        "reopen": violations.reopen,
    }[action]
    return _detail(services, move(violation_id, actor=caller.name, reason=reason))


@_action_route(
    "acknowledge",
    summary="Acknowledge a violation",
    body=Acknowledgement,
    examples={"ack": {"summary": "Acknowledge", "value": {"reason": "looking into it"}}},
)
def acknowledge_violation(
    violation_id: ViolationId,
    services: ServicesDep,
    caller: Admin,  # before the body: an unauthorized caller is refused unread
    body: Annotated[Acknowledgement, Depends(json_body(Acknowledgement))],
) -> ViolationDetail:
    """Open → acknowledged; 409 from any other status."""
    return _moved(services, "acknowledge", violation_id, caller, body.reason)


@_action_route(
    "resolve",
    summary="Resolve a violation",
    body=Resolution,
    examples={"resolve": {"summary": "Resolve", "value": {"reason": "approved by the CIO"}}},
)
def resolve_violation(
    violation_id: ViolationId,
    services: ServicesDep,
    caller: Admin,
    body: Annotated[Resolution, Depends(json_body(Resolution))],
) -> ViolationDetail:
    """Open or acknowledged → resolved, with the reason; 409 otherwise."""
    return _moved(services, "resolve", violation_id, caller, body.reason)


@_action_route(
    "reopen",
    summary="Reopen a violation",
    body=Acknowledgement,
    examples={"reopen": {"summary": "Reopen", "value": {"reason": "the breach is back"}}},
)
def reopen_violation(
    violation_id: ViolationId,
    services: ServicesDep,
    caller: Admin,
    body: Annotated[Acknowledgement, Depends(json_body(Acknowledgement))],
) -> ViolationDetail:
    """Resolved or cured → open; 409 otherwise."""
    return _moved(services, "reopen", violation_id, caller, body.reason)


@router.post(
    "/bulk",
    response_model=BulkResult,
    summary="Acknowledge or resolve several violations",
    openapi_extra=documented_body(
        BulkAction,
        {
            "resolve": {
                "summary": "Resolve two",
                "value": {"ids": [1, 2], "action": "resolve", "reason": "limit raised"},
            }
        },
    ),
)
def bulk_action(
    services: ServicesDep,
    caller: Admin,
    body: Annotated[BulkAction, Depends(json_body(BulkAction))],
) -> BulkResult:
    """Apply the action to each violation whose status allows it, in one transaction.

    The others (unknown, or in another status) are listed in `skipped` with the reason.
    """
    action = "acknowledged" if body.action == "acknowledge" else "resolved"
    outcome = services.store.violations.bulk(
        body.ids, action, actor=caller.name, reason=body.reason
    )
    return BulkResult(
        changed=[public_violation(v) for v in outcome.changed],
        skipped=[BulkSkipped(id=i, reason=why) for i, why in outcome.skipped.items()],
    )
