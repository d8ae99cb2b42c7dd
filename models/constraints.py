"""Constraint kinds of a policy's `rules.constraints`, a union discriminated on `kind`.

The math of every kind is SPEC section 4; the engine's compiler gives each kind its cvxpy
form. Here only the shape of the parameters is checked: bounds are finite, a min/max kind
has at least one bound, `min <= max`, and unknown fields are errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictFloat, StrictStr, model_validator

from models.base import JsonInt, StrictModel, Symbol
from models.contextual import (
    ContextualConfidence,
    ContextualFraction,
    ContextualLimit,
    ContextualNonNegative,
    ContextualValue,
    by_form,
    ordered_pairs,
)
from models.portfolio import AttributeValue, CurrencyCode

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
Where = dict[str, list[StrictStr | StrictFloat | JsonInt]]


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


class CurrencyExposure(_Bounded):
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
    all_except: list[Symbol] | None = Field(
        default=None,
        description="Every symbol of the universe except these (the global policy's "
        "`allowed_symbols` becomes `restricted` no_buy on `all_except`).",
    )

    @model_validator(mode="after")
    def _one_selector(self) -> _Selection:
        given = [self.symbols is not None, self.where is not None, self.all_except is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of symbols, where or all_except")
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


class Expression(ConstraintBase):
    """A custom convex constraint in the expression language (docs/expressions.md).

    `expr` is only shape-checked here (a non-empty string of bounded length); the engine
    parses it and checks that it is convex when the policy is stored or a request carries
    it inline, and rejects it naming `rules.constraints[i].expr`.
    """

    kind: Literal["expression"] = "expression"
    expr: str = Field(min_length=1, max_length=2000)


def _below(low: object, high: object, low_name: str, high_name: str) -> None:
    """Reject `low > high` when both are plain numbers."""
    if isinstance(low, float | int) and isinstance(high, float | int) and low > high:
        raise ValueError(f"{low_name} {low} is greater than {high_name} {high}")


def _non_empty(where: Where | None, name: str) -> None:
    if where is not None and not where:
        raise ValueError(f"{name} must name at least one attribute")


class Ucits51040(ConstraintBase):
    """UCITS Art. 52 5/10/40 per issuer (`group_by`).

    Each issuer at most `single_max`; the issuers above `threshold` together at most
    `aggregate_max`. Instruments matching `exempt` are left out.
    """

    kind: Literal["ucits_5_10_40"] = "ucits_5_10_40"
    group_by: str = Field(default="issuer", min_length=1)
    single_max: NonNegativeFloat = 0.10
    threshold: NonNegativeFloat = 0.05
    aggregate_max: NonNegativeFloat = 0.40
    exempt: Where | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Ucits51040:
        _below(self.threshold, self.single_max, "threshold", "single_max")
        _non_empty(self.exempt, "exempt")
        return self


DIVERSIFIED_EXEMPT: dict[str, list[str | float | int]] = {
    "asset_class": ["cash", "cash_equivalent", "government", "investment_company"]
}
"""Default `exempt` of `diversified_75_5_10`: cash items, government securities and
securities of other investment companies count fully (1940 Act section 5(b)(1))."""


class Diversified75510(ConstraintBase):
    """1940 Act section 5(b)(1) 75-5-10 diversification basket.

    cash + exempt + sum over issuers of min(weight, `issuer_cap`, `voting_cap` x
    shares_outstanding x price / NAV) >= `basket_min`.

    `voting_cap` null leaves the voting-securities test out (no `shares_outstanding` read).
    """

    kind: Literal["diversified_75_5_10"] = "diversified_75_5_10"
    group_by: str = Field(default="issuer", min_length=1)
    basket_min: NonNegativeFloat = 0.75
    issuer_cap: NonNegativeFloat = 0.05
    voting_cap: NonNegativeFloat | None = 0.10
    exempt: Where | None = Field(default_factory=lambda: dict(DIVERSIFIED_EXEMPT))

    @model_validator(mode="after")
    def _consistent(self) -> Diversified75510:
        _non_empty(self.exempt, "exempt")
        return self


class NamesRule80(ConstraintBase):
    """Rule 35d-1: the instruments matching `where` weigh at least `min` (80%)."""

    kind: Literal["names_rule_80"] = "names_rule_80"
    where: Where
    min: NonNegativeFloat = 0.80

    @model_validator(mode="after")
    def _consistent(self) -> NamesRule80:
        _non_empty(self.where, "where")
        return self


class IlliquidLimit(ConstraintBase):
    """Rule 22e-4 illiquid investments limit.

    Instruments whose `attribute` is `value` weigh at most `max` (15%); while they already
    weigh more before the decision, none of them may be bought.
    """

    kind: Literal["illiquid_limit"] = "illiquid_limit"
    attribute: str = Field(default="liquidity", min_length=1)
    value: StrictStr | StrictFloat | JsonInt = "illiquid"
    max: NonNegativeFloat = 0.15


class DerivativesVaR(ConstraintBase):
    """Rule 18f-4 parametric VaR limit.

    `absolute`: VaR at most `max` (20% of NAV); `relative`: at most `max_ratio` (200%)
    times the VaR of the benchmark (the designated reference portfolio).
    """

    kind: Literal["derivatives_var"] = "derivatives_var"
    mode: Literal["absolute", "relative"] = "absolute"
    confidence: Confidence = 0.99
    horizon_days: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 20.0
    max: NonNegativeFloat = 0.20
    max_ratio: NonNegativeFloat = 2.0


class TradeRisk(ConstraintBase):
    """Standalone risk of each trade: `vol_i * |w_i - w0_i| <= max`.

    `vol_i` is the instrument's volatility under the request's risk model
    (`sqrt(b_i' F b_i + d_i)`); without a risk model the trade's weight change alone is
    limited (`vol_i = 1`), and each violation says which was used. `symbols` limits it to
    those names (default: every name of the universe).
    """

    kind: Literal["trade_risk"] = "trade_risk"
    max: NonNegativeFloat
    symbols: list[Symbol] | None = None


class TradingHalt(ConstraintBase):
    """No trades: every name's weight stays where it is (`|w_i - w0_i| <= 0`).

    The global policy's strategy and confidence gates compile to it when a decision fails
    them (`violation_type` strategy_not_allowed / confidence_below_minimum); a policy may
    use it to halt trading, e.g. with `when: risk_mode == "DEFENSIVE"`.
    """

    kind: Literal["trading_halt"] = "trading_halt"
    reason: str = Field(default="trading halted", min_length=1, max_length=500)
    violation_type: Literal["trading_halt", "strategy_not_allowed", "confidence_below_minimum"] = (
        "trading_halt"
    )


class MaxPositions(ConstraintBase):
    """At most `max` open (non-zero) positions after the decision; not convex.

    Checked exactly. A decision that opens positions beyond `max` (beyond the pre-trade
    count, when that is already above) is an active breach.
    """

    kind: Literal["max_positions"] = "max_positions"
    max: NonNegativeFloat = Field(
        description="A whole number >= 1 (or one per context value, each a whole number)."
    )

    @model_validator(mode="after")
    def _whole(self) -> MaxPositions:
        numbers = (
            [*self.max.values.values(), self.max.default]
            if isinstance(self.max, ContextualValue)
            else [self.max]
        )
        for x in numbers:
            if x is not None and (x < 1 or x != int(x)):
                raise ValueError(f"max must be a whole number of positions >= 1, not {x:g}")
        return self


class CorrelationCluster(ConstraintBase):
    """Clusters of names correlated at least `min_correlation` weigh at most `max` gross each.

    Clusters come from complete-linkage hierarchical clustering of the universe under the
    risk model's correlations, cut at distance `1 - min_correlation`: every pair of names
    in a cluster is correlated at least `min_correlation`. Clusters of fewer than
    `min_size` names are not limited.
    """

    kind: Literal["correlation_cluster"] = "correlation_cluster"
    min_correlation: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
    max: NonNegativeFloat
    min_size: Annotated[int, Field(ge=2)] = 2


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
