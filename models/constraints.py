"""Constraint kinds of a policy's `rules.constraints`, a union discriminated on `kind`.

The math of every kind is SPEC section 4; the engine's compiler gives each kind its cvxpy
form. Here only the shape of the parameters is checked: bounds are finite, a min/max kind
has at least one bound, `min <= max`, and unknown fields are errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictFloat, StrictInt, StrictStr, model_validator

from models.base import StrictModel, Symbol
from models.contextual import (
    ContextualConfidence,
    ContextualFraction,
    ContextualLimit,
    ContextualNonNegative,
    by_form,
    ordered_pairs,
)
from models.portfolio import AttributeValue

__all__ = [
    "AllowedUniverse",
    "Bounds",
    "Cash",
    "Concentration",
    "Confidence",
    "Constraint",
    "ConstraintBase",
    "Fraction",
    "Limit",
    "NonNegativeFloat",
    "CVaR",
    "Exposure",
    "GrossExposure",
    "GroupLimit",
    "MissingDefault",
    "NetExposure",
    "Restricted",
    "StressScenario",
    "StressTest",
    "TrackingError",
    "TradeLimit",
    "Turnover",
    "ValueAtRisk",
    "Volatility",
    "WeightBounds",
]

# The numeric aliases of this module accept a plain number or its per-context form
# (`{"by": ..., "values": {...}, "default": ...}`, see models.contextual); the range applies
# to every number of the contextual form. A kind reads concrete numbers only after the
# engine has resolved the policy against the request's context.
_Finite = Annotated[float, Field(allow_inf_nan=False)]
_NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
_Confidence = Annotated[float, Field(ge=0.5, lt=1, allow_inf_nan=False)]

Limit = Annotated[_Finite | ContextualLimit, by_form(_Finite, ContextualLimit)]
"""A finite number, or one per context value."""
NonNegativeFloat = Annotated[
    _NonNegative | ContextualNonNegative, by_form(_NonNegative, ContextualNonNegative)
]
"""A number >= 0, or one per context value."""
Fraction = Annotated[_Fraction | ContextualFraction, by_form(_Fraction, ContextualFraction)]
"""A number strictly between 0 and 1, or one per context value."""
Confidence = Annotated[
    _Confidence | ContextualConfidence, by_form(_Confidence, ContextualConfidence)
]
"""A confidence level in [0.5, 1), or one per context value."""
Where = dict[str, list[StrictStr | StrictFloat | StrictInt]]


def _check_order(low: Any, high: Any) -> None:
    """Reject `min > max` wherever the two can be compared (see `ordered_pairs`)."""
    for label, lo, hi in ordered_pairs(low, high):
        if lo > hi:
            raise ValueError(f"min {lo:g} is greater than max {hi:g}{label}")


class MissingDefault(StrictModel):
    """Value used for an instrument that lacks the attribute a constraint names."""

    default: AttributeValue


class ConstraintBase(StrictModel):
    """Fields every kind shares.

    `missing` says what happens when an instrument lacks an attribute the constraint reads:
    `"error"` (the default) rejects the request naming policy, attribute and symbol,
    `"ignore"` leaves the instrument out of that constraint, `{"default": v}` uses `v`.
    """

    missing: Literal["error", "ignore"] | MissingDefault = "error"


class Bounds(StrictModel):
    """An optional lower and upper bound; at least one must be given."""

    min: Limit | None = None
    max: Limit | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        _check_order(self.min, self.max)
        return self


class _Bounded(ConstraintBase):
    min: Limit | None = None
    max: Limit | None = None

    @model_validator(mode="after")
    def _ordered(self) -> _Bounded:
        if self.min is None and self.max is None and not self._per_item():
            raise ValueError("give min, max or both")
        _check_order(self.min, self.max)
        return self

    def _per_item(self) -> bool:
        """True when per-item bounds may stand in for the global ones."""
        return False


class WeightBounds(_Bounded):
    """`min <= w_i <= max` per selected symbol (all of V unless `symbols` is given)."""

    kind: Literal["weight_bounds"] = "weight_bounds"
    symbols: list[Symbol] | None = None
    per_symbol: dict[Symbol, Bounds] | None = None

    def _per_item(self) -> bool:
        return bool(self.per_symbol)


class GroupLimit(_Bounded):
    """Per group of `attribute`: the (net, gross or active) weight within bounds."""

    kind: Literal["group_limit"] = "group_limit"
    attribute: str = Field(min_length=1)
    per_group: dict[str, Bounds] | None = None
    measure: Literal["net", "gross"] = "net"
    active: bool = False

    def _per_item(self) -> bool:
        return bool(self.per_group)

    @model_validator(mode="after")
    def _convex(self) -> GroupLimit:
        if self.measure == "gross" and (
            self.min is not None or any(b.min is not None for b in (self.per_group or {}).values())
        ):
            raise ValueError("a min on a gross measure is not convex; use measure net")
        return self


class GrossExposure(ConstraintBase):
    """`sum_i |w_i| <= max`."""

    kind: Literal["gross_exposure"] = "gross_exposure"
    max: NonNegativeFloat


class NetExposure(_Bounded):
    """`min <= sum_i w_i <= max`."""

    kind: Literal["net_exposure"] = "net_exposure"


class Cash(_Bounded):
    """`min <= 1 - sum_i w_i <= max`."""

    kind: Literal["cash"] = "cash"


class Exposure(_Bounded):
    """`min <= sum_i w_i x_i <= max` for a numeric attribute x (active: `w - b`)."""

    kind: Literal["exposure"] = "exposure"
    attribute: str = Field(min_length=1)
    active: bool = False


class Concentration(ConstraintBase):
    """The `top_k` largest `|w_i|` sum to at most `max`."""

    kind: Literal["concentration"] = "concentration"
    top_k: int = Field(ge=1)
    max: NonNegativeFloat


class Turnover(ConstraintBase):
    """`sum_i |w_i - w0_i| <= max` (always an active breach)."""

    kind: Literal["turnover"] = "turnover"
    max: NonNegativeFloat


class TradeLimit(ConstraintBase):
    """Per symbol: `|w_i - w0_i| <= max_weight_change`, and `<= f * adv_i * p_i / NAV`."""

    kind: Literal["trade_limit"] = "trade_limit"
    max_weight_change: NonNegativeFloat | None = None
    max_adv_fraction: NonNegativeFloat | None = None
    symbols: list[Symbol] | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> TradeLimit:
        if self.max_weight_change is None and self.max_adv_fraction is None:
            raise ValueError("give max_weight_change, max_adv_fraction or both")
        return self


class _Selection(ConstraintBase):
    symbols: list[Symbol] | None = None
    where: Where | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> _Selection:
        if (self.symbols is None) == (self.where is None):
            raise ValueError("give exactly one of symbols or where")
        if self.where is not None and not self.where:
            raise ValueError("where must name at least one attribute")
        return self


class Restricted(_Selection):
    """Restricted list: `no_holding`, `no_buy`, `no_sell`, `no_short` or `no_trade`."""

    kind: Literal["restricted"] = "restricted"
    mode: Literal["no_holding", "no_buy", "no_sell", "no_short", "no_trade"] = "no_holding"


class AllowedUniverse(_Selection):
    """Only the selected symbols may be held: every other symbol's weight is 0."""

    kind: Literal["allowed_universe"] = "allowed_universe"


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


Constraint = Annotated[
    WeightBounds
    | GroupLimit
    | GrossExposure
    | NetExposure
    | Cash
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
    | StressTest,
    Field(discriminator="kind"),
]
"""Any constraint kind; pydantic picks the class from `kind` and names unknown kinds."""
