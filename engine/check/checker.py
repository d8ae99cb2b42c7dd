"""The checker (SPEC section 5): every row pre- and post-trade, breach, active or passive."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from engine.compile.checkstack import CheckStack
from engine.compile.layout import Layout, row_values
from engine.compile.rows import RowSet
from engine.errors import PolicyEvaluationError
from engine.tolerances import TOLERANCE
from models.typing import BoolArray, FloatArray

__all__ = ["TOLERANCE", "CheckResult", "RowCheck", "check"]


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
    """Every chosen row checked at once, and the verdict.

    The arrays run over the rows of the chosen row sets laid end to end (see `CheckStack`);
    `checks` offers the same numbers per row set, as views.
    """

    layout: Layout
    stack: CheckStack
    pre: FloatArray
    post: FloatArray
    pre_excess: FloatArray
    post_excess: FloatArray
    breached: BoolArray
    active: BoolArray
    blocking: BoolArray
    is_compliant: bool

    @cached_property
    def checks(self) -> list[RowCheck]:
        """One `RowCheck` per chosen row set, in the order checked."""
        return [self._row_check(j) for j in range(len(self.stack.indices))]

    def _row_check(self, j: int) -> RowCheck:
        """The j-th chosen row set's check, built once (most callers want a few)."""
        made: dict[int, RowCheck] = self.__dict__.setdefault("_made", {})
        if j not in made:
            rows = slice(self.stack.offsets[j], self.stack.offsets[j + 1])
            made[j] = RowCheck(
                self.layout.rowsets[self.stack.indices[j]],
                self.pre[rows],
                self.post[rows],
                self.pre_excess[rows],
                self.post_excess[rows],
                self.breached[rows],
                self.active[rows],
                self.blocking[rows],
            )
        return made[j]

    def _rows_of(self, mask: BoolArray) -> Iterator[tuple[RowCheck, int]]:
        hits = np.flatnonzero(mask)
        if not len(hits):
            return
        offsets = self.stack.offsets
        owners = np.searchsorted(offsets, hits, side="right") - 1
        for j, row in zip(owners.tolist(), hits.tolist(), strict=True):
            yield self._row_check(j), row - int(offsets[j])

    def breaches(self) -> Iterator[tuple[RowCheck, int]]:
        """Every breached row, in layout order."""
        return self._rows_of(self.breached)

    def blocking_rows(self) -> Iterator[tuple[RowCheck, int]]:
        """Every row that blocks the decision, in layout order."""
        return self._rows_of(self.blocking)


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
    stack = layout.row_stack(range(len(layout.rowsets)) if indices is None else indices)
    rowsets = layout.rowsets
    chosen = stack.indices
    post = _joined(row_values([rowsets[k] for k in chosen], w))
    pre = _joined([layout.pre_values[k] for k in chosen])
    limits = _joined([rowsets[k].limits for k in chosen])
    with np.errstate(invalid="ignore"):  # inf - inf gives NaN: refused just below
        pre_excess, post_excess = _excesses(stack, rowsets, pre, post, limits)
    _require_evaluable(stack, rowsets, (pre, post, pre_excess, post_excess))
    breached = post_excess > TOLERANCE
    active = breached & ((post_excess > pre_excess + TOLERANCE) | stack.always_active)
    blocking = (breached if cure_passive else active) & stack.strict
    return CheckResult(
        layout=layout,
        stack=stack,
        pre=pre,
        post=post,
        pre_excess=pre_excess,
        post_excess=post_excess,
        breached=breached,
        active=active,
        blocking=blocking,
        is_compliant=not bool(blocking.any()),
    )


def _excesses(
    stack: CheckStack, rowsets: list[RowSet], pre: FloatArray, post: FloatArray, limits: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Pre- and post-trade excess over the limit of every chosen row (positive: breached)."""
    if stack.plain:
        # (v - l) * -1 is exactly l - v in floating point: one excess for both senses.
        return (pre - limits) * stack.sign, (post - limits) * stack.sign
    chosen = stack.indices
    parts = np.split(np.stack([pre, post]), stack.offsets[1:-1], axis=1)
    pre_excess = _joined([rowsets[k].excess(p[0]) for k, p in zip(chosen, parts, strict=True)])
    post_excess = _joined([rowsets[k].excess(p[1]) for k, p in zip(chosen, parts, strict=True)])
    return pre_excess, post_excess


def _require_evaluable(
    stack: CheckStack, rowsets: list[RowSet], arrays: tuple[FloatArray, ...]
) -> None:
    """Refuse rows whose values or excesses are not numbers.

    A NaN compares false with every limit, so it would read as "not breached": the
    decision would be approved on a row that was never evaluated. An infinite value cannot
    be reported or adjusted either. Either way the policy is unusable on this request, and
    the validation fails closed naming it. Infinite *limits* (a one-sided band) are fine:
    only the values and NaN excesses are checked.
    """
    pre, post, pre_excess, post_excess = arrays
    bad = ~(np.isfinite(pre) & np.isfinite(post)) | np.isnan(pre_excess) | np.isnan(post_excess)
    if not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
    j = int(np.searchsorted(stack.offsets, row, side="right")) - 1
    provenance = rowsets[stack.indices[j]].provenance
    value = post[row] if not np.isfinite(post[row]) else pre[row]
    if provenance is None:  # rows built outside a layout carry no policy: say what we know
        raise PolicyEvaluationError("(unknown)", "rules", f"a row evaluates to {value}")
    raise PolicyEvaluationError(
        provenance.policy_name,
        f"rules.constraints[{provenance.constraint_index}] ({provenance.kind})",
        f"evaluates to {value} on this request (not a finite number); the decision is NOT "
        "validated: fix the policy's constants or the request's data",
    )


def _joined(parts: list[FloatArray]) -> FloatArray:
    return np.concatenate(parts) if parts else np.zeros(0)
