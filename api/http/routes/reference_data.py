"""Registered reference data (universes, risk models, FX snapshots): versioned, named by id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response, status

from api.http.deps import Admin, Reader, ServicesDep
from api.http.json_body import documented_body, json_body
from api.http.reference_schemas import (
    FX_SNAPSHOT_EXAMPLES,
    RISK_MODEL_EXAMPLES,
    UNIVERSE_EXAMPLES,
    FxSnapshotPublic,
    ReferenceVersionPublic,
    RiskModelPublic,
    UniversePublic,
)
from api.http.schemas import ERROR_RESPONSES, ErrorResponse
from api.store import Invalid, ReferenceDataStore, StoredReference
from models import FxSnapshot, RiskModelDefinition, Universe

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["reference data"], responses=ERROR_RESPONSES)

RefId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-:]*$",
        description="The id requests name (`portfolio_state.universe.id`, "
        "`portfolio_state.risk_model.id`, `portfolio_state.fx_snapshot.id`).",
    ),
]
Version = Annotated[int | None, Query(ge=1, description="A stored version; absent = the latest.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "no such id (or version)"}
}
PUT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "replaced (a new version) or unchanged (the same version)"},
    201: {"description": "created (version 1)"},
    409: {"model": ErrorResponse, "description": "changed concurrently; send it again"},
    413: {"model": ErrorResponse, "description": "body over PES_MAX_REFERENCE_BODY_BYTES"},
}


def _put(
    store: ReferenceDataStore[Any], ref_id: str, definition: Any, response: Response, actor: str
) -> StoredReference[Any]:
    if definition.id != ref_id:
        raise Invalid("id", f"{definition.id!r} in the body differs from {ref_id!r} in the path")
    outcome, stored = store.put(definition, actor=actor)
    if outcome == "created":
        response.status_code = status.HTTP_201_CREATED
    response.headers["X-PES-Change"] = outcome
    return stored


def _versions(store: ReferenceDataStore[Any], ref_id: str) -> list[ReferenceVersionPublic]:
    return [ReferenceVersionPublic.of(info) for info in store.versions(ref_id)]


# --- universes --------------------------------------------------------------------------------


@router.get("/universes", response_model=list[ReferenceVersionPublic], summary="List universes")
def list_universes(services: ServicesDep, _caller: Reader) -> list[ReferenceVersionPublic]:
    """The latest version of every registered universe (without the instruments)."""
    return [ReferenceVersionPublic.of(info) for info in services.store.universes.list()]


@router.put(
    "/universes/{universe_id}",
    response_model=UniversePublic,
    summary="Register a universe (a new version when it changes)",
    responses=PUT_RESPONSES,
    openapi_extra=documented_body(Universe, UNIVERSE_EXAMPLES),
)
def put_universe(
    universe_id: RefId,
    response: Response,
    services: ServicesDep,
    caller: Admin,  # before the body: an unauthorized caller is refused unread
    universe: Annotated[Universe, Depends(json_body(Universe))],
) -> UniversePublic:
    """Store the universe as version 1 (201) or a new version (200).

    When the content is the latest version's, nothing is stored (200, the same version;
    header `X-PES-Change: unchanged`). Versions are immutable: requests naming an older
    version keep getting its instruments.
    """
    stored = _put(services.store.universes, universe_id, universe, response, caller.name)
    return UniversePublic(
        universe=stored.definition, version=ReferenceVersionPublic.of(stored.info)
    )


@router.get(
    "/universes/{universe_id}",
    response_model=UniversePublic,
    summary="Get a universe",
    responses=NOT_FOUND,
)
def get_universe(
    universe_id: RefId, services: ServicesDep, _caller: Reader, version: Version = None
) -> UniversePublic:
    """The latest version, or `?version=N`."""
    stored = services.store.universes.get(universe_id, version)
    return UniversePublic(
        universe=stored.definition, version=ReferenceVersionPublic.of(stored.info)
    )


@router.get(
    "/universes/{universe_id}/versions",
    response_model=list[ReferenceVersionPublic],
    summary="Every version of a universe",
    responses=NOT_FOUND,
)
def universe_versions(
    universe_id: RefId, services: ServicesDep, _caller: Reader
) -> list[ReferenceVersionPublic]:
    """Oldest first: version, author, time, digest and what changed by symbol."""
    return _versions(services.store.universes, universe_id)


# --- risk models ------------------------------------------------------------------------------


@router.get("/risk-models", response_model=list[ReferenceVersionPublic], summary="List risk models")
def list_risk_models(services: ServicesDep, _caller: Reader) -> list[ReferenceVersionPublic]:
    """The latest version of every registered risk model (without its data)."""
    return [ReferenceVersionPublic.of(info) for info in services.store.risk_models.list()]


@router.put(
    "/risk-models/{risk_model_id}",
    response_model=RiskModelPublic,
    summary="Register a risk model (a new version when it changes)",
    responses=PUT_RESPONSES,
    openapi_extra=documented_body(RiskModelDefinition, RISK_MODEL_EXAMPLES),
)
def put_risk_model(
    risk_model_id: RefId,
    response: Response,
    services: ServicesDep,
    caller: Admin,  # before the body: an unauthorized caller is refused unread
    definition: Annotated[RiskModelDefinition, Depends(json_body(RiskModelDefinition))],
) -> RiskModelPublic:
    """Store the risk model as version 1 (201) or a new version (200).

    When the content is the latest version's, nothing is stored (200, the same version).
    `risk_model` has the inline form of a request's `portfolio_state.risk_model` (a factor
    model or a full covariance).
    """
    stored = _put(services.store.risk_models, risk_model_id, definition, response, caller.name)
    return RiskModelPublic(
        risk_model=stored.definition, version=ReferenceVersionPublic.of(stored.info)
    )


@router.get(
    "/risk-models/{risk_model_id}",
    response_model=RiskModelPublic,
    summary="Get a risk model",
    responses=NOT_FOUND,
)
def get_risk_model(
    risk_model_id: RefId, services: ServicesDep, _caller: Reader, version: Version = None
) -> RiskModelPublic:
    """The latest version, or `?version=N`."""
    stored = services.store.risk_models.get(risk_model_id, version)
    return RiskModelPublic(
        risk_model=stored.definition, version=ReferenceVersionPublic.of(stored.info)
    )


@router.get(
    "/risk-models/{risk_model_id}/versions",
    response_model=list[ReferenceVersionPublic],
    summary="Every version of a risk model",
    responses=NOT_FOUND,
)
def risk_model_versions(
    risk_model_id: RefId, services: ServicesDep, _caller: Reader
) -> list[ReferenceVersionPublic]:
    """Oldest first: version, author, time, digest and what changed by symbol."""
    return _versions(services.store.risk_models, risk_model_id)


# --- FX snapshots -----------------------------------------------------------------------------


@router.get(
    "/fx-snapshots", response_model=list[ReferenceVersionPublic], summary="List FX snapshots"
)
def list_fx_snapshots(services: ServicesDep, _caller: Reader) -> list[ReferenceVersionPublic]:
    """The latest version of every registered FX snapshot (without its rates)."""
    return [ReferenceVersionPublic.of(info) for info in services.store.fx_snapshots.list()]


@router.put(
    "/fx-snapshots/{fx_snapshot_id}",
    response_model=FxSnapshotPublic,
    summary="Register an FX snapshot (a new version when it changes)",
    responses=PUT_RESPONSES,
    openapi_extra=documented_body(FxSnapshot, FX_SNAPSHOT_EXAMPLES),
)
def put_fx_snapshot(
    fx_snapshot_id: RefId,
    response: Response,
    services: ServicesDep,
    caller: Admin,  # before the body: an unauthorized caller is refused unread
    snapshot: Annotated[FxSnapshot, Depends(json_body(FxSnapshot))],
) -> FxSnapshotPublic:
    """Store the FX snapshot as version 1 (201) or a new version (200).

    When the content is the latest version's, nothing is stored (200, the same version).
    `rates` has the form of a request's inline `portfolio_state.fx_rates` (units of
    `base_currency` per unit), checked the same way.
    """
    stored = _put(services.store.fx_snapshots, fx_snapshot_id, snapshot, response, caller.name)
    return FxSnapshotPublic(
        fx_snapshot=stored.definition, version=ReferenceVersionPublic.of(stored.info)
    )


@router.get(
    "/fx-snapshots/{fx_snapshot_id}",
    response_model=FxSnapshotPublic,
    summary="Get an FX snapshot",
    responses=NOT_FOUND,
)
def get_fx_snapshot(
    fx_snapshot_id: RefId, services: ServicesDep, _caller: Reader, version: Version = None
) -> FxSnapshotPublic:
    """The latest version, or `?version=N`."""
    stored = services.store.fx_snapshots.get(fx_snapshot_id, version)
    return FxSnapshotPublic(
        fx_snapshot=stored.definition, version=ReferenceVersionPublic.of(stored.info)
    )


@router.get(
    "/fx-snapshots/{fx_snapshot_id}/versions",
    response_model=list[ReferenceVersionPublic],
    summary="Every version of an FX snapshot",
    responses=NOT_FOUND,
)
def fx_snapshot_versions(
    fx_snapshot_id: RefId, services: ServicesDep, _caller: Reader
) -> list[ReferenceVersionPublic]:
    """Oldest first: version, author, time, digest and what changed by currency."""
    return _versions(services.store.fx_snapshots, fx_snapshot_id)
