"""Shared base classes and field types for every wire model.

Every model forbids unknown fields and non-finite numbers, so a typo in a request or a
policy is a validation error naming the field path instead of a silently ignored key.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

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


def check_json_values(value: Any, path: str) -> None:
    """Raise ValueError naming `path` for a non-finite float or an out-of-range integer.

    Walks free-form JSON (objects and arrays) whose leaves pydantic does not type;
    `path` is the field's name, extended with `.key` and `[index]` on the way down.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path} must be a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_JSON_INT:
        raise ValueError(
            f"{path} is an integer beyond ±(2**53 - 1), which JSON consumers cannot "
            "represent exactly; send it as a string"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            check_json_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        for k, item in enumerate(value):
            check_json_values(item, f"{path}[{k}]")
