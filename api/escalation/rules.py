"""Which rule a violation matches.

A rule matches when every condition it names holds; the highest level wins (the first in
the file among equals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from models import EscalationRule

__all__ = ["ViolationFacts", "decide", "matches"]


@dataclass(frozen=True)
class ViolationFacts:
    """What the rules look at in one live violation."""

    policy_name: str
    severity: str
    age_hours: float
    repeats_within: Mapping[float, int]
    """Validations that found its policy and subject breached, per window (days)."""
    portfolio_ids: tuple[str, ...]
    """The violation's portfolio and its ancestors in the tree (just itself when the
    portfolio is not registered)."""


def matches(rule: EscalationRule, facts: ViolationFacts) -> bool:
    """True when every condition `rule` names holds for `facts`."""
    when = rule.when
    return (
        (when.severities is None or facts.severity in {s.value for s in when.severities})
        and facts.age_hours >= when.min_age_hours
        and facts.repeats_within.get(when.repeat_window_days, 0) >= when.min_repeats
        and (when.portfolio is None or when.portfolio in facts.portfolio_ids)
        and (when.policies is None or facts.policy_name in when.policies)
    )


def decide(rules: Sequence[EscalationRule], facts: ViolationFacts) -> EscalationRule | None:
    """The matching rule with the highest level, or None."""
    best: EscalationRule | None = None
    for rule in rules:
        if matches(rule, facts) and (best is None or rule.level > best.level):
            best = rule
    return best
