"""The policy test file format (`*.tests.yaml`), as strict pydantic models.

A test file pairs validation requests with what the engine must answer for them. Every
model forbids unknown keys, so a misspelt expectation is an error naming its path instead of
a check that silently never runs. See docs/policy-tests.md for the format with examples.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from models import AdjustmentMethod, BreachKind, ViolationSeverity
from models.base import NonNegativeFloat, StrictModel, Symbol
from models.portfolio import CurrencyPair

__all__ = [
    "AdjustedExpectation",
    "AdjustmentStatus",
    "BreachRow",
    "CaseDefaults",
    "ErrorExpectation",
    "Expectation",
    "PolicyTestCase",
    "PolicyTestFile",
]

#: Default absolute tolerance on a breach row's observed value and limit, in the row's units
#: (weights: 1e-4 is 0.01% of NAV, enough for values written to four decimals).
DEFAULT_VALUE_TOLERANCE = 1e-4

#: Default absolute tolerance on an adjusted trade, in shares: whole-lot answers must match
#: exactly, fractional ones to a millionth of a share.
DEFAULT_TRADE_TOLERANCE = 1e-6


class AdjustmentStatus(StrEnum):
    """What became of the adjustment, read from the response."""

    ADJUSTED = "adjusted"  # an adjusted_decision was returned
    NOT_NEEDED = "not_needed"  # the decision complies
    NOT_REQUESTED = "not_requested"  # not compliant, but mode was validate
    INFEASIBLE = "infeasible"  # the strict policies conflict (`infeasible` is set)
    FAILED = "failed"  # no method gave a verified answer (`adjustment_error` is set)


class BreachRow(StrictModel):
    """One expected violation row: which policy, on which subject, active or passive."""

    policy: str = Field(min_length=1, description="The violation's policy_name.")
    subject: str | None = Field(
        description="Symbol, group value or scenario; null for whole-portfolio rows."
    )
    type: BreachKind = Field(description="active or passive (the violation's `breach`).")
    constraint: str | None = Field(
        default=None, description="The violation_type, e.g. weight_bounds.max; any if absent."
    )
    severity: ViolationSeverity | None = Field(default=None, description="Any if absent.")
    observed: float | None = Field(
        default=None, description="Post-trade value of the row (weight units); any if absent."
    )
    limit: float | None = Field(default=None, description="The row's limit; any if absent.")
    tolerance: NonNegativeFloat = Field(
        default=DEFAULT_VALUE_TOLERANCE,
        description="Absolute tolerance on observed and limit.",
    )


class AdjustedExpectation(StrictModel):
    """The expected adjusted decision: its method and/or its complete trade list."""

    method: Literal[AdjustmentMethod.SCALE_BACK, AdjustmentMethod.PROJECT] | None = None
    trades: dict[Symbol, float] | None = Field(
        default=None,
        description="Signed net quantity per symbol (BUY > 0, SELL < 0); symbols not listed "
        "must not be traded.",
    )
    fx_trades: dict[CurrencyPair, float] | None = Field(
        default=None,
        description="Signed quantity per currency pair of the FX trades kept (BUY > 0, "
        "SELL < 0; `{}`: every FX trade cancelled); pairs not listed must not be traded.",
    )
    tolerance: NonNegativeFloat = Field(
        default=DEFAULT_TRADE_TOLERANCE, description="Absolute, in shares, per symbol."
    )

    @model_validator(mode="after")
    def _says_something(self) -> AdjustedExpectation:
        if self.method is None and self.trades is None and self.fx_trades is None:
            raise ValueError(
                "give `method`, `trades` or both, and/or `fx_trades` (or write `adjusted: none`)"
            )
        return self


def _adjusted_form(value: Any) -> str:
    return "none" if isinstance(value, str) else "mapping"


#: `adjusted: none` or `adjusted: {method, trades, tolerance}`. The discriminator sends a
#: value to one form only, so a typo inside the mapping is reported once, not once per form.
AdjustedField = Annotated[
    Annotated[Literal["none"], Tag("none")] | Annotated[AdjustedExpectation, Tag("mapping")],
    Discriminator(_adjusted_form),
]


class ErrorExpectation(StrictModel):
    """An expected rejection (HTTP 422 / CLI exit 2) naming `field`."""

    field: str = Field(min_length=1, description="A field path the rejection must name.")
    message: str | None = Field(
        default=None, description="Text the message for that field must contain."
    )


class Expectation(StrictModel):
    """What the engine must answer for one case. At least one expectation is required."""

    compliant: bool | None = None
    breaches: list[BreachRow] | None = Field(
        default=None, description="Exactly these violation rows, no others."
    )
    breaches_include: list[BreachRow] | None = Field(
        default=None, description="At least these violation rows; others may occur."
    )
    no_breaches: Literal[True] | None = Field(
        default=None, description="No violation of any kind (same as `breaches: []`)."
    )
    adjustment_status: AdjustmentStatus | None = None
    adjusted: AdjustedField | None = Field(
        default=None, description="`none`: no adjusted decision; or what it must be."
    )
    conflicting_policies: list[str] | None = Field(
        default=None, description="The infeasibility's conflicting policies, in any order."
    )
    error: ErrorExpectation | None = None

    @model_validator(mode="before")
    @classmethod
    def _error_shorthand(cls, data: Any) -> Any:
        # `error: decision.trades[0].symbol` is short for `error: {field: ...}`.
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            data = {**data, "error": {"field": data["error"]}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Expectation:
        given = {name for name in type(self).model_fields if getattr(self, name) is not None}
        if not given:
            raise ValueError("expect states nothing: give at least one expectation")
        if self.error is not None and given != {"error"}:
            others = ", ".join(sorted(given - {"error"}))
            raise ValueError(f"`error` expects a rejection; it cannot be combined with {others}")
        row_sets = given & {"breaches", "breaches_include", "no_breaches"}
        if len(row_sets) > 1:
            raise ValueError(f"give only one of {', '.join(sorted(row_sets))}")
        return self


class CaseDefaults(StrictModel):
    """Request parts shared by every case of a file (a case's own values win)."""

    request_file: str | None = Field(
        default=None, description="JSON/YAML request, relative to the test file."
    )
    request: dict[str, Any] | None = Field(
        default=None, description="Request fields merged over request_file."
    )


class PolicyTestCase(StrictModel):
    """One request and what the engine must answer for it."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    request_file: str | None = Field(
        default=None, description="JSON/YAML request, relative to the test file."
    )
    request: dict[str, Any] | None = Field(
        default=None, description="Request fields merged over the defaults and request_file."
    )
    global_policy: dict[str, Any] | None = Field(
        default=None,
        description="A JSON merge patch over the file's global policy (over a global policy "
        "of the model's defaults when the file gives none), as PATCH /api/policy merges it.",
    )
    expect: Expectation


class PolicyTestFile(StrictModel):
    """A test file: the policy set under test, shared request parts, and the cases."""

    description: str = ""
    policies: list[Any] = Field(
        min_length=1,
        description="Policy file/directory paths (relative to the test file) and/or inline "
        "PolicyDefinitions; a single path may be given as a string.",
    )
    global_policy: str | dict[str, Any] | None = Field(
        default=None,
        description="The global policy the cases run under (docs/global-policy.md): a path "
        "(relative to the test file) of a JSON/YAML object, or the object inline; fields "
        "not given take the model's defaults. Absent: no global policy, as for `pes "
        "validate` without a database.",
    )
    defaults: CaseDefaults = Field(default_factory=CaseDefaults)
    cases: list[PolicyTestCase] = Field(min_length=1)

    @field_validator("policies", mode="before")
    @classmethod
    def _one_path(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("policies")
    @classmethod
    def _paths_or_policies(cls, items: list[Any]) -> list[Any]:
        for k, item in enumerate(items):
            if not isinstance(item, str | dict):
                raise ValueError(f"policies[{k}] must be a path or an inline policy mapping")
        return items

    @model_validator(mode="after")
    def _unique_names(self) -> PolicyTestFile:
        seen: set[str] = set()
        for case in self.cases:
            if case.name in seen:
                raise ValueError(f"case name {case.name!r} is used twice")
            seen.add(case.name)
        return self
