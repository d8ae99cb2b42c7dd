"""Severity of a breach and the decision's compliance score (SPEC section 5).

Severity, unless the policy fixes it:

- REGULATORY policies: every active breach is CRITICAL.
- Otherwise from the relative excess ``rel = excess / max(|limit|, 0.01)`` (the floor keeps
  limits at or near zero, such as a restricted name's 0%, from making every breach
  CRITICAL through a division by ~0): LOW below 5%, MEDIUM below 25%, HIGH below 100%,
  CRITICAL from 100% (the limit exceeded by its own size).
- A passive breach is one level lower (never below LOW): it is not the decision's doing.

For a fixed limit the severity never falls as the excess grows (monotone).

Compliance score: ``1 / (1 + sum of penalties)`` over every violation, where a violation's
penalty is ``severity weight x enforcement weight x breach weight x (1 + min(rel, 1))`` with
severity weights LOW 0.05, MEDIUM 0.15, HIGH 0.35, CRITICAL 0.75; enforcement strict 1,
advisory 0.5, monitor 0.2; breach active 1, passive 0.5. So the score is 1.0 exactly when
there is no violation, lies in (0, 1) otherwise, and falls with every additional or larger
breach.
"""

from __future__ import annotations

from collections.abc import Iterable

from models import BreachKind, EnforcementLevel, PolicyType, Violation, ViolationSeverity

__all__ = ["compliance_score", "relative_excess", "severity"]

_FLOOR = 0.01
_STEPS = (
    (0.05, ViolationSeverity.LOW),
    (0.25, ViolationSeverity.MEDIUM),
    (1.0, ViolationSeverity.HIGH),
)
_LEVELS = list(ViolationSeverity)
_SEVERITY_WEIGHT = {
    ViolationSeverity.LOW: 0.05,
    ViolationSeverity.MEDIUM: 0.15,
    ViolationSeverity.HIGH: 0.35,
    ViolationSeverity.CRITICAL: 0.75,
}
_ENFORCEMENT_WEIGHT = {
    EnforcementLevel.STRICT: 1.0,
    EnforcementLevel.ADVISORY: 0.5,
    EnforcementLevel.MONITOR: 0.2,
}
_BREACH_WEIGHT = {BreachKind.ACTIVE: 1.0, BreachKind.PASSIVE: 0.5}


def relative_excess(excess: float, limit: float) -> float:
    """The excess relative to the limit's size (floored at 1% of NAV or vol)."""
    return max(excess, 0.0) / max(abs(limit), _FLOOR)


def severity(
    *,
    fixed: ViolationSeverity | None,
    policy_type: PolicyType,
    breach: BreachKind,
    excess: float,
    limit: float,
) -> ViolationSeverity:
    """The severity of one breached row (see the module docstring for the rule)."""
    if fixed is not None:
        return fixed
    if policy_type is PolicyType.REGULATORY and breach is BreachKind.ACTIVE:
        return ViolationSeverity.CRITICAL
    rel = relative_excess(excess, limit)
    level = next((s for bound, s in _STEPS if rel < bound), ViolationSeverity.CRITICAL)
    if breach is BreachKind.PASSIVE:
        level = _LEVELS[max(level.rank - 1, 0)]
    return level


def compliance_score(violations: Iterable[Violation]) -> float:
    """``1 / (1 + sum of penalties)``; exactly 1.0 with no violation."""
    total = 0.0
    for v in violations:
        rel = relative_excess(abs(v.observed - v.limit), v.limit)
        total += (
            _SEVERITY_WEIGHT[v.severity]
            * _ENFORCEMENT_WEIGHT[v.enforcement_level]
            * _BREACH_WEIGHT[v.breach]
            * (1.0 + min(rel, 1.0))
        )
    return 1.0 / (1.0 + total)
