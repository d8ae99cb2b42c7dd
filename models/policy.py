"""Policy definitions (SPEC section 4)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from models.base import StrictModel
from models.condition import ConditionSyntaxError, parse_condition
from models.constraints import Constraint
from models.enums import EnforcementLevel, PolicyType, ViolationSeverity

__all__ = ["DESCRIPTION_LIMIT", "STORED", "PolicyDefinition", "PolicyRules", "PolicyScope"]

DESCRIPTION_LIMIT = 4000
"""Most characters a policy's `description` may have."""

STORED: dict[str, bool] = {"stored": True}
"""Validation context for a definition read back from storage: limits added since it was
stored (the description's) do not apply, so an older row stays readable and enforced."""


class PolicyScope(StrictModel):
    """Which portfolios a policy binds: ids, or `"*"` for every portfolio."""

    portfolios: list[str] = Field(default_factory=lambda: ["*"], min_length=1)

    def covers(self, portfolio_id: str) -> bool:
        """True when the policy applies to `portfolio_id`."""
        return "*" in self.portfolios or portfolio_id in self.portfolios


class PolicyRules(StrictModel):
    """The constraints of a policy; all must hold."""

    constraints: list[Constraint] = Field(min_length=1)


class PolicyDefinition(StrictModel):
    """A named, typed set of constraints with an enforcement level."""

    policy_name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][\w.\-: ]*$")
    policy_type: PolicyType
    enforcement_level: EnforcementLevel = EnforcementLevel.STRICT
    enabled: bool = True
    description: str = Field(
        default="",
        description=f"Free text, at most {DESCRIPTION_LIMIT} characters.",
        json_schema_extra={"maxLength": DESCRIPTION_LIMIT},
    )
    scope: PolicyScope = Field(default_factory=PolicyScope)
    severity: ViolationSeverity | None = Field(
        default=None, description="Fixed severity for every breach; null derives it (SPEC 5)."
    )
    when: str | None = Field(
        default=None,
        description='Condition on the request\'s context, e.g. `risk_mode == "DEFENSIVE" '
        "or vix > 30`; the policy applies only where it holds (docs/conditions.md).",
    )
    rules: PolicyRules
    overridable: bool = Field(
        default=False,
        description="May a policy scoped lower in the portfolio hierarchy replace this one "
        "for its subtree (`overrides`)? Never true for REGULATORY policies.",
    )
    overrides: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Name of an overridable policy scoped at a strict ancestor that this "
        "policy replaces for the portfolios it is scoped to (and their subtrees).",
    )

    @field_validator("description")
    @classmethod
    def _description_fits(cls, description: str, info: ValidationInfo) -> str:
        # Checked here rather than by max_length so that STORED can waive it.
        if len(description) > DESCRIPTION_LIMIT and not (info.context or {}).get("stored"):
            raise ValueError(
                f"at most {DESCRIPTION_LIMIT} characters (this one has {len(description)})"
            )
        return description

    @field_validator("overridable")
    @classmethod
    def _regulatory_is_never_overridable(cls, overridable: bool, info: ValidationInfo) -> bool:
        if overridable and info.data.get("policy_type") == PolicyType.REGULATORY:
            raise ValueError("REGULATORY policies can never be overridable")
        return overridable

    @field_validator("overrides")
    @classmethod
    def _not_itself(cls, overrides: str | None, info: ValidationInfo) -> str | None:
        if overrides is not None and overrides == info.data.get("policy_name"):
            raise ValueError("a policy cannot override itself")
        return overrides

    @field_validator("when")
    @classmethod
    def _parses(cls, when: str | None) -> str | None:
        if when is not None:
            try:
                parse_condition(when)
            except ConditionSyntaxError as exc:
                raise ValueError(f"not a valid condition: {exc}") from None
        return when

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "policy_name": "sector-caps",
                    "policy_type": "SECTOR_LIMIT",
                    "enforcement_level": "strict",
                    "description": "No GICS sector above 25%",
                    "rules": {
                        "constraints": [{"kind": "group_limit", "attribute": "sector", "max": 0.25}]
                    },
                }
            ]
        }
    )
