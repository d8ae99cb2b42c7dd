"""HTTP schemas of the portfolio hierarchy (the node model lives in `models`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from models import PolicyDefinition, PortfolioNode

__all__ = [
    "PORTFOLIO_EXAMPLES",
    "EffectivePolicyPublic",
    "OverriddenPolicyPublic",
    "PortfolioPoliciesPublic",
    "PortfolioPublic",
]


class PortfolioPublic(BaseModel):
    """A stored hierarchy node with its place in the tree."""

    portfolio: PortfolioNode
    path: list[str] = Field(description="Node ids from the root down to this node.")
    children: list[str] = Field(description="Ids of the direct children.")
    revision: int = Field(description="1 on creation, +1 on every change.")
    created_at: datetime
    updated_at: datetime
    updated_by: str


class EffectivePolicyPublic(BaseModel):
    """A policy of a portfolio's effective set and where it comes from."""

    policy: PolicyDefinition
    version: int
    scoped_at: str = Field(
        description="The node of the portfolio's chain the policy is scoped to (the "
        'nearest one), or "*" for a firm-wide scope.'
    )
    inherited: bool = Field(description="True when scoped above the portfolio itself.")
    overrides: str | None = Field(
        default=None, description="The ancestor policy it replaces here, if any."
    )


class OverriddenPolicyPublic(BaseModel):
    """A policy that would bind the portfolio but is replaced by an override."""

    policy_name: str
    scoped_at: str
    overridden_by: list[str]


class PortfolioPoliciesPublic(BaseModel):
    """A portfolio's effective policies: all of them hold together."""

    portfolio_id: str
    path: list[str] = Field(description="Node ids from the root down to the portfolio.")
    policies: list[EffectivePolicyPublic]
    overridden: list[OverriddenPolicyPublic]


PORTFOLIO_EXAMPLES: dict[str, Any] = {
    "firm": {
        "summary": "A root node (the firm)",
        "value": {"portfolio_id": "acme", "name": "Acme Asset Management"},
    },
    "portfolio": {
        "summary": "A portfolio under a fund, with a default benchmark",
        "value": {
            "portfolio_id": "global-equity",
            "name": "Global Equity",
            "parent_id": "equity-fund",
            "benchmark": {"name": "World large caps", "weights": {"AAPL": 0.05, "MSFT": 0.045}},
        },
    },
}
