"""Constraint kinds over weights and trades: positions, aggregates, currencies, drift.

Their rows are the engine's `engine/compile/kinds/` `positions.py`, `aggregates.py`,
`currencies.py` and `drift.py`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from models.base import Symbol
from models.constraint_base import (
    BoundedConstraint,
    Bounds,
    ConstraintBase,
    NonNegativeFloat,
    SelectionConstraint,
)
from models.portfolio import CurrencyCode

__all__ = [
    "AllowedUniverse",
    "Cash",
    "Concentration",
    "CurrencyExposure",
    "Exposure",
    "GrossExposure",
    "GroupLimit",
    "NetExposure",
    "Restricted",
    "TargetDrift",
    "TradeLimit",
    "Turnover",
    "WeightBounds",
]


class WeightBounds(BoundedConstraint):
    """`min <= w_i <= max` per selected symbol (all of V unless `symbols` is given)."""

    kind: Literal["weight_bounds"] = "weight_bounds"
    symbols: list[Symbol] | None = None
    per_symbol: dict[Symbol, Bounds] | None = None

    def _per_item(self) -> bool:
        return bool(self.per_symbol)


class GroupLimit(BoundedConstraint):
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


class NetExposure(BoundedConstraint):
    """`min <= sum_i w_i <= max`."""

    kind: Literal["net_exposure"] = "net_exposure"


class Cash(BoundedConstraint):
    """`min <= 1 - sum_i w_i <= max`; with `by_currency`, per currency c.

    By currency, the row of c is c's cash after the decision, valued in the base currency,
    over NAV: trades settle in their instrument's currency and FX trades move cash between
    currencies. There `min` defaults to 0 (no overdraft) and `per_currency` sets a
    currency's own bounds; rows exist for the base currency and every currency in use.
    """

    kind: Literal["cash"] = "cash"
    by_currency: bool = False
    per_currency: dict[CurrencyCode, Bounds] | None = None

    def _per_item(self) -> bool:
        return self.by_currency

    @model_validator(mode="after")
    def _per_currency_needs_by_currency(self) -> Cash:
        if self.per_currency and not self.by_currency:
            raise ValueError("per_currency needs by_currency: true")
        return self


class CurrencyExposure(BoundedConstraint):
    """Net exposure to a currency, as a fraction of NAV, within bounds.

    Exposure to c = (value of the positions priced in c + cash in c + hedges in c) / NAV,
    all valued in the base currency; `hedges` counts the state's FX forwards. One row per
    currency in `currencies` (default: every non-base currency in use), or, with `total`,
    one row for all non-base currencies together. `per_currency` sets a currency's own
    bounds.
    """

    kind: Literal["currency_exposure"] = "currency_exposure"
    currencies: list[CurrencyCode] | None = Field(default=None, min_length=1)
    per_currency: dict[CurrencyCode, Bounds] | None = None
    total: bool = False
    hedges: bool = True

    def _per_item(self) -> bool:
        return bool(self.per_currency)

    @model_validator(mode="after")
    def _total_is_one_row(self) -> CurrencyExposure:
        if self.total and (self.currencies is not None or self.per_currency):
            raise ValueError(
                "total is one row over every non-base currency: leave out "
                "currencies and per_currency"
            )
        return self


class TargetDrift(ConstraintBase):
    """Drift from the target weights (`portfolio_state.target_weights`, absent names 0).

    `max`: `|w_i - target_i| <= max` per name of V (or of `symbols`); `max_total`:
    `sum_i |w_i - target_i| <= max_total` over V and every target name.
    """

    kind: Literal["target_drift"] = "target_drift"
    max: NonNegativeFloat | None = None
    max_total: NonNegativeFloat | None = None
    symbols: list[Symbol] | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> TargetDrift:
        if self.max is None and self.max_total is None:
            raise ValueError("give max, max_total or both")
        return self


class Exposure(BoundedConstraint):
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


class Restricted(SelectionConstraint):
    """Restricted list: `no_holding`, `no_buy`, `no_sell`, `no_short` or `no_trade`."""

    kind: Literal["restricted"] = "restricted"
    mode: Literal["no_holding", "no_buy", "no_sell", "no_short", "no_trade"] = "no_holding"


class AllowedUniverse(SelectionConstraint):
    """Only the selected symbols may be held: every other symbol's weight is 0."""

    kind: Literal["allowed_universe"] = "allowed_universe"
