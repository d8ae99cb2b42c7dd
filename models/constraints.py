"""Constraint kinds of a policy's `rules.constraints`, a union discriminated on `kind`.

The math of every kind is SPEC section 4; the engine's compiler gives each kind its cvxpy
form. Here only the shape of the parameters is checked: bounds are finite, a min/max kind
has at least one bound, `min <= max`, and unknown fields are errors.

The kinds live by family: what they share in `models.constraint_base`, then
`constraint_weights` (positions, aggregates, currencies, drift), `constraint_risk`,
`constraint_regulatory` and `constraint_controls`. Here are the custom `expression` kind
and the union of every kind; this module re-exports the names imported from it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from models.constraint_base import (
    Bounds,
    Confidence,
    ConstraintBase,
    Fraction,
    Limit,
    MissingDefault,
    NonNegativeFloat,
)
from models.constraint_controls import CorrelationCluster, MaxPositions, TradeRisk, TradingHalt
from models.constraint_regulatory import (
    DerivativesVaR,
    Diversified75510,
    IlliquidLimit,
    NamesRule80,
    Ucits51040,
)
from models.constraint_risk import (
    CVaR,
    StressScenario,
    StressTest,
    TrackingError,
    ValueAtRisk,
    Volatility,
)
from models.constraint_weights import (
    AllowedUniverse,
    Cash,
    Concentration,
    CurrencyExposure,
    Exposure,
    GrossExposure,
    GroupLimit,
    NetExposure,
    Restricted,
    TargetDrift,
    TradeLimit,
    Turnover,
    WeightBounds,
)

__all__ = [
    "AllowedUniverse",
    "Bounds",
    "Cash",
    "Concentration",
    "Confidence",
    "Constraint",
    "ConstraintBase",
    "CorrelationCluster",
    "CurrencyExposure",
    "Fraction",
    "Limit",
    "NonNegativeFloat",
    "CVaR",
    "DerivativesVaR",
    "Diversified75510",
    "Exposure",
    "Expression",
    "GrossExposure",
    "GroupLimit",
    "IlliquidLimit",
    "MaxPositions",
    "MissingDefault",
    "NamesRule80",
    "NetExposure",
    "Restricted",
    "StressScenario",
    "StressTest",
    "TargetDrift",
    "TrackingError",
    "TradeLimit",
    "TradeRisk",
    "TradingHalt",
    "Turnover",
    "Ucits51040",
    "ValueAtRisk",
    "Volatility",
    "WeightBounds",
]


class Expression(ConstraintBase):
    """A custom convex constraint in the expression language (docs/expressions.md).

    `expr` is only shape-checked here (a non-empty string of bounded length); the engine
    parses it and checks that it is convex when the policy is stored or a request carries
    it inline, and rejects it naming `rules.constraints[i].expr`.
    """

    kind: Literal["expression"] = "expression"
    expr: str = Field(min_length=1, max_length=2000)


Constraint = Annotated[
    WeightBounds
    | GroupLimit
    | GrossExposure
    | NetExposure
    | Cash
    | CurrencyExposure
    | TargetDrift
    | Exposure
    | Concentration
    | Turnover
    | TradeLimit
    | Restricted
    | AllowedUniverse
    | Volatility
    | TrackingError
    | ValueAtRisk
    | CVaR
    | StressTest
    | Expression
    | Ucits51040
    | Diversified75510
    | NamesRule80
    | IlliquidLimit
    | DerivativesVaR
    | TradeRisk
    | CorrelationCluster
    | TradingHalt
    | MaxPositions,
    Field(discriminator="kind"),
]
"""Any constraint kind; pydantic picks the class from `kind` and names unknown kinds."""
