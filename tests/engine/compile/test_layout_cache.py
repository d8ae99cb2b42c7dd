"""A cached layout, rebound to a new request of the same structure, answers as a fresh one."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from engine import PolicyEngine
from engine.errors import PolicyResolutionError
from models import PolicyDefinition, PolicyValidationRequest
from tests.builders import policy, request
from tests.strategies import random_case


def _vary(request: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Same symbols, policies and attributes; new prices, cash, holdings and trade sizes."""
    out = copy.deepcopy(request)
    state = out["portfolio_state"]
    for instrument in state["instruments"]:
        instrument["price"] = round(instrument["price"] * float(rng.uniform(0.9, 1.1)), 4)
    state["cash"] = state["cash"] * float(rng.uniform(0.9, 1.1))
    for position in state["positions"]:
        position["quantity"] = position["quantity"] * float(rng.uniform(0.8, 1.2))
    for trade in out["decision"]["trades"]:
        trade["quantity"] = trade["quantity"] * float(rng.uniform(0.5, 1.5))
    return out


def _summary(
    engine: PolicyEngine, request: dict[str, Any], policies: list[PolicyDefinition]
) -> tuple[Any, ...]:
    response = engine.validate(PolicyValidationRequest.model_validate(request), policies)
    adjusted = response.adjusted_decision
    return (
        response.is_compliant,
        sorted(
            (
                v.policy_name,
                v.violation_type,
                str(v.subject),
                v.breach.value,
                round(v.observed, 9),
                round(v.limit, 9),
                round(v.pre_trade, 9),
            )
            for v in response.violations
        ),
        None if adjusted is None else round(adjusted.distance, 9),
    )


@pytest.mark.parametrize("seed", range(12))
def test_cached_layout_answers_like_a_fresh_one(seed: int) -> None:
    request, raw = random_case(np.random.default_rng(50_000 + seed), lot_mode="fractional")
    policies = [PolicyDefinition.model_validate(p) for p in raw]
    rng = np.random.default_rng(seed)
    shared = PolicyEngine()
    _summary(shared, request, policies)
    for _ in range(4):
        variant = _vary(request, rng)
        try:
            fresh = _summary(PolicyEngine(), variant, policies)
        except Exception as exc:  # the variant may be invalid input: both must agree on it
            with pytest.raises(type(exc)):
                _summary(shared, variant, policies)
            continue
        assert _summary(shared, variant, policies) == fresh
    assert shared.cache_stats().layout_hits > 0


@pytest.mark.parametrize("field", ["price", "lot_size"])
def test_constraints_cannot_read_per_request_fields_a_cached_layout_would_keep(
    field: str,
) -> None:
    policies = [
        PolicyDefinition.model_validate(
            policy("by-price", {"kind": "exposure", "attribute": field, "max": 1e9})
        )
    ]
    req = request({"AAA": 10}, [("AAA", "BUY", 1)])
    with pytest.raises(PolicyResolutionError, match=f"reads '{field}'"):
        PolicyEngine().validate(req, policies)
