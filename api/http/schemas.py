"""HTTP-only schemas (the domain models live in `models`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from api.store import ViolationStatus
from models import PolicyDefinition, PolicyViolation

__all__ = [
    "ERROR_RESPONSES",
    "Acknowledgement",
    "BulkAction",
    "BulkResult",
    "BulkSkipped",
    "ErrorDetail",
    "ErrorResponse",
    "MonitorStatusPublic",
    "PolicyPatch",
    "PolicyPublic",
    "PolicyVersionPublic",
    "Resolution",
    "TransitionPublic",
    "ViolationDetail",
    "ViolationPage",
    "ViolationPublic",
    "ViolationResolution",
    "WebhookDeliveryPublic",
]


class PolicyPublic(PolicyDefinition):
    """A stored policy: the `PolicyDefinition` itself, plus its current version.

    The definition's fields stay at the top level (SPEC 3: the list answers
    `PolicyDefinition`s), so a client may send it back as the body of a PUT once the three
    added fields are dropped. `version` is also the response's `ETag` (`"3"`), which
    `If-Match` names for a conditional change.
    """

    version: int = Field(description="Current version; the ETag is this number in quotes.")
    updated_at: datetime
    updated_by: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "policy_name": "sector-caps",
                    "policy_type": "SECTOR_LIMIT",
                    "enforcement_level": "strict",
                    "enabled": True,
                    "description": "No GICS sector above 25%",
                    "scope": {"portfolios": ["*"]},
                    "rules": {
                        "constraints": [{"kind": "group_limit", "attribute": "sector", "max": 0.25}]
                    },
                    "version": 3,
                    "updated_at": "2026-11-23T10:00:00Z",
                    "updated_by": "compliance",
                }
            ]
        }
    )

    @classmethod
    def of(
        cls, definition: PolicyDefinition, *, version: int, updated_at: datetime, updated_by: str
    ) -> PolicyPublic:
        """The public form of a stored definition, not validated again.

        It was valid when stored; validating it again would also apply limits added since
        (`models.policy.STORED`) and refuse to show an older policy.
        """
        fields = {name: getattr(definition, name) for name in type(definition).model_fields}
        return cls.model_construct(
            **fields, version=version, updated_at=updated_at, updated_by=updated_by
        )


class PolicyPatch(RootModel[dict[str, Any]]):
    """A JSON merge patch (RFC 7396) of a `PolicyDefinition`: the fields to change.

    A field set to null is removed (its default applies); nested objects merge; lists are
    replaced whole. The patched definition is validated as a whole.
    """


class PolicyVersionPublic(BaseModel):
    """One audited change of a policy."""

    policy_name: str
    version: int
    change: str = Field(description="create | replace | patch | disable")
    actor: str
    changed_at: datetime
    diff: list[dict[str, Any]] = Field(description="Changed fields: path, old, new.")
    definition: dict[str, Any]


class ViolationPublic(BaseModel):
    """A recorded violation, its lifecycle status and its review."""

    id: int
    decision_id: str = Field(description="The validation that opened it.")
    portfolio_id: str
    created_at: datetime
    status: ViolationStatus
    escalation_level: int = Field(description="0: not escalated.")
    occurrences: int = Field(
        description="Validations that found it (a passive breach found again counts here)."
    )
    last_seen_at: datetime
    last_decision_id: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved: bool = Field(description="True once resolved or cured.")
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    violation: PolicyViolation


class TransitionPublic(BaseModel):
    """One recorded change of a violation."""

    action: str = Field(
        description="opened | acknowledged | resolved | cured | reopened | escalated"
    )
    from_status: ViolationStatus | None
    to_status: ViolationStatus
    escalation_level: int
    actor: str
    reason: str | None
    decision_id: str | None = Field(description="The validation behind it (opened, cured).")
    at: datetime


class WebhookDeliveryPublic(BaseModel):
    """One webhook call an escalation rule asked for, and how it went."""

    id: int
    rule: str = Field(description="The escalation rule that asked for it.")
    destination: str = Field(
        description=(
            "Where it is sent: the webhook's scheme, host and port only. A webhook's path "
            "and query often carry its own secret (chat services put the token there), so "
            "they are not shown to readers; the full URL is in the escalation rules."
        ),
        examples=["https://hooks.example.com"],
    )
    status: str = Field(description="pending | delivered | failed", examples=["delivered"])
    attempts: int
    last_status_code: int | None = Field(description="The receiver's last HTTP status.")
    last_error: str | None = Field(description="Why the last attempt failed, when it did.")
    next_attempt_at: datetime | None = Field(description="When a pending delivery is retried.")
    delivered_at: datetime | None


class MonitorStatusPublic(BaseModel):
    """One monitor (`pes monitor`, by its durable consumer) as its last heartbeat left it."""

    consumer: str = Field(examples=["pes-monitor"])
    state: str = Field(description="running | stopped (a clean exit)", examples=["running"])
    health: str = Field(
        description=(
            "running, stopped, or stale: said to be running but silent for longer than "
            "`stale_after_s` (it died, or a round is stuck)"
        ),
        examples=["running"],
    )
    stale_after_s: float = Field(examples=[10.0])
    heartbeat_age_s: float = Field(description="Seconds since its last heartbeat.")
    started_at: datetime
    heartbeat_at: datetime
    last_update_at: datetime | None = Field(description="When it last applied an update.")
    lag: int = Field(description="Messages pending on its consumer at its last fetch.")
    portfolios: int = Field(description="Portfolios whose state it holds.")
    consumed: int
    duplicates: int = Field(description="Updates delivered again and applied once.")
    rejected: int = Field(description="Updates refused (malformed, unknown symbols).")
    checks: int = Field(description="Portfolio checks run.")
    breaches_opened: int
    breaches_cleared: int


class ViolationDetail(ViolationPublic):
    """A violation with its history, oldest transition first."""

    history: list[TransitionPublic]


class ViolationPage(BaseModel):
    """A page of violations."""

    total: int
    limit: int
    offset: int
    items: list[ViolationPublic]


class ViolationResolution(BaseModel):
    """Resolve (or reopen) a violation."""

    model_config = {"extra": "forbid"}

    resolved: bool = True
    note: str | None = Field(default=None, max_length=4000)


class Acknowledgement(BaseModel):
    """Acknowledge a violation, optionally saying why."""

    model_config = {"extra": "forbid"}

    reason: str | None = Field(default=None, max_length=4000)


class Resolution(BaseModel):
    """Resolve a violation by hand: the reason is required."""

    model_config = {"extra": "forbid"}

    reason: str = Field(min_length=1, max_length=4000)


class BulkAction(BaseModel):
    """Acknowledge or resolve several violations at once (resolve needs a reason)."""

    model_config = {"extra": "forbid"}

    ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(min_length=1, max_length=500)
    action: Literal["acknowledge", "resolve"]
    reason: str | None = Field(default=None, max_length=4000)

    @model_validator(mode="after")
    def _resolve_has_a_reason(self) -> BulkAction:
        if self.action == "resolve" and not (self.reason or "").strip():
            raise ValueError("resolving needs a reason")
        return self


class BulkSkipped(BaseModel):
    """A violation a bulk action left as it was, and why."""

    id: int
    reason: str


class BulkResult(BaseModel):
    """What a bulk action changed and what it skipped."""

    changed: list[ViolationPublic]
    skipped: list[BulkSkipped]


class ErrorDetail(BaseModel):
    """One problem with the request."""

    field: str
    message: str


class ErrorResponse(BaseModel):
    """Every error response: a message and, for invalid input, the fields."""

    error: str
    message: str
    detail: list[ErrorDetail] = Field(default_factory=list)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "missing or unknown API key"},
    403: {"model": ErrorResponse, "description": "the key's role may not do this"},
    422: {"model": ErrorResponse, "description": "invalid input; `detail` names each field"},
    503: {"model": ErrorResponse, "description": "the database cannot be reached"},
}
"""Error responses every API route may give, as the service sends them."""
