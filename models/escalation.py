"""Escalation rules: when a live violation is escalated, how far, and who is told.

A rule set is policy-as-code like the policies: a YAML or JSON file applied with
`pes escalations apply`, stored as a new version each time (docs/violations.md).
A violation matches a rule when every condition the rule names holds; it is escalated to
the highest level among the rules it matches.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from models.base import StrictModel
from models.enums import ViolationSeverity

__all__ = ["EscalationRule", "EscalationRules", "EscalationWhen"]

RuleName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]


class EscalationWhen(StrictModel):
    """The conditions of a rule; an absent one always holds."""

    severities: list[ViolationSeverity] | None = Field(
        default=None, min_length=1, description="The violation's severity is one of these."
    )
    min_age_hours: float = Field(
        default=0.0, ge=0, le=24 * 3650, description="Open (or acknowledged) this long."
    )
    min_repeats: int = Field(
        default=1,
        ge=1,
        le=1_000_000,
        description="Validations that found this policy and subject breached on the "
        "portfolio within `repeat_window_days` (a persisting passive breach counts once "
        "per validation).",
    )
    repeat_window_days: float = Field(default=30.0, gt=0, le=3650)
    portfolio: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="A node of the portfolio tree: the rule covers it and its subtree.",
    )
    policies: list[str] | None = Field(
        default=None, min_length=1, description="The violation's policy is one of these."
    )


class EscalationRule(StrictModel):
    """One rule: conditions, the level they lead to, and the notifications."""

    name: RuleName
    description: str = Field(default="", max_length=2000)
    when: EscalationWhen = Field(default_factory=EscalationWhen)
    level: int = Field(ge=1, le=10, description="The escalation level (1 lowest).")
    notify: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
        description="A broker subject under the service's notification prefix "
        "(PES_NATS_NOTIFY_PREFIX, default pes.escalations): `desk.equities` is published on "
        "pes.escalations.desk.equities.",
    )
    webhook: str | None = Field(
        default=None,
        max_length=2000,
        description="An http(s) URL that receives the escalation as a signed JSON POST.",
    )

    @field_validator("webhook")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL")
        return value


class EscalationRules(StrictModel):
    """A rule set: every rule's name is unique."""

    rules: list[EscalationRule] = Field(default_factory=list, max_length=500)

    @model_validator(mode="after")
    def _unique_names(self) -> EscalationRules:
        names = [r.name for r in self.rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"rule names must be unique: {', '.join(twice)}")
        return self
