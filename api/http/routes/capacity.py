"""POST /api/v1/capacity: how much more of each symbol can be bought or sold."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import ValidationError
from sqlalchemy.exc import DataError, SQLAlchemyError

from api.http.deps import ServicesDep, Validator
from api.http.examples import CAPACITY_DECISION_EXAMPLE, CAPACITY_EXAMPLE
from api.http.json_body import documented_body, json_body
from api.http.schemas import ERROR_RESPONSES
from api.store import Unavailable
from models import PolicyDefinition
from models.capacity import CapacityRequest, CapacityResponse

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["capacity"], responses=ERROR_RESPONSES)


@router.post(
    "/capacity",
    response_model=CapacityResponse,
    summary="Largest additional buy and sale per symbol before a strict policy binds",
    openapi_extra=documented_body(
        CapacityRequest,
        {
            "portfolio": {"summary": "From the current portfolio", "value": CAPACITY_EXAMPLE},
            "decision": {
                "summary": "Beyond a proposed decision",
                "value": CAPACITY_DECISION_EXAMPLE,
            },
        },
    ),
)
def capacity(
    services: ServicesDep,
    _caller: Validator,  # before the body: an unauthorized caller is refused unread
    request: Annotated[CapacityRequest, Depends(json_body(CapacityRequest))],
) -> CapacityResponse:
    """Size the room left under the strict policies, per symbol and direction.

    Per symbol (default: every symbol held or traded by the decision), the largest buy and
    sale in whole lots that keep every strict policy compliant, and the policy rows one lot
    more would breach. Nothing is stored. See docs/capacity.md.
    """
    stored: list[PolicyDefinition] = []
    if request.policies is None:
        try:
            stored = [p.definition for p in services.store.policies.list()]
        except DataError:
            raise
        except (SQLAlchemyError, ValidationError) as exc:  # fail closed: no answer
            raise Unavailable(f"policies cannot be loaded: {exc.__class__.__name__}") from exc
    # As for validate: with stored policies, an id the registered tree lacks is refused.
    registered = request.policies is None
    field = "portfolio_id" if request.portfolio_id else "portfolio_state.portfolio_id"
    lineage = services.lineage(request.target_portfolio, field=field, registered=registered)
    return services.capacity(request, stored, lineage)
