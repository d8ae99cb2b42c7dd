"""Replay of logged decisions under a candidate policy set: the request and the answer."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, PositiveInt, StrictInt

from models.base import StrictModel
from models.policy import PolicyDefinition

__all__ = [
    "MAX_REPLAY_FILTER",
    "AwareTime",
    "ReplayCandidate",
    "ReplayChange",
    "ReplayOutcome",
    "ReplayRequest",
    "ReplayResponse",
    "ReplaySummary",
    "ReplayedDecision",
    "ViolationChange",
]

AwareTime = AwareDatetime
"""A time with its zone (ISO 8601): the log's times are UTC, a naive one is ambiguous."""

MAX_ID = 2**31 - 1
"""The largest validation id (the column is a 32-bit integer on every database)."""

MAX_REPLAY_FILTER = 10_000
"""Most ids one filter list may hold."""


class ReplayCandidate(StrictModel):
    """The policies a replay applies instead of those logged.

    The set starts from `base`: `applied` (each decision's own logged versions), `stored`
    (the stored policies as they are now, or as they were at `as_of`), or `none` (empty);
    `versions` then pins named stored policies at given versions, and `policies` replaces
    (by name) or adds definitions. `global_policy` is the global policy applied: each
    decision's logged version (`applied`), the `current` one, or a version number.
    """

    base: Literal["applied", "stored", "none"] = "applied"
    as_of: AwareDatetime | None = Field(
        default=None, description="With base `stored`: the policies as they were at this time."
    )
    versions: dict[str, PositiveInt] = Field(
        default_factory=dict, max_length=1000, description="Policy name -> stored version."
    )
    policies: list[PolicyDefinition] = Field(default_factory=list, max_length=1000)
    global_policy: Literal["applied", "current"] | PositiveInt = "applied"


class ReplayRequest(StrictModel):
    """Which logged decisions to replay, and under what."""

    since: AwareDatetime | None = Field(default=None, description="Logged at or after.")
    until: AwareDatetime | None = Field(default=None, description="Logged before.")
    portfolio_ids: list[str] = Field(default_factory=list, max_length=MAX_REPLAY_FILTER)
    decision_ids: list[str] = Field(default_factory=list, max_length=MAX_REPLAY_FILTER)
    validation_ids: list[Annotated[StrictInt, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=MAX_REPLAY_FILTER
    )
    candidate: ReplayCandidate = Field(default_factory=ReplayCandidate)
    include_responses: bool = Field(
        default=False, description="Add each replayed response in full."
    )


class ReplayChange(StrEnum):
    """What replaying changed for one decision (the first that applies, in this order)."""

    FAILED = "failed"
    NEWLY_BLOCKED = "newly_blocked"
    NEWLY_ALLOWED = "newly_allowed"
    VIOLATIONS_CHANGED = "violations_changed"
    ADJUSTMENT_CHANGED = "adjustment_changed"
    UNCHANGED = "unchanged"


class ReplayOutcome(StrictModel):
    """One answer (logged or replayed) in brief."""

    is_compliant: bool
    compliance_score: float
    violations: int
    adjusted: bool = Field(description="An adjusted decision was proposed.")
    distance: float | None = Field(description="The adjustment's distance (null: none).")
    global_policy_version: int | None


class ViolationChange(StrictModel):
    """A violation present in one answer and not (or not the same) in the other."""

    model_config = ConfigDict(frozen=True)

    policy_name: str
    violation_type: str
    subject: str | None
    observed: float
    limit: float


class ReplayedDecision(StrictModel):
    """One logged decision, its logged answer and its answer under the candidate."""

    validation_id: int
    decision_id: str
    portfolio_id: str
    logged_at: datetime
    change: ReplayChange
    logged: ReplayOutcome
    replayed: ReplayOutcome | None = None
    violations_added: list[ViolationChange] = Field(default_factory=list)
    violations_removed: list[ViolationChange] = Field(default_factory=list)
    error: str | None = Field(default=None, description="Why the replay failed (`failed`).")
    response: dict[str, object] | None = Field(
        default=None, description="The replayed response (with `include_responses`)."
    )


class ReplaySummary(StrictModel):
    """How many decisions each change concerns."""

    replayed: int
    changed: int
    by_change: dict[ReplayChange, int]


class ReplayResponse(StrictModel):
    """Every matching logged decision (in log order) and what replaying it changed."""

    summary: ReplaySummary
    decisions: list[ReplayedDecision]
