"""The validate request and response (SPEC section 3), and the completion event."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from models.base import PositiveFloat, StrictModel, Symbol, check_json_values
from models.enums import (
    AdjustmentMethod,
    BreachKind,
    EnforcementLevel,
    PolicyType,
    Side,
    ValidationMode,
    ViolationSeverity,
)
from models.global_policy import AppliedRiskMode
from models.policy import PolicyDefinition
from models.portfolio import (
    MAX_FX_ENTRIES,
    CurrencyPair,
    PortfolioState,
    pair_currencies,
)
from models.reference import ReferenceDataUsed

__all__ = [
    "MAX_INLINE_POLICIES",
    "MAX_TRADES",
    "AdjustedDecision",
    "BindingConstraint",
    "ContextChoice",
    "CoordinatedTradingDecision",
    "FxTrade",
    "Infeasibility",
    "LimitRelaxation",
    "PolicyContext",
    "PolicyValidationRequest",
    "PolicyValidationResponse",
    "PolicyViolation",
    "RuleEncoding",
    "Sensitivity",
    "SolverAttempt",
    "SuggestedAdjustment",
    "Trade",
    "Violation",
]


MAX_TRADES = 20_000
"""Trades of one decision (several in one symbol net; no more names than a book holds)."""

MAX_INLINE_POLICIES = 500
"""Policies given inline (a what-if run) or named in `applicable_policies`: each compiles
to rows of the problem, so the count bounds a request's work."""


class Trade(StrictModel):
    """One proposed trade; several trades in one symbol net."""

    symbol: Symbol
    side: Side
    quantity: PositiveFloat


def _is_none(value: Any) -> bool:
    """Left out of a dump when None: a figure the request cannot give."""
    return value is None


def _is_empty(value: Any) -> bool:
    """Left out of a dump when empty: a decision without FX trades serializes as before."""
    return not value


class FxTrade(StrictModel):
    """A spot FX trade: BUY `quantity` of the pair's first currency, paying the second.

    It executes at the cross rate of `portfolio_state.fx_rates` (second per first =
    fx_first / fx_second), so it moves cash between the two currencies and leaves NAV as it
    is. The adjustment keeps it as proposed or cancels it (docs/currencies.md).
    """

    pair: CurrencyPair
    side: Side
    quantity: PositiveFloat

    @model_validator(mode="after")
    def _two_currencies(self) -> FxTrade:
        bought, paid = pair_currencies(self.pair)
        if bought == paid:
            raise ValueError(f"pair {self.pair} names one currency twice")
        return self


class CoordinatedTradingDecision(StrictModel):
    """A trading decision from the coordination engine."""

    decision_id: str = Field(min_length=1, max_length=200)
    portfolio_id: str = Field(min_length=1, max_length=200)
    trades: list[Trade] = Field(default_factory=list, max_length=MAX_TRADES)
    fx_trades: list[FxTrade] = Field(
        default_factory=list,
        max_length=MAX_FX_ENTRIES,
        exclude_if=_is_empty,
        description="Spot FX trades of the decision (`EURUSD` BUY 1000000: buy a million "
        "euros, pay dollars); they move cash between currencies.",
    )
    strategy: str | None = None
    confidence: float | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="The decision's confidence (0-1), read by the global policy's gate.",
    )
    created_at: datetime | None = None


class SectorWeight(StrictModel):
    """A sector's net weight (by the instruments' `sector`)."""

    sector: str
    weight: float


class PortfolioFigures(StrictModel):
    """Figures of one portfolio (fractions of NAV; risk annualized unless named)."""

    nav: float
    positions: int = Field(description="Open (non-zero) positions.")
    gross_exposure: float
    net_exposure: float
    cash_weight: float
    top_sectors: list[SectorWeight] = Field(
        description="At most five sectors, largest absolute net weight first."
    )
    volatility: float | None = Field(default=None, description="Under the risk model.")
    tracking_error: float | None = Field(
        default=None, description="Against the benchmark, under the risk model."
    )
    var_95_1d: float | None = Field(
        default=None, description="Parametric normal VaR, 95%, one day, under the risk model."
    )
    cvar_95: float | None = Field(
        default=None, description="CVaR at 95% over the request's scenarios."
    )
    drift_total: float | None = Field(
        default=None,
        exclude_if=_is_none,
        description="Drift from `portfolio_state.target_weights`: sum of |w_i - target_i| "
        "over the held, traded and target names (absent without target weights).",
    )
    drift_max: float | None = Field(
        default=None,
        exclude_if=_is_none,
        description="The largest |w_i - target_i| of one name (absent without target weights).",
    )


class Analytics(StrictModel):
    """The portfolio before the decision, as proposed and as adjusted (when adjusted)."""

    pre_trade: PortfolioFigures
    proposed: PortfolioFigures
    adjusted: PortfolioFigures | None = None


class PolicyValidationRequest(StrictModel):
    """A decision, the portfolio it applies to, and how to validate it."""

    decision: CoordinatedTradingDecision
    portfolio_state: PortfolioState
    applicable_policies: list[str] | None = Field(default=None, max_length=MAX_INLINE_POLICIES)
    policies: list[PolicyDefinition] | None = Field(
        default=None,
        max_length=MAX_INLINE_POLICIES,
        description="Inline policy set, used instead of the stored policies.",
    )
    context: dict[str, Any] = Field(default_factory=dict)
    mode: ValidationMode = ValidationMode.ADJUST
    adjustment: AdjustmentMethod = AdjustmentMethod.AUTO
    cure_passive: bool = False
    analytics: bool = Field(
        default=True, description="Add the `analytics` block to the response (false: omit it)."
    )

    @field_validator("portfolio_state")
    @classmethod
    def _same_portfolio(cls, state: PortfolioState, info: ValidationInfo) -> PortfolioState:
        decision = info.data.get("decision")
        if decision is not None and decision.portfolio_id != state.portfolio_id:
            raise ValueError(
                f"portfolio_id {state.portfolio_id!r} differs from decision.portfolio_id "
                f"{decision.portfolio_id!r}"
            )
        return state

    @field_validator("context")
    @classmethod
    def _finite_context(cls, context: dict[str, Any]) -> dict[str, Any]:
        check_json_values(context, "PolicyValidationRequest")
        return context


class SuggestedAdjustment(StrictModel):
    """The trade change that cures a violation: `original_quantity` becomes `quantity`."""

    symbol: Symbol
    side: Side
    quantity: float
    original_quantity: float


class PolicyViolation(StrictModel):
    """One breached (policy, constraint, subject) row (`Violation` is the same class)."""

    policy_name: str
    policy_type: PolicyType
    violation_type: str
    severity: ViolationSeverity
    breach: BreachKind
    enforcement_level: EnforcementLevel
    subject: str | None
    observed: float
    limit: float
    pre_trade: float
    description: str
    suggested_adjustment: SuggestedAdjustment | None = None


Violation = PolicyViolation
"""The name the engine uses; the wire schema is named `PolicyViolation` (SPEC 3)."""


class BindingConstraint(StrictModel):
    """A constraint active at the adjustment's optimum and its shadow price.

    `shadow_price` is the rate at which the adjustment's distance would fall per unit of
    relaxation of the limit (a dual value, >= 0).
    """

    policy_name: str
    violation_type: str
    subject: str | None
    shadow_price: float


class SolverAttempt(StrictModel):
    """One try in the solver fallback chain."""

    solver: str
    status: str
    seconds: float
    message: str = ""


class RuleEncoding(StrictModel):
    """How the adjustment encoded a rule that is not convex.

    The adjuster solves with a convex restriction of such a rule (a set of convex rows that
    implies it); the adjusted decision is then re-checked against the exact rule.
    """

    policy_name: str
    kind: str = Field(description="The constraint kind, e.g. ucits_5_10_40.")
    encoding: str = Field(description='The restriction used, "restriction: ...".')


class AdjustedDecision(StrictModel):
    """The closest compliant decision: a complete replacement trade list."""

    method: AdjustmentMethod
    trades: list[Trade]
    fx_trades: list[FxTrade] = Field(
        default_factory=list,
        exclude_if=_is_empty,
        description="The decision's FX trades, kept as proposed, or none when the "
        "adjustment had to cancel them (a note says so).",
    )
    is_compliant: bool
    distance: float
    solver: str
    binding: list[BindingConstraint] = Field(default_factory=list)
    solver_attempts: list[SolverAttempt] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    encodings: list[RuleEncoding] = Field(
        default_factory=list,
        description="Rules that are not convex and the convex restriction the adjustment was "
        "solved with (empty when every constraint is encoded exactly).",
    )


class Infeasibility(StrictModel):
    """Why no compliant decision exists: the smallest conflicting policy set found."""

    conflicting_policies: list[str]
    message: str


class LimitRelaxation(StrictModel):
    """How far one blocking row's limit must move for that row to comply as proposed.

    `relaxed_limit` is the row's observed value; `relaxation` = |relaxed_limit - limit|,
    the row's excess, in the row's `unit` (weight, risk or loss). `sufficient_alone`: this
    is the only blocking row, so relaxing it alone makes the decision compliant.
    """

    policy_name: str
    violation_type: str
    subject: str | None
    limit: float
    relaxed_limit: float
    relaxation: float
    unit: Literal["weight", "risk", "loss", "count"]
    sufficient_alone: bool


class Sensitivity(StrictModel):
    """The smallest limit relaxations that would make a non-compliant decision comply.

    Relaxing every listed row together (the joint set) makes the decision compliant as
    proposed; each row's relaxation is the least that clears that row.
    """

    relaxations: list[LimitRelaxation]


class ContextChoice(StrictModel):
    """A limit that the request's context chose for a policy (see models.contextual)."""

    field: str = Field(
        description="Path of the limit in the policy, e.g. rules.constraints[0].max."
    )
    by: str = Field(description="The context key that chose it.")
    context_value: str | None = Field(
        description="The key's value as looked up in `values`; null when the key was absent."
    )
    value: float = Field(description="The limit applied.")
    from_default: bool = Field(description="True when the policy's `default` was used.")


class PolicyContext(StrictModel):
    """How the request's context shaped one policy: its condition and chosen limits.

    Listed only for policies with a `when` condition or a per-context limit.
    """

    policy_name: str
    when: str | None = None
    applies: bool = Field(description="False when the condition does not hold: not checked.")
    limits: list[ContextChoice] = Field(default_factory=list)


class PolicyValidationResponse(StrictModel):
    """The verdict on a decision, its violations and, when needed, the adjustment."""

    decision_id: str
    is_compliant: bool
    compliance_score: float = Field(ge=0, le=1)
    violations: list[PolicyViolation]
    recommendations: list[str]
    policies_checked: list[str]
    adjusted_decision: AdjustedDecision | None = None
    infeasible: Infeasibility | None = None
    adjustment_error: str | None = Field(
        default=None,
        description="Why no adjustment could be computed: every solver failed, no lot-rounded "
        "decision passed the check, or the adjustment timed out (the request's deadline).",
    )
    sensitivity: Sensitivity | None = Field(
        default=None,
        description="For a non-compliant decision: the limit relaxations that would clear it.",
    )
    context_resolution: list[PolicyContext] = Field(
        default_factory=list,
        description="Policies whose condition or limits depend on the request's context.",
    )
    reference_data: ReferenceDataUsed | None = Field(
        default=None,
        description="The registered universe / risk model the request named, with the "
        "version used (null when it named none).",
    )
    risk_mode: AppliedRiskMode | None = Field(
        default=None,
        description="The risk mode conditions read, and its source (null: none was set).",
    )
    analytics: Analytics | None = Field(
        default=None,
        description="Portfolio figures before, as proposed and as adjusted (null when the "
        "request opted out).",
    )
    global_policy_version: int | None = Field(
        default=None,
        description="The stored global policy version applied (null: none was applied).",
    )
    timings_ms: dict[str, float] = Field(default_factory=dict)
