"""Shared base classes and field types for every wire model.

Every model forbids unknown fields and non-finite numbers, so a typo in a request or a
policy is a validation error naming the field path instead of a silently ignored key.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = [
    "MAX_JSON_INT",
    "Fraction",
    "JsonInt",
    "NonNegativeFloat",
    "PositiveFloat",
    "StrictModel",
    "Symbol",
    "check_json_values",
]

MAX_JSON_INT = 2**53 - 1
"""Largest integer magnitude accepted where a number is free-form (contexts, attributes).

I-JSON (RFC 7493, section 2.2) asks for integers that an IEEE 754 double holds exactly:
what a JavaScript client, a spreadsheet or a double-based event consumer reads back is then
the number that was sent. It also keeps every such number inside the 64-bit range that orjson
(the service's hashing and responses) serializes; a 400-digit integer used to be a 500.
"""


class StrictModel(BaseModel):
    """Base model: unknown fields, NaN and infinities are rejected."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=False)


Symbol = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S+$")]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
JsonInt = Annotated[StrictInt, Field(ge=-MAX_JSON_INT, le=MAX_JSON_INT)]
"""An integer every JSON consumer reads back exactly (see `MAX_JSON_INT`)."""


Loc = tuple[str | int, ...]
"""Where an entry is in free-form JSON: its keys and indices from the field down."""


def _problems(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    """(location, message) of every number in free-form JSON that is not representable."""
    if isinstance(value, float) and not math.isfinite(value):
        yield loc, "Input should be a finite number"
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_JSON_INT:
        yield (
            loc,
            (
                "Input should be an integer within ±(2**53 - 1), which every JSON consumer "
                "reads exactly; send a larger one as a string"
            ),
        )
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _problems(item, (*loc, str(key)))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            yield from _problems(item, (*loc, k))


def check_json_values(value: Any, title: str) -> None:
    """Refuse non-finite floats and out-of-range integers anywhere in free-form JSON.

    For a field validator of a free-form field (a request's `context`): pydantic places the
    errors under the field, so a 422 names the very entry (`context.limits[2]`).

    Parameters
    ----------
    value
        The field's value: objects, arrays, strings, numbers, booleans and nulls.
    title
        The model's name, for the error's title.

    Raises
    ------
    ValidationError
        One error per offending number, located below the field.
    """
    errors = [
        InitErrorDetails(
            type=PydanticCustomError("json_number", "{message}", {"message": message}),
            loc=loc,
            input=_short(_item_at(value, loc)),
        )
        for loc, message in _problems(value, ())
    ]
    if errors:
        raise ValidationError.from_exception_data(title, errors)


def _item_at(value: Any, loc: Loc) -> Any:
    """The entry of `value` at `loc` (keys and indices, as `_problems` yields them)."""
    for part in loc:
        value = value[part]
    return value


def _short(value: Any) -> Any:
    """A number as an error's input: a 400-digit integer is not echoed whole."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_JSON_INT:
        return f"an integer of {value.bit_length()} bits"  # str() refuses > 4300 digits
    return value
