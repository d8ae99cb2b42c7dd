"""Stress tests and scenario risk: the request and response of `POST /api/v1/stress`.

One request holds one or more portfolios (weights, or states as /validate takes them), the
scenarios (a historical returns table, named factor shocks, Monte Carlo draws from the
factor model) and the confidence levels; the answer gives each portfolio's and the firm's
loss distribution, VaR and CVaR, worst scenarios and the policies' stress, VaR and CVaR
rules evaluated on them (docs/stress.md).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from models.base import PositiveFloat, StrictModel, Symbol, check_json_values
from models.policy import PolicyDefinition
from models.portfolio import FiniteFloat, Instrument, PortfolioState, RiskModel

__all__ = [
    "MAX_PORTFOLIOS",
    "MAX_SCENARIOS",
    "MAX_SCENARIO_CELLS",
    "MAX_STRESS_CELLS",
    "FactorShock",
    "HistoricalScenarios",
    "LevelRisk",
    "LossSummary",
    "MonteCarlo",
    "PortfolioStress",
    "RuleResult",
    "ScenarioLoss",
    "StressPortfolio",
    "StressRequest",
    "StressResponse",
]

Level = Annotated[float, Field(gt=0.0, lt=1.0, allow_inf_nan=False)]
"""A confidence level of VaR and CVaR."""

MAX_SCENARIOS = 100_000
"""Scenarios of one request, all sources together."""
MAX_PORTFOLIOS = 200
"""Portfolios of one request."""
MAX_SCENARIO_CELLS = 20_000_000
"""Scenarios x names: the returns held at once (160 MB of float64)."""
MAX_STRESS_CELLS = 200_000_000
"""Scenarios x portfolios x names of one request: the work of the loss matrix. A request
beyond either bound is refused (422 naming `monte_carlo.scenarios`); split it into several."""


class StressPortfolio(StrictModel):
    """One portfolio: its weights over the instruments, or its state (as /validate)."""

    portfolio_id: str = Field(min_length=1, max_length=200)
    weights: dict[Symbol, FiniteFloat] | None = Field(
        default=None, description="Weight of each name, a fraction of NAV (cash: the rest)."
    )
    nav: PositiveFloat | None = Field(
        default=None,
        description="NAV of a portfolio given by weights (default 1): the firm-wide "
        "aggregate weighs portfolios by NAV. A state's NAV is its own.",
    )
    portfolio_state: PortfolioState | None = None

    @model_validator(mode="after")
    def _one_form(self) -> StressPortfolio:
        if (self.weights is None) == (self.portfolio_state is None):
            raise ValueError("give either weights or portfolio_state")
        if self.portfolio_state is not None and self.nav is not None:
            raise ValueError("nav is read from portfolio_state; give it only with weights")
        return self


class HistoricalScenarios(StrictModel):
    """A returns table: `returns[s][j]` is `symbols[j]`'s return on date (row) s."""

    symbols: list[Symbol] = Field(min_length=1)
    returns: list[list[FiniteFloat]] = Field(min_length=1)
    labels: list[str] | None = Field(
        default=None, description="One label per row (its date); default `hist-<row>`."
    )

    @model_validator(mode="after")
    def _shapes(self) -> HistoricalScenarios:
        n = len(self.symbols)
        if len(set(self.symbols)) != n:
            raise ValueError("symbols must be unique")
        for s, row in enumerate(self.returns):
            if len(row) != n:
                raise ValueError(f"returns[{s}] has {len(row)} entries, expected {n}")
        if self.labels is not None and len(self.labels) != len(self.returns):
            raise ValueError(
                f"labels has {len(self.labels)} entries, expected one per row ({len(self.returns)})"
            )
        return self


class FactorShock(StrictModel):
    """A named move of some factors (the others 0), mapped through the exposures."""

    name: str = Field(min_length=1, max_length=200)
    factors: dict[str, FiniteFloat] = Field(
        min_length=1, description="Factor name (see `factor_names`) to its return."
    )


class MonteCarlo(StrictModel):
    """Seeded draws from the factor model: factor returns and specific returns, normal."""

    scenarios: int = Field(default=10_000, ge=1, le=MAX_SCENARIOS)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    horizon_days: PositiveFloat = Field(
        default=1.0, description="The risk model is annualized: draws are scaled by h / 252."
    )


class StressRequest(StrictModel):
    """Portfolios, scenarios, levels and the policies to evaluate on them."""

    portfolios: list[StressPortfolio] = Field(min_length=1, max_length=MAX_PORTFOLIOS)
    instruments: list[Instrument] = Field(
        default_factory=list,
        description="Reference data of names given by weights (attributes read by stress "
        "rules by sector, ...); states bring their own.",
    )
    risk_model: RiskModel | None = Field(
        default=None,
        description="Inline factor model (or covariance): factor shocks, Monte Carlo and "
        "VaR rules need it.",
    )
    factor_names: list[str] | None = Field(
        default=None,
        description="Names of the risk model's factors, in order (default factor_0, ...).",
    )
    historical: HistoricalScenarios | None = None
    factor_shocks: list[FactorShock] = Field(default_factory=list, max_length=10_000)
    monte_carlo: MonteCarlo | None = None
    levels: list[Level] = Field(
        default_factory=lambda: [0.95, 0.99],
        min_length=1,
        max_length=20,
        description="Confidence levels, each strictly between 0 and 1.",
    )
    worst: int = Field(default=10, ge=0, le=1000, description="Worst scenarios to list.")
    policies: list[PolicyDefinition] | None = Field(
        default=None,
        description="Inline policies whose stress/var/cvar rules are evaluated (default: the "
        "stored ones).",
    )
    context: dict[str, Any] = Field(default_factory=dict)
    firm_id: str = Field(
        default="firm",
        min_length=1,
        max_length=200,
        description="The portfolio id the firm-wide aggregate's policies are resolved for.",
    )
    backend: Literal["auto", "jax", "numpy"] = "auto"
    include_losses: bool = Field(
        default=False, description="Return every scenario's loss per portfolio (large)."
    )

    @field_validator("context")
    @classmethod
    def _json_context(cls, context: dict[str, Any]) -> dict[str, Any]:
        check_json_values(context, "StressRequest")
        return context

    @model_validator(mode="after")
    def _sources(self) -> StressRequest:
        if self.historical is None and not self.factor_shocks and self.monte_carlo is None:
            raise ValueError("give scenarios: historical, factor_shocks or monte_carlo")
        ids = [p.portfolio_id for p in self.portfolios]
        if len(set(ids)) != len(ids):
            raise ValueError("portfolios[*].portfolio_id must be unique")
        return self


class LossSummary(StrictModel):
    """The loss distribution over the scenarios (fractions of NAV; loss = -P&L)."""

    mean: float
    std: float
    min: float
    max: float


class LevelRisk(StrictModel):
    """VaR and CVaR of the loss at one confidence level (fractions of NAV)."""

    level: float
    var: float = Field(description="The ceil(level x S)-th smallest loss.")
    cvar: float = Field(description="Mean of the worst (1 - level) x S losses (fractional).")
    var_amount: float = Field(description="var x NAV, in the base currency.")
    cvar_amount: float


class ScenarioLoss(StrictModel):
    """One scenario and its loss."""

    index: int = Field(description="Its row among the scenarios (historical, shocks, draws).")
    label: str
    source: Literal["historical", "factor_shock", "monte_carlo"]
    loss: float


class RuleResult(StrictModel):
    """One row of a stress, var or cvar rule, evaluated as the engine evaluates it."""

    policy_name: str
    kind: str
    violation_type: str
    subject: str | None = None
    enforcement_level: str
    observed: float
    limit: float
    breached: bool
    scenario_value: float | None = Field(
        default=None,
        description="var rules: the scenario VaR at the rule's confidence (the rule itself "
        "is parametric, SPEC section 4).",
    )


class PortfolioStress(StrictModel):
    """The figures of one portfolio, or of the firm."""

    portfolio_id: str
    nav: float
    loss: LossSummary
    risk: list[LevelRisk]
    worst: list[ScenarioLoss]
    rules: list[RuleResult]
    losses: list[float] | None = None


class StressResponse(StrictModel):
    """Per portfolio and firm-wide."""

    scenarios: int
    sources: dict[str, int]
    backend: str
    levels: list[float]
    portfolios: list[PortfolioStress]
    firm: PortfolioStress
    policies_checked: list[str]
    timings_ms: dict[str, float] = Field(default_factory=dict)
