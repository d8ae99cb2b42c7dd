"""The checker (SPEC section 5): every row pre- and post-trade, breach, active or passive."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from engine.layout import Layout
from engine.rows import RowSet
from models.typing import BoolArray, FloatArray

__all__ = ["TOLERANCE", "CheckResult", "RowCheck", "check"]

TOLERANCE = 1e-9
"""A row is breached when its excess exceeds this (weight units; vol units for risk rows)."""


@dataclass
class RowCheck:
    """One row set evaluated before and after the decision."""

    rowset: RowSet
    pre: FloatArray
    post: FloatArray
    pre_excess: FloatArray
    post_excess: FloatArray
    breached: BoolArray
    active: BoolArray
    blocking: BoolArray


@dataclass
class CheckResult:
    """Every row set's check, and the verdict."""

    checks: list[RowCheck]
    is_compliant: bool

    def breaches(self) -> Iterator[tuple[RowCheck, int]]:
        """Every breached row, in layout order."""
        for rc in self.checks:
            for r in np.flatnonzero(rc.breached):
                yield rc, int(r)


def check(
    layout: Layout,
    w: FloatArray,
    *,
    cure_passive: bool,
    indices: list[int] | None = None,
) -> CheckResult:
    """Check weights `w` against the row sets at `indices` (all by default).

    Active means the decision creates or worsens the breach (post excess > pre excess +
    tolerance); always-active rows are active whenever breached. A strict row blocks when it
    has an active breach, or any breach when `cure_passive`.
    """
    chosen = range(len(layout.rowsets)) if indices is None else indices
    checks = []
    compliant = True
    for k in chosen:
        rowset = layout.rowsets[k]
        pre = layout.pre_values[k]
        post = rowset.block.values(w)
        pre_excess = rowset.excess(pre)
        post_excess = rowset.excess(post)
        breached = post_excess > TOLERANCE
        if rowset.always_active:
            active = breached.copy()
        else:
            active = breached & (post_excess > pre_excess + TOLERANCE)
        assert rowset.provenance is not None
        if rowset.provenance.strict:
            blocking = breached if cure_passive else active
        else:
            blocking = np.zeros_like(breached)
        compliant = compliant and not bool(blocking.any())
        checks.append(
            RowCheck(rowset, pre, post, pre_excess, post_excess, breached, active, blocking)
        )
    return CheckResult(checks=checks, is_compliant=compliant)
