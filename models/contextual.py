"""Numeric policy parameters that depend on the request's context.

Any numeric limit of a constraint may be written as a plain number or per context value::

    "max": {"by": "risk_mode",
            "values": {"AGGRESSIVE": 0.12, "NORMAL": 0.10, "DEFENSIVE": 0.06},
            "default": 0.10}

`by` names a context key (dotted names reach into nested objects, as in conditions);
`values` maps the key's value to the number; `default` covers values not listed (and a
missing key). Before a policy is compiled the engine replaces every such value by the number
the request's context chooses (`engine.resolve.contextual`). The range of the field (non-negative,
a fraction, ...) applies to every number in `values` and to `default`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    Field,
    TypeAdapter,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)

from models.base import StrictModel

__all__ = [
    "ContextualConfidence",
    "ContextualFraction",
    "ContextualLimit",
    "ContextualNonNegative",
    "ContextualValue",
    "by_form",
    "concrete",
    "ordered_pairs",
]

N = TypeVar("N")

_CONTEXT_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


class ContextualValue(StrictModel, Generic[N]):
    """A number chosen by a context value: `values[context[by]]`, else `default`."""

    by: str = Field(
        max_length=200,
        description="Context key whose value picks the number; dots reach nested objects.",
    )
    values: dict[Annotated[str, Field(min_length=1)], N] = Field(min_length=1)
    default: N | None = Field(
        default=None,
        description="Used when the context value is not in `values` or the key is absent; "
        "without it, either is an error.",
    )

    @field_validator("by")
    @classmethod
    def _context_name(cls, by: str) -> str:
        if re.fullmatch(_CONTEXT_NAME, by) is None:
            raise ValueError(
                f"{by!r} is not a context name: letters, digits and _, not starting with a "
                "digit, parts joined by dots (market.vix)"
            )
        return by

    def choices(self) -> Iterator[tuple[str | None, Any]]:
        """(context value, number) pairs, the default last as (None, default) if given."""
        yield from self.values.items()
        if self.default is not None:
            yield None, self.default


class ContextualLimit(ContextualValue[Annotated[float, Field(allow_inf_nan=False)]]):
    """A finite limit chosen by a context value."""


class ContextualNonNegative(ContextualValue[Annotated[float, Field(ge=0, allow_inf_nan=False)]]):
    """A non-negative limit chosen by a context value."""


class ContextualFraction(ContextualValue[Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]]):
    """A number strictly between 0 and 1 chosen by a context value."""


class ContextualConfidence(
    ContextualValue[Annotated[float, Field(ge=0.5, lt=1, allow_inf_nan=False)]]
):
    """A confidence level in [0.5, 1) chosen by a context value."""


def concrete(value: float | ContextualValue[Any]) -> float:
    """The plain number of a limit; a contextual one must have been resolved before.

    Constraint kinds read their limits through this: the engine resolves every policy
    against the request's context before compiling it, so a contextual value here is a bug.
    """
    if isinstance(value, ContextualValue):
        raise TypeError(
            f"a limit set by context.{value.by} reached the compiler unresolved; resolve the "
            "policy against the request's context first"
        )
    return float(value)


def by_form(number: Any, contextual: type[ContextualValue[Any]]) -> WrapValidator:
    """Validator of a number-or-contextual field.

    An object is validated as `contextual`, anything else as `number`, so that errors name
    the field as written (`max`, or `max.values.DEFENSIVE`) and report only the form that
    was meant.
    """
    as_number, as_contextual = TypeAdapter(number), TypeAdapter(contextual)

    def validate(value: Any, _handler: ValidatorFunctionWrapHandler) -> Any:
        if isinstance(value, dict | ContextualValue):
            return as_contextual.validate_python(value)
        return as_number.validate_python(value)

    return WrapValidator(validate)


def ordered_pairs(low: Any, high: Any) -> Iterator[tuple[str, float, float]]:
    """(label, low, high) for every pair of a lower and an upper bound that can be compared.

    Plain numbers compare directly; a plain number against a contextual one compares with
    each of its choices; two contextual bounds compare per context value when they share
    `by` (a value one of them lacks falls back to its default). Bounds keyed by different
    context names cannot be compared until the context is known.
    """
    if low is None or high is None:
        return
    if not isinstance(low, ContextualValue) and not isinstance(high, ContextualValue):
        yield "", float(low), float(high)
        return
    if isinstance(low, ContextualValue) and isinstance(high, ContextualValue):
        if low.by != high.by:
            return
        for key in dict.fromkeys([*low.values, *high.values]):
            lo, hi = low.values.get(key, low.default), high.values.get(key, high.default)
            if lo is not None and hi is not None:
                yield f" when {low.by} is {key!r}", float(lo), float(hi)
        if low.default is not None and high.default is not None:
            yield " by default", float(low.default), float(high.default)
        return
    contextual, plain = (low, high) if isinstance(low, ContextualValue) else (high, low)
    for choice, number in contextual.choices():
        label = f" when {contextual.by} is {choice!r}" if choice is not None else " by default"
        pair = (number, plain) if contextual is low else (plain, number)
        yield label, float(pair[0]), float(pair[1])
