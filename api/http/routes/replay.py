"""POST /api/v1/replay: logged decisions run again under a candidate policy set."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from api.decision_log import Replayer, engine_validator
from api.http.deps import Reader, ServicesDep
from api.http.json_body import documented_body, json_body
from api.http.schemas import ERROR_RESPONSES, ErrorResponse
from models.replay import ReplayRequest, ReplayResponse

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["decision log"], responses=ERROR_RESPONSES)

REPLAY_APPLIED: dict[str, Any] = {
    "since": "2026-12-01T00:00:00Z",
    "portfolio_ids": ["fund-a-growth"],
}
REPLAY_CHANGED_LIMIT: dict[str, Any] = {
    "since": "2026-12-01T00:00:00Z",
    "until": "2026-12-02T00:00:00Z",
    "candidate": {
        "base": "applied",
        "policies": [
            {
                "policy_name": "single-name-cap",
                "policy_type": "POSITION_LIMIT",
                "description": "No single name above 8% of NAV (10% stored)",
                "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.08}]},
            }
        ],
    },
}
REPLAY_STORED_NOW: dict[str, Any] = {
    "decision_ids": ["dec-2026-12-01-0042"],
    "candidate": {"base": "stored", "global_policy": "current"},
    "include_responses": True,
}


@router.post(
    "/replay",
    response_model=ReplayResponse,
    summary="Replay logged decisions under a candidate policy set",
    responses={
        422: {
            "model": ErrorResponse,
            "description": "invalid request; also more matching decisions than "
            "PES_REPLAY_MAX_DECISIONS (field `filters`), or a candidate naming a policy or "
            "global policy version the store lacks",
        },
    },
    openapi_extra=documented_body(
        ReplayRequest,
        {
            "applied": {
                "summary": "Under the versions each decision was validated with",
                "value": REPLAY_APPLIED,
            },
            "changed_limit": {
                "summary": "One policy changed, the rest as applied",
                "value": REPLAY_CHANGED_LIMIT,
            },
            "stored_now": {
                "summary": "Under the stored policies and global policy as they are now",
                "value": REPLAY_STORED_NOW,
            },
        },
    ),
)
def replay(
    services: ServicesDep,
    _caller: Reader,  # before the body: an unauthorized caller is refused unread
    request: Annotated[ReplayRequest, Depends(json_body(ReplayRequest))],
) -> ReplayResponse:
    """Run the logged decisions the filters select again and say what changes for each.

    Filters (all optional, combined): `since`/`until` (logged at), `portfolio_ids`,
    `decision_ids`, `validation_ids`. The candidate starts from each decision's own applied
    policy versions (`base: applied`), the stored policies now or at `as_of`
    (`base: stored`) or nothing (`base: none`); `versions` pins stored policies at given
    versions, `policies` replaces or adds definitions; `global_policy` is `applied`,
    `current` or a version. Each decision is `newly_blocked`, `newly_allowed`,
    `violations_changed`, `adjustment_changed`, `unchanged`, or `failed` (the candidate
    cannot evaluate it, with the reason). More matching decisions than
    `PES_REPLAY_MAX_DECISIONS` is a 422 before anything runs. A replay is a read (role
    reader): nothing is stored and no event is sent. See docs/decision-log.md.
    """
    settings = services.settings
    assert services.references is not None
    validate = engine_validator(
        services.engine,
        services.references,
        deadline_s=settings.request_deadline_s,
        require_applicable=not settings.approve_when_no_policy_applies,
        lock=services.engine_lock,
    )
    replayer = Replayer(services.store, validate, settings.replay_max_decisions)
    return replayer.run(request)
