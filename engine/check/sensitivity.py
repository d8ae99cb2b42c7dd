"""Sensitivity of a verdict to the limits: how far each blocking limit must move.

A strict row blocks a decision when its post-trade excess over the limit exceeds the
tolerance (and, without `cure_passive`, the decision worsens it). Moving the row's limit
out to the observed value clears it: the excess becomes 0, so the row is no longer
breached, whatever its pre-trade value. Any smaller move leaves an excess, and an excess
that worsens the pre-trade one (the very reason the row blocks) still blocks. So the
row's excess is the smallest relaxation that clears it (to the checker's 1e-9 tolerance).

Rows are independent (relaxing one limit changes no other row), so relaxing every blocking
row by its excess makes the decision compliant as proposed, and one row alone does when it
is the only blocking row.
"""

from __future__ import annotations

from engine.check.checker import CheckResult
from models import LimitRelaxation, Sensitivity

__all__ = ["sensitivity_of"]


def sensitivity_of(result: CheckResult) -> Sensitivity | None:
    """The relaxation of every blocking row, or None when the decision complies."""
    if result.is_compliant:
        return None
    blocking = list(result.blocking_rows())
    alone = len(blocking) == 1
    relaxations = []
    for rc, r in blocking:
        rowset = rc.rowset
        assert rowset.provenance is not None
        relaxations.append(
            LimitRelaxation(
                policy_name=rowset.provenance.policy_name,
                violation_type=rowset.violation_type,
                subject=rowset.subjects[r],
                limit=float(rowset.limits[r]),
                relaxed_limit=float(rc.post[r]),
                relaxation=float(rc.post_excess[r]),
                unit=rowset.unit,
                sufficient_alone=alone,
            )
        )
    return Sensitivity(relaxations=relaxations)
