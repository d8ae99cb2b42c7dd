"""POST /api/v1/stress: loss distribution, VaR/CVaR and the policies' scenario rules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import ValidationError
from sqlalchemy.exc import DataError, SQLAlchemyError

from api.http.deps import ServicesDep, Validator
from api.http.examples import STRESS_EXAMPLE, STRESS_STATE_EXAMPLE
from api.http.json_body import documented_body, json_body
from api.http.schemas import ERROR_RESPONSES
from api.store import Unavailable
from engine.stress import names_stress_references, resolve_stress_references, run_stress
from models import PolicyDefinition
from models.stress import StressRequest, StressResponse

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["stress"], responses=ERROR_RESPONSES)


@router.post(
    "/stress",
    response_model=StressResponse,
    response_model_exclude_none=True,
    summary="Stress tests and scenario VaR/CVaR, per portfolio and firm-wide",
    openapi_extra=documented_body(
        StressRequest,
        {
            "weights": {
                "summary": "Two portfolios by weight: history, a shock, Monte Carlo",
                "value": STRESS_EXAMPLE,
            },
            "state": {
                "summary": "A portfolio state, as /validate takes it",
                "value": STRESS_STATE_EXAMPLE,
            },
        },
    ),
)
def stress(
    services: ServicesDep,
    _caller: Validator,  # before the body: an unauthorized caller is refused unread
    request: Annotated[StressRequest, Depends(json_body(StressRequest))],
) -> StressResponse:
    """Losses of each portfolio and of the firm under the scenarios, and the rules on them.

    Scenarios: a historical returns table, named factor shocks through the risk model's
    exposures, and seeded Monte Carlo draws from it. Per portfolio and for the firm
    (NAV-weighted): the loss distribution, VaR and CVaR at `levels`, the `worst`
    scenarios, and every stress, var and cvar rule of the policies (inline, else the
    stored ones) with observed value, limit and breach. A registered risk model (by id) or
    a state's registered universe is merged in first. Nothing is stored. Beyond the
    documented size bounds the request is refused (422). See docs/stress.md.
    """
    stored: list[PolicyDefinition] = []
    if request.policies is None:
        try:
            stored = [p.definition for p in services.store.policies.list()]
        except DataError:
            raise
        except (SQLAlchemyError, ValidationError) as exc:  # fail closed: no answer
            raise Unavailable(f"policies cannot be loaded: {exc.__class__.__name__}") from exc
    if names_stress_references(request):
        assert services.references is not None
        try:
            request = resolve_stress_references(request, services.references)
        except DataError:
            raise  # the database refused a value of the request: 422, not an outage
        except (SQLAlchemyError, ValidationError) as exc:  # fail closed
            reason = exc.__class__.__name__
            raise Unavailable(f"reference data cannot be loaded: {reason}") from exc
    return run_stress(request, stored)
