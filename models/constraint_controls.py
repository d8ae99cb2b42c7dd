"""The runtime controls' constraint kinds: trade risk, clusters, halts, open positions.

Their rows are the engine's `engine/compile/kinds/controls.py`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from models.base import Symbol
from models.constraint_base import ConstraintBase, NonNegativeFloat
from models.contextual import ContextualValue

__all__ = ["CorrelationCluster", "MaxPositions", "TradeRisk", "TradingHalt"]


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
