"""What replaying one logged decision changed: verdict, violations, adjustment."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import orjson

from api.store import LogEntry
from models.replay import ReplayChange, ReplayedDecision, ReplayOutcome, ViolationChange

__all__ = ["compared", "failed", "outcome"]


def outcome(body: Mapping[str, Any]) -> ReplayOutcome:
    """A response (as JSON) in brief."""
    adjusted = body.get("adjusted_decision")
    return ReplayOutcome(
        is_compliant=body["is_compliant"],
        compliance_score=body["compliance_score"],
        violations=len(body["violations"]),
        adjusted=adjusted is not None,
        distance=None if adjusted is None else adjusted["distance"],
        global_policy_version=body.get("global_policy_version"),
    )


def _violations(body: Mapping[str, Any]) -> Counter[ViolationChange]:
    return Counter(
        ViolationChange(
            policy_name=v["policy_name"],
            violation_type=v["violation_type"],
            subject=v.get("subject"),
            observed=v["observed"],
            limit=v["limit"],
        )
        for v in body["violations"]
    )


def _same(a: Any, b: Any) -> bool:
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        b, option=orjson.OPT_SORT_KEYS
    )


def _adjustment(body: Mapping[str, Any]) -> Any:
    """What an adjustment proposes: its trades, distance and verdict (not its timings)."""
    adjusted = body.get("adjusted_decision")
    if adjusted is None:
        return [body.get("infeasible"), body.get("adjustment_error")]
    return [adjusted["trades"], adjusted["distance"], adjusted["is_compliant"]]


def compared(
    entry: LogEntry, replayed: Mapping[str, Any], *, include_response: bool = False
) -> ReplayedDecision:
    """The logged answer of `entry` against `replayed` (a response as JSON)."""
    before, after = entry.response, replayed
    old, new = _violations(before), _violations(after)
    added = sorted((new - old).elements(), key=_order)
    removed = sorted((old - new).elements(), key=_order)
    if before["is_compliant"] and not after["is_compliant"]:
        change = ReplayChange.NEWLY_BLOCKED
    elif not before["is_compliant"] and after["is_compliant"]:
        change = ReplayChange.NEWLY_ALLOWED
    elif added or removed:
        change = ReplayChange.VIOLATIONS_CHANGED
    elif not _same(_adjustment(before), _adjustment(after)) or not _same(
        before["violations"], after["violations"]
    ):
        change = ReplayChange.ADJUSTMENT_CHANGED
    else:
        change = ReplayChange.UNCHANGED
    return ReplayedDecision(
        validation_id=entry.validation_id,
        decision_id=entry.decision_id,
        portfolio_id=entry.portfolio_id,
        logged_at=entry.logged_at,
        change=change,
        logged=outcome(before),
        replayed=outcome(after),
        violations_added=added,
        violations_removed=removed,
        response=dict(replayed) if include_response else None,
    )


def failed(entry: LogEntry, error: str) -> ReplayedDecision:
    """A decision the candidate could not evaluate (its policies or input were refused)."""
    return ReplayedDecision(
        validation_id=entry.validation_id,
        decision_id=entry.decision_id,
        portfolio_id=entry.portfolio_id,
        logged_at=entry.logged_at,
        change=ReplayChange.FAILED,
        logged=outcome(entry.response),
        error=error,
    )


def _order(v: ViolationChange) -> tuple[str, str, str]:
    return (v.policy_name, v.violation_type, v.subject or "")
