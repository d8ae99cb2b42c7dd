"""Registered reference data named by a stress request, merged in before the run.

A request's top-level `risk_model` may name a registered risk model (`{"id": ...,
"version": ...}`), and each portfolio state may name a universe, a risk model or an FX
snapshot, exactly as a /validate request's state does (`engine.resolve.references`). The
source is the edge's (the store behind a cache); unknown ids or versions raise
`InputError` naming the request's field.
"""

from __future__ import annotations

from engine.errors import InputError
from engine.resolve.references import (
    ReferenceNotFound,
    ReferenceSource,
    names_references,
    resolve_references,
)
from models import DataReference
from models.stress import StressRequest

__all__ = ["names_stress_references", "resolve_stress_references"]


def names_stress_references(request: StressRequest) -> bool:
    """True when `request` names registered reference data (a risk model, a universe)."""
    model = request.risk_model
    return (model is not None and model.id is not None) or any(
        p.portfolio_state is not None and names_references(p.portfolio_state)
        for p in request.portfolios
    )


def resolve_stress_references(request: StressRequest, source: ReferenceSource) -> StressRequest:
    """`request` with every registered reference it names replaced by the stored data."""
    if not names_stress_references(request):
        return request
    update: dict[str, object] = {}
    model = request.risk_model
    if model is not None and model.id is not None:
        try:
            data = source.risk_model(DataReference(id=model.id, version=model.version))
        except ReferenceNotFound as exc:
            raise InputError(f"risk_model.{exc.part}", exc.message) from exc
        update["risk_model"] = data.model
    portfolios = list(request.portfolios)
    for p, portfolio in enumerate(portfolios):
        state = portfolio.portfolio_state
        if state is None or not names_references(state):
            continue
        try:
            resolution = resolve_references(state, source)
        except InputError as exc:
            raise InputError(f"portfolios[{p}].{exc.field}", exc.message) from exc
        portfolios[p] = portfolio.model_copy(update={"portfolio_state": resolution.state})
    update["portfolios"] = portfolios
    return request.model_copy(update=update)
