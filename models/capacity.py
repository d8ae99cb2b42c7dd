"""Capacity: how much more of each symbol can be bought or sold before a strict policy binds.

The request names a portfolio, the policies (stored, selected or inline) and optionally a
decision; the answer gives, per symbol, the largest additional buy and sale in whole lots
that leave every strict policy compliant, and the policy rows that stop one lot more.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from models.base import StrictModel, Symbol, check_json_values
from models.enums import PolicyType
from models.policy import PolicyDefinition
from models.portfolio import PortfolioState, same_portfolio_id
from models.validation import CoordinatedTradingDecision

__all__ = [
    "CapacityBinding",
    "CapacityLimit",
    "CapacityRequest",
    "CapacityResponse",
    "CapacityStatus",
    "SymbolCapacity",
]


class CapacityStatus(StrEnum):
    """How a direction's search ended."""

    LIMITED = "limited"
    """A strict policy row stops one lot more than `shares`."""
    UNLIMITED = "unlimited"
    """No strict policy binds before the position reaches the size cap (see `reason`)."""
    NOT_EVALUATED = "not_evaluated"
    """The base itself is not compliant, so there is no compliant amount to extend."""


class CapacityRequest(StrictModel):
    """Which portfolio, which policies, which symbols, and on top of which decision."""

    portfolio_state: PortfolioState
    portfolio_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Portfolio whose effective policies apply; default portfolio_state's id.",
    )
    applicable_policies: list[str] | None = None
    policies: list[PolicyDefinition] | None = Field(
        default=None, description="Inline policy set, used instead of the stored policies."
    )
    context: dict[str, Any] = Field(default_factory=dict)
    symbols: list[Symbol] | None = Field(
        default=None,
        description="Symbols to size (default: every symbol held, or traded by the decision).",
    )
    decision: CoordinatedTradingDecision | None = Field(
        default=None,
        description="Capacity is measured beyond this decision (default: the current portfolio).",
    )

    @field_validator("symbols")
    @classmethod
    def _unique(cls, symbols: list[str] | None) -> list[str] | None:
        if symbols is not None:
            seen: set[str] = set()
            for k, symbol in enumerate(symbols):
                if symbol in seen:
                    raise ValueError(f"symbols[{k}] {symbol!r} is listed twice")
                seen.add(symbol)
        return symbols

    @field_validator("portfolio_id")
    @classmethod
    def _same_portfolio(cls, portfolio_id: str | None, info: ValidationInfo) -> str | None:
        return same_portfolio_id(portfolio_id, info)

    @field_validator("context")
    @classmethod
    def _json_context(cls, context: dict[str, Any]) -> dict[str, Any]:
        check_json_values(context, "CapacityRequest")
        return context

    @field_validator("decision")
    @classmethod
    def _decision_portfolio(
        cls, decision: CoordinatedTradingDecision | None, info: ValidationInfo
    ) -> CoordinatedTradingDecision | None:
        state = info.data.get("portfolio_state")
        target = info.data.get("portfolio_id") or (state.portfolio_id if state else None)
        if decision is not None and target is not None and decision.portfolio_id != target:
            raise ValueError(
                f"decision.portfolio_id {decision.portfolio_id!r} differs from the portfolio "
                f"{target!r}"
            )
        return decision

    @property
    def target_portfolio(self) -> str:
        """The portfolio whose policies apply."""
        return self.portfolio_id or self.portfolio_state.portfolio_id


class CapacityBinding(StrictModel):
    """A strict policy row that one lot more than the reported amount would breach."""

    policy_name: str
    policy_type: PolicyType
    constraint_kind: str
    violation_type: str
    subject: str | None
    limit: float
    observed: float = Field(description="The row's value at one lot more than `shares`.")


class CapacityLimit(StrictModel):
    """The largest additional trade in one direction (buy or sell) of one symbol."""

    status: CapacityStatus
    shares: float | None = Field(
        default=None, description="Largest compliant quantity in whole lots (null: not limited)."
    )
    weight: float | None = Field(
        default=None, description="The weight that quantity moves: shares x price / NAV."
    )
    post_weight: float | None = Field(
        default=None, description="The symbol's weight after the base and that trade."
    )
    binding: list[CapacityBinding] = Field(default_factory=list)
    reason: str
    solver: str | None = Field(
        default=None,
        description="Solver whose estimate seeded the exact search (null: search alone).",
    )


class SymbolCapacity(StrictModel):
    """Buy and sell capacity of one symbol."""

    symbol: Symbol
    price: float
    lot_size: float
    quantity: float = Field(description="Position after the base (held plus the decision).")
    weight: float = Field(description="Weight after the base.")
    buy: CapacityLimit
    sell: CapacityLimit


class CapacityResponse(StrictModel):
    """Capacity per requested symbol."""

    portfolio_id: str
    base: Literal["portfolio", "decision"]
    base_compliant: bool
    nav: float
    symbols: list[SymbolCapacity]
    policies_checked: list[str]
    timings_ms: dict[str, float] = Field(default_factory=dict)
