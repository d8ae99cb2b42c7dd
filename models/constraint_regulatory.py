"""Regulatory constraint kinds: UCITS 5/10/40, 1940 Act 75-5-10, Rules 35d-1, 22e-4, 18f-4.

Their rows are the engine's `engine/compile/kinds/regulatory.py`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictFloat, StrictStr, model_validator

from models.base import JsonInt
from models.constraint_base import Confidence, ConstraintBase, NonNegativeFloat, Where

__all__ = [
    "DIVERSIFIED_EXEMPT",
    "DerivativesVaR",
    "Diversified75510",
    "IlliquidLimit",
    "NamesRule80",
    "Ucits51040",
]


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
