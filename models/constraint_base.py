"""What every constraint kind shares: the numeric aliases, the common fields and bounds.

The numbers of a kind are plain or per context (`models.contextual`); `ConstraintBase`
carries the `missing` rule every kind has; `BoundedConstraint` and `SelectionConstraint` are
the shapes several kinds take (a `min`/`max` pair, a selection of symbols). The kinds
themselves are in the `models.constraint_*` modules, their union in `models.constraints`.
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
    by_form,
    ordered_pairs,
)
from models.portfolio import AttributeValue

__all__ = [
    "BoundedConstraint",
    "Bounds",
    "Confidence",
    "ConstraintBase",
    "Fraction",
    "Limit",
    "MissingDefault",
    "NonNegativeFloat",
    "SelectionConstraint",
    "Where",
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


class BoundedConstraint(ConstraintBase):
    """A kind bounded by `min` and `max`; per-item bounds may stand in for both."""

    min: Limit | None = None
    max: Limit | None = None

    @model_validator(mode="after")
    def _ordered(self) -> BoundedConstraint:
        if self.min is None and self.max is None and not self._per_item():
            raise ValueError("give min, max or both")
        _check_order(self.min, self.max)
        return self

    def _per_item(self) -> bool:
        """True when per-item bounds may stand in for the global ones."""
        return False


class SelectionConstraint(ConstraintBase):
    """A kind over a selection of symbols: by name, by attributes, or all but some."""

    symbols: list[Symbol] | None = None
    where: Where | None = None
    all_except: list[Symbol] | None = Field(
        default=None,
        description="Every symbol of the universe except these (the global policy's "
        "`allowed_symbols` becomes `restricted` no_buy on `all_except`).",
    )

    @model_validator(mode="after")
    def _one_selector(self) -> SelectionConstraint:
        given = [self.symbols is not None, self.where is not None, self.all_except is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of symbols, where or all_except")
        if self.where is not None and not self.where:
            raise ValueError("where must name at least one attribute")
        return self
