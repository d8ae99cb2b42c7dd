"""The global policy: the platform's runtime controls, at the paths its components call.

The same routes answer under `/api/policy` (where the executor, RiskGuard, the
orchestrator and the model-lifecycle service call them) and `/api/v1/policy` (with the rest
of the API). Reads need the reader role, changes admin; every change is a new version with
its actor, time and diff and a `global_policy_changed` event (api/store/global_policy.py).
A change is validated as a whole before anything is stored: an invalid field is a 422
naming it. `GET /policy` answers the version as its `ETag`; `If-Match` makes PATCH and
reset conditional on it (412 otherwise).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.http.deps import Admin, Reader, ServicesDep
from api.http.global_schemas import (
    GLOBAL_PATCH_EXAMPLES,
    AllowedSymbolsPublic,
    GlobalPolicyMergePatch,
    GlobalPolicyPublic,
    GlobalPolicyStatus,
    GlobalPolicyVersionPublic,
    ModelVersionsPublic,
    RiskModePublic,
    stamp,
)
from api.http.json_body import documented_body, json_body
from api.http.routes.policies import IfMatch, etag, parse_if_match
from api.http.schemas import ERROR_RESPONSES, ErrorResponse
from api.http.services import Services
from api.store import Invalid, StoredGlobalPolicy
from api.store.global_policy import merged
from models import GlobalPolicy, RiskMode

__all__ = ["PREFIXES", "routers"]

PREFIXES = ("/api/policy", "/api/v1/policy")
"""Where the routes answer: the path the platform's components call, and with the API."""

_CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "changed concurrently; re-read and retry"},
    412: {"model": ErrorResponse, "description": "If-Match names another version"},
}

PatchBody = Annotated[GlobalPolicyMergePatch, Depends(json_body(GlobalPolicyMergePatch))]


def _invalid(field: str, message: str) -> RequestValidationError:
    """A 422 naming `field` (the service's `invalid_request` answer)."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", field), "msg": message, "input": None}]
    )


def patched(current: GlobalPolicy, patch: dict[str, Any]) -> GlobalPolicy:
    """`current` with the merge patch applied (`api.store.global_policy.merged`).

    Raises `RequestValidationError` naming every invalid field (the service's 422).
    """
    try:
        return merged(current, patch)
    except Invalid as exc:
        raise _invalid(exc.field, exc.message) from None
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in errors]
        ) from None


def _answer(
    services: Services, changed: bool, stored: StoredGlobalPolicy, response: Response
) -> GlobalPolicyPublic:
    assert services.global_policy is not None
    services.global_policy.written(stored)  # this worker applies it at once
    if changed and services.relay is not None:
        services.relay.nudge()
    response.headers["ETag"] = etag(stored.version)
    response.headers["X-PES-Change"] = "changed" if changed else "unchanged"
    return GlobalPolicyPublic.of(stored)


def _current(services: Services) -> StoredGlobalPolicy:
    assert services.global_policy is not None
    return services.global_policy.current()


def _controls(policy: GlobalPolicy) -> list[str]:
    active = {
        "strategy_gate": bool(policy.allowed_strategies),
        "confidence_gate": policy.global_min_confidence is not None,
        "allowed_symbols": bool(policy.allowed_symbols),
        "max_positions": policy.max_positions is not None,
        "max_risk_per_trade": policy.max_risk_per_trade is not None,
    }
    return [name for name, on in active.items() if on]


def _router(prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["global policy"], responses=ERROR_RESPONSES)

    @router.get("/status", response_model=GlobalPolicyStatus, summary="Global policy status")
    def status(services: ServicesDep, _caller: Reader) -> GlobalPolicyStatus:
        """The current version, its risk mode and the controls validation applies now."""
        stored = _current(services)
        return GlobalPolicyStatus(
            risk_mode=stored.policy.risk_mode.value,
            change=stored.change,
            controls=_controls(stored.policy),
            refresh_s=services.settings.global_policy_refresh_s,
            **stamp(stored),
        )

    @router.get("", response_model=GlobalPolicyPublic, summary="Get the global policy")
    def get_policy(services: ServicesDep, _caller: Reader, response: Response) -> Any:
        """Every field of the current version, its `version` (also the `ETag`) and author."""
        stored = _current(services)
        response.headers["ETag"] = etag(stored.version)
        return GlobalPolicyPublic.of(stored)

    @router.patch(
        "",
        response_model=GlobalPolicyPublic,
        summary="Change the global policy (JSON merge patch)",
        responses=_CHANGE_RESPONSES,
        openapi_extra=documented_body(GlobalPolicyMergePatch, GLOBAL_PATCH_EXAMPLES),
    )
    def patch_policy(
        services: ServicesDep,
        caller: Admin,  # before the body: an unauthorized caller is refused unread
        patch: PatchBody,
        response: Response,
        if_match: IfMatch = None,
    ) -> Any:
        """Apply a JSON merge patch (RFC 7396) as a new version, with its event.

        The patch applies to the current version under the writers' lock, is validated as
        a whole (422 naming each invalid field; nothing stored), and a patch that changes
        nothing stores nothing (`X-PES-Change: unchanged`).
        """
        changed, stored = services.store.global_policy.change(
            lambda current: patched(current, patch.root),
            actor=caller.name,
            expected=parse_if_match(if_match),
        )
        return _answer(services, changed, stored, response)

    @router.post(
        "/reset",
        response_model=GlobalPolicyPublic,
        summary="Reset the global policy to the QT_* defaults",
        responses=_CHANGE_RESPONSES,
    )
    def reset(
        services: ServicesDep, caller: Admin, response: Response, if_match: IfMatch = None
    ) -> Any:
        """A new version (change `reset`) holding the defaults of the `QT_*` environment."""
        changed, stored = services.store.global_policy.reset(
            actor=caller.name, expected=parse_if_match(if_match)
        )
        return _answer(services, changed, stored, response)

    @router.get("/risk_mode", response_model=RiskModePublic, summary="Get the risk mode")
    def get_risk_mode(services: ServicesDep, _caller: Reader) -> RiskModePublic:
        """The stored risk mode: what conditions and per-mode limits read."""
        stored = _current(services)
        return RiskModePublic(risk_mode=stored.policy.risk_mode.value, **stamp(stored))

    @router.post(
        "/risk_mode/{mode}",
        response_model=GlobalPolicyPublic,
        summary="Set the risk mode",
        responses=_CHANGE_RESPONSES,
    )
    def set_risk_mode(
        mode: Annotated[
            str, Path(description="AGGRESSIVE | NORMAL | DEFENSIVE (any case)", max_length=32)
        ],
        services: ServicesDep,
        caller: Admin,
        response: Response,
        if_match: IfMatch = None,
    ) -> Any:
        """Store the risk mode as a new version (an invalid mode: 422 naming `risk_mode`)."""
        wanted = mode.strip().upper()
        if wanted not in RiskMode.__members__.values():
            allowed = ", ".join(m.value for m in RiskMode)
            raise _invalid("risk_mode", f"{mode!r} is not a risk mode; one of {allowed}")
        changed, stored = services.store.global_policy.change(
            lambda current: patched(current, {"risk_mode": wanted}),
            actor=caller.name,
            expected=parse_if_match(if_match),
        )
        return _answer(services, changed, stored, response)

    @router.get(
        "/allowed_symbols", response_model=AllowedSymbolsPublic, summary="Get the allowed symbols"
    )
    def allowed_symbols(services: ServicesDep, _caller: Reader) -> AllowedSymbolsPublic:
        """Symbols that may be bought (empty: any); selling any symbol is allowed."""
        stored = _current(services)
        return AllowedSymbolsPublic(
            allowed_symbols=list(stored.policy.allowed_symbols), **stamp(stored)
        )

    @router.get(
        "/model_versions", response_model=ModelVersionsPublic, summary="Get the model versions"
    )
    def model_versions(services: ServicesDep, _caller: Reader) -> ModelVersionsPublic:
        """Model name -> version, as the model-lifecycle service recorded them."""
        stored = _current(services)
        return ModelVersionsPublic(
            model_versions=dict(stored.policy.model_versions), **stamp(stored)
        )

    @router.get(
        "/versions",
        response_model=list[GlobalPolicyVersionPublic],
        summary="The global policy's change history",
    )
    def versions(
        services: ServicesDep,
        _caller: Reader,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[int | None, Query(ge=1, description="Only versions below it.")] = None,
    ) -> list[GlobalPolicyVersionPublic]:
        """Newest first: version, change, actor, time, diff and the whole policy."""
        _current(services)  # an empty store shows its initial version
        history = services.store.global_policy.versions(limit=limit, before=before)
        return [GlobalPolicyVersionPublic.of(v) for v in history]

    return router


def routers() -> list[APIRouter]:
    """One router per prefix in `PREFIXES`, with the same routes."""
    return [_router(prefix) for prefix in PREFIXES]
