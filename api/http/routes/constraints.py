"""POST /api/v1/constraints: the compiled constraint set of a portfolio's policies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import ValidationError
from sqlalchemy.exc import DataError, SQLAlchemyError

from api.http.deps import Reader, ServicesDep
from api.http.json_body import documented_body, json_body
from api.http.schemas import ERROR_RESPONSES, ErrorResponse
from api.store import Unavailable
from models import PolicyDefinition
from models.export import ConstraintSet, ConstraintSetRequest

__all__ = ["CONSTRAINTS_EXAMPLE", "router"]

router = APIRouter(prefix="/api/v1", tags=["constraints"], responses=ERROR_RESPONSES)

CONSTRAINTS_EXAMPLE: dict[str, Any] = {
    "portfolio_state": {
        "portfolio_id": "global-equity",
        "cash": 2_500_000.0,
        "positions": [{"symbol": "AAPL", "quantity": 5000}, {"symbol": "MSFT", "quantity": 4000}],
        "instruments": [
            {"symbol": "AAPL", "price": 190.1, "sector": "Information Technology"},
            {"symbol": "MSFT", "price": 410.5, "sector": "Information Technology"},
            {"symbol": "XOM", "price": 118.2, "sector": "Energy"},
        ],
    },
    "universe": ["XOM"],
    "options": {"include_advisory": False, "margin": 1e-7, "form": "linearized"},
}


@router.post(
    "/constraints",
    response_model=ConstraintSet,
    summary="Export the compiled constraint set of a portfolio's policies",
    responses={
        503: {
            "model": ErrorResponse,
            "description": "policies cannot be loaded: no constraint set is exported",
        }
    },
    openapi_extra=documented_body(
        ConstraintSetRequest,
        {
            "portfolio": {
                "summary": "Held names plus one the optimizer may buy",
                "value": CONSTRAINTS_EXAMPLE,
            }
        },
    ),
)
def constraints(
    services: ServicesDep,
    _caller: Reader,  # before the body: an unauthorized caller is refused unread
    request: Annotated[ConstraintSetRequest, Depends(json_body(ConstraintSetRequest))],
) -> ConstraintSet:
    """The effective policies (or the request's inline set) as solver-neutral constraints.

    Linear rows in coordinate form with bounds and provenance, second-order cones for the
    risk limits, piecewise-linear terms linearized over documented auxiliary variables (or
    as named blocks), and the policy-set revision. A registered portfolio's set includes
    the policies it inherits from its ancestors, as /validate checks them. See
    docs/constraint-export.md.
    """
    stored: list[PolicyDefinition] = []
    if request.policies is None:
        try:
            stored = [p.definition for p in services.store.policies.list()]
        except DataError:
            raise  # the database refused a value of the request: 422, not an outage
        except (SQLAlchemyError, ValidationError) as exc:  # fail closed: no partial set
            raise Unavailable(f"policies cannot be loaded: {exc.__class__.__name__}") from exc
    portfolio_id = request.portfolio_id or request.portfolio_state.portfolio_id
    # As for validate: with stored policies, an id the registered tree lacks is refused (an
    # optimizer would otherwise get a set without the portfolio's own policies).
    field = "portfolio_id" if request.portfolio_id else "portfolio_state.portfolio_id"
    lineage = services.lineage(portfolio_id, field=field, registered=request.policies is None)
    return services.export(request, stored, lineage)
