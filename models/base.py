"""Shared base classes and field types for every wire model.

Every model forbids unknown fields and non-finite numbers, so a typo in a request or a
policy is a validation error naming the field path instead of a silently ignored key.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Fraction",
    "NonNegativeFloat",
    "PositiveFloat",
    "StrictModel",
    "Symbol",
]


class StrictModel(BaseModel):
    """Base model: unknown fields, NaN and infinities are rejected."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=False)


Symbol = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S+$")]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
