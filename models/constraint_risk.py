"""Constraint kinds of risk: volatility, tracking error, VaR, CVaR and stress scenarios.

Their rows are the engine's `engine/compile/kinds/risk.py`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from models.base import StrictModel
from models.constraint_base import (
    Confidence,
    ConstraintBase,
    Fraction,
    Limit,
    NonNegativeFloat,
)

__all__ = [
    "CVaR",
    "StressScenario",
    "StressTest",
    "TrackingError",
    "ValueAtRisk",
    "Volatility",
]


class Volatility(ConstraintBase):
    """`sqrt(w' Sigma w) <= max`, annualized."""

    kind: Literal["volatility"] = "volatility"
    max: NonNegativeFloat


class TrackingError(ConstraintBase):
    """`sqrt((w - b)' Sigma (w - b)) <= max`, annualized."""

    kind: Literal["tracking_error"] = "tracking_error"
    max: NonNegativeFloat


class ValueAtRisk(ConstraintBase):
    """Parametric normal VaR: `z_conf * sqrt(h / 252) * sqrt(w' Sigma w) <= max`."""

    kind: Literal["var"] = "var"
    confidence: Confidence
    horizon_days: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    max: NonNegativeFloat


class CVaR(ConstraintBase):
    """Scenario CVaR at `confidence` of the loss `-r_s' w` (equally likely scenarios)."""

    kind: Literal["cvar"] = "cvar"
    confidence: Fraction
    max: NonNegativeFloat


class StressScenario(StrictModel):
    """Shocks by symbol or by an attribute's values; `default` covers the rest."""

    by: str = Field(default="symbol", min_length=1)
    shocks: dict[str, Annotated[float, Field(allow_inf_nan=False)]]
    default: Annotated[float, Field(allow_inf_nan=False)] = 0.0


class StressTest(ConstraintBase):
    """Per scenario: the loss `-sum_i w_i shock_i <= max_loss`."""

    kind: Literal["stress"] = "stress"
    scenarios: dict[str, StressScenario] = Field(min_length=1)
    max_loss: Limit
