"""The global policy: the platform's shared runtime controls (issue "Runtime controls").

One global policy per service, stored and versioned like policies. Validation reads it:
its `risk_mode` is what conditions and per-mode limits read, its gates (strategy,
confidence) refuse a decision outright, and its limits (allowed symbols, risk per trade,
positions) become strict policies of every validation (`engine.resolve.global_policy`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StrictStr

from models.base import StrictModel, Symbol
from models.enums import RiskMode

__all__ = [
    "ENVIRONMENT_DEFAULTS",
    "ENVIRONMENT_FIELDS",
    "NO_LIMIT",
    "AppliedRiskMode",
    "GlobalPolicy",
    "GlobalPolicyPatch",
    "defaults_from_environment",
]

_Unit = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
_Score = Annotated[float, Field(allow_inf_nan=False)]
_Name = Annotated[str, Field(min_length=1, max_length=200)]

MAX_LISTED = 20_000
"""Entries of one list or map of the global policy (symbols, rankings)."""


class GlobalPolicy(StrictModel):
    """The platform's runtime controls; `null` in a limit means no limit."""

    risk_mode: RiskMode = RiskMode.NORMAL
    allowed_strategies: list[_Name] = Field(
        default_factory=list,
        max_length=MAX_LISTED,
        description="Strategies whose decisions may trade; empty: any strategy.",
    )
    allowed_symbols: list[Symbol] = Field(
        default_factory=list,
        max_length=MAX_LISTED,
        description="Symbols that may be bought; empty: any. Selling any symbol is allowed.",
    )
    max_risk_per_trade: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = Field(
        default=0.01,
        description="Each trade's standalone risk (weight change times the instrument's "
        "volatility under the request's risk model; the weight change alone without one).",
    )
    max_positions: Annotated[int, Field(ge=1)] | None = Field(
        default=5, description="Non-zero post-trade positions at most."
    )
    global_min_confidence: _Unit | None = Field(
        default=0.70, description="A decision's `confidence` at least this."
    )
    require_confidence: bool = Field(
        default=True,
        description="With a minimum set, is a decision without `confidence` refused (true) "
        "or let through the confidence gate (false)?",
    )
    opp_rankings: dict[Symbol, _Score] = Field(
        default_factory=dict,
        max_length=MAX_LISTED,
        description="Symbol -> score, written by the opportunity ranker (not read by checks).",
    )
    model_versions: dict[_Name, StrictStr] = Field(
        default_factory=dict,
        max_length=MAX_LISTED,
        description="Model name -> version, written by the model-lifecycle service.",
    )
    last_updated: datetime | None = Field(
        default=None, description="When the stored version was written (set by the store)."
    )


class GlobalPolicyPatch(StrictModel):
    """A JSON merge patch of the global policy: fields given replace the stored ones.

    `null` sets a nullable limit to "no limit"; a field not given keeps its value.
    """

    risk_mode: RiskMode | None = None
    allowed_strategies: list[_Name] | None = Field(default=None, max_length=MAX_LISTED)
    allowed_symbols: list[Symbol] | None = Field(default=None, max_length=MAX_LISTED)
    max_risk_per_trade: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    max_positions: Annotated[int, Field(ge=1)] | None = None
    global_min_confidence: _Unit | None = None
    require_confidence: bool | None = None
    opp_rankings: dict[Symbol, _Score] | None = Field(default=None, max_length=MAX_LISTED)
    model_versions: dict[_Name, StrictStr] | None = Field(default=None, max_length=MAX_LISTED)


class AppliedRiskMode(StrictModel):
    """The risk mode a validation applied, and where it came from."""

    mode: str
    source: Literal["global_policy", "request_context"]
    ignored_request_value: str | None = Field(
        default=None,
        description="The request's `context.risk_mode` when the global policy's mode was "
        "applied instead (a validation against the stored policies).",
    )


ENVIRONMENT_DEFAULTS: dict[str, str] = {
    "QT_RISK_MODE": "NORMAL",
    "QT_MAX_RISK_PER_TRADE": "0.01",
    "QT_MAX_POSITIONS": "5",
    "QT_CONFIDENCE_THRESHOLD": "0.70",
}
"""The environment variables the platform's components share, with their defaults."""


ENVIRONMENT_FIELDS: dict[str, str] = {
    "QT_RISK_MODE": "risk_mode",
    "QT_MAX_RISK_PER_TRADE": "max_risk_per_trade",
    "QT_MAX_POSITIONS": "max_positions",
    "QT_CONFIDENCE_THRESHOLD": "global_min_confidence",
}
"""The global policy's field each `QT_*` variable sets."""

NO_LIMIT = "none"
"""The value of a `QT_*` limit variable that means "no limit" (any case)."""


def _limit(text: str) -> str | None:
    value = text.strip()
    return None if value.lower() == NO_LIMIT else value


def defaults_from_environment(environ: Mapping[str, str] | None = None) -> GlobalPolicy:
    """The global policy of an empty store: `QT_*` variables over `ENVIRONMENT_DEFAULTS`.

    A limit variable (`QT_MAX_RISK_PER_TRADE`, `QT_MAX_POSITIONS`,
    `QT_CONFIDENCE_THRESHOLD`) set to `none` means no limit. Raises pydantic's
    `ValidationError` naming the field for a bad value (`ENVIRONMENT_FIELDS` maps it back to
    its variable).
    """
    env = os.environ if environ is None else environ
    value = {name: env.get(name, default) for name, default in ENVIRONMENT_DEFAULTS.items()}
    return GlobalPolicy.model_validate(
        {
            "risk_mode": value["QT_RISK_MODE"].strip().upper(),
            "max_risk_per_trade": _limit(value["QT_MAX_RISK_PER_TRADE"]),
            "max_positions": _limit(value["QT_MAX_POSITIONS"]),
            "global_min_confidence": _limit(value["QT_CONFIDENCE_THRESHOLD"]),
        },
        strict=False,
    )
