"""Turning check results and adjustments into the response's violations and advice."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from pydantic import TypeAdapter

from engine import tolerances
from engine.adjust.adjuster import Adjustment
from engine.adjust.separable.columns import column_index
from engine.check.checker import CheckResult, RowCheck
from engine.check.scoring import severity
from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
from engine.compile.conic_blocks import NormBlock
from engine.compile.kinds.format import in_unit
from engine.compile.layout import Layout
from engine.compile.rows import RowSet
from engine.weights.portfolio import Snapshot
from models import (
    BindingConstraint,
    BreachKind,
    RuleEncoding,
    Side,
    SuggestedAdjustment,
    Trade,
    Violation,
)
from models.typing import FloatArray, IntArray

__all__ = [
    "binding_constraints",
    "recommendations",
    "rule_encodings",
    "trade_changes",
    "trades_of",
    "violations_of",
]


_TRADES = TypeAdapter(list[Trade])


def trades_of(snap: Snapshot, t: FloatArray) -> list[Trade]:
    """One trade per symbol with a non-zero net quantity, in V's order.

    Validated as one list (one call into pydantic's core instead of one per trade: a
    projection at n = 2000 changes every trade, and per-model calls cost ~2 us each).
    """
    traded = np.flatnonzero(t)
    q = t[traded]
    sides = np.where(q > 0, Side.BUY.value, Side.SELL.value).tolist()
    return _TRADES.validate_python(
        [
            {"symbol": snap.symbols[i], "side": side, "quantity": quantity}
            for i, side, quantity in zip(traded.tolist(), sides, np.abs(q).tolist(), strict=True)
        ]
    )


def _describe(rc: RowCheck, r: int) -> str:
    rs = rc.rowset
    verb = "exceeds max" if rs.sense == "le" else "is below min"
    unit = rs.unit
    return (
        f"{rs.describe(rs.subjects[r])} {in_unit(rc.post[r], unit)} {verb} "
        f"{in_unit(rs.limits[r], unit)} (pre-trade {in_unit(rc.pre[r], unit)})"
    )


def _culprit(rc: RowCheck, r: int, snap: Snapshot, adjustment: Adjustment) -> int | None:
    """The changed trade that does most to cure row r.

    That is the subject itself when it is a symbol whose trade changed, else the change that
    alone reduces the row's excess the most (the first such change in V's order on a tie).
    """
    changed = np.flatnonzero(adjustment.t != snap.t)
    subject = rc.rowset.subjects[r]
    if subject in snap.index and snap.index[subject] in changed:
        return snap.index[subject]
    best, gain = None, 0.0
    for i in _contenders(rc, r, snap, adjustment, changed):
        w = snap.w_hat.copy()
        w[i] = adjustment.w[i]
        improvement = rc.post_excess[r] - rc.rowset.excess(rc.rowset.block.values(w))[r]
        if improvement > gain:
            best, gain = int(i), float(improvement)
    return best


SCREEN_FROM = 32
"""Screen when at least this many trades changed: below it, trying each is cheaper than
the estimate (~10 us a trade against ~0.1 ms; `scale_back` changes at most the proposal's
trades, `project` may change every held name)."""

SCREEN_NORM_FROM = 4
"""The same for a risk norm (volatility, tracking error): trying a change evaluates the
whole norm (~13 us at n = 500 with 20 factors) and the estimate of every change costs about
two of them, so screening pays from a few changes on (`scale_back` with cones: its ~20
changes cost two such rows ~0.5 ms tried one by one)."""

SCREEN_MARGIN = tolerances.SCREEN_MARGIN
"""Changes whose estimated improvement is within this of the best estimate are evaluated
exactly. An estimate differs from the exact value by rounding only (~1e-15 here)."""


def _contenders(
    rc: RowCheck, r: int, snap: Snapshot, adjustment: Adjustment, changed: IntArray
) -> IntArray:
    """The changes that can be `_culprit`'s answer, in V's order.

    Trying every changed trade costs one evaluation of the row's whole block each, and a
    `project` adjustment changes hundreds of trades. For the linear and absolute-value
    blocks the improvement of every change is estimated at once from the block's matrices;
    only the changes within `SCREEN_MARGIN` of the best estimate can hold the exact best,
    and `_culprit` evaluates those exactly, as before, so it picks the same trade. Other
    blocks, and row sets with their own excess, keep every change.
    """
    rowset = rc.rowset
    screen_from = SCREEN_NORM_FROM if isinstance(rowset.block, NormBlock) else SCREEN_FROM
    if (
        len(changed) < screen_from
        or rowset.sense not in ("le", "ge")
        or type(rowset).excess is not (RowSet.excess)
    ):
        return changed
    moves = adjustment.w[changed] - snap.w_hat[changed]
    shift = rowset.block.row_shift(_Shifts(r, snap.w_hat, changed, moves))
    if shift is None:
        return changed
    # A change that moves the row's value by `shift` improves the excess by -shift ("le")
    # or by +shift ("ge").
    estimate = -shift if rowset.sense == "le" else shift
    top = float(estimate.max())
    if top < -SCREEN_MARGIN:
        return changed[:0]  # no change improves the row: the exact loop would find none
    return changed[estimate >= top - SCREEN_MARGIN]


class _Shifts:
    """Each block kind's row shift (`engine.compile.representations.RowShiftForms`).

    The estimated change of row `r`'s value when `w[changed[k]]` moves by `moves[k]`, each
    alone; None for a kind without an estimate.
    """

    def __init__(self, r: int, w: FloatArray, changed: IntArray, moves: FloatArray) -> None:
        self.r, self.w, self.changed, self.moves = r, w, changed, moves

    def affine(self, block: AffineBlock) -> FloatArray | None:
        return _matrix_row(block.A, self.r)[self.changed] * self.moves

    def abs_sum(self, block: AbsSumBlock) -> FloatArray | None:
        r, changed, moves = self.r, self.changed, self.moves
        A = sp.csc_matrix(block.A)
        u = np.asarray(A @ self.w).ravel() + block.c
        weight = np.ones(A.shape[0]) if block.G is None else _matrix_row(block.G, r)
        picked = A[:, changed].tocoo()  # entry (j, k): term j moves by A[j, i_k] * moves[k]
        j, k = picked.row, picked.col
        after = np.abs(u[j] + picked.data * moves[k]) - np.abs(u[j])
        if block.G is None:
            after = np.where(j == r, after, 0.0)
        shift = np.bincount(k, weights=weight[j] * after, minlength=len(changed))
        return np.asarray(shift, dtype=float)

    def norm(self, block: NormBlock) -> FloatArray | None:
        # v = s |(F'y, d o y)|, y = P w + c. One weight i moving by m moves y by m P[:, i]:
        # the exposures by m E_i (E = F' P[:, changed]) and the specific sum by
        # sum_j d_j^2 (2 m P_ji y_j + m^2 P_ji^2): O(k) a change, no block evaluation.
        m = self.moves
        y = np.asarray(block.P @ self.w).ravel() + block.c
        d2 = np.zeros(len(y)) if block.d is None else np.asarray(block.d, dtype=float) ** 2
        E, linear, quadratic = self._moved_columns(block, y, d2)
        exposures = block.F.T @ y
        base = float(exposures @ exposures) + float(d2 @ (y * y))
        change = m * (2.0 * (E @ exposures) + m * np.einsum("ij,ij->i", E, E))
        change = change + m * (2.0 * linear + m * quadratic)
        before = block.scale * np.sqrt(max(base, 0.0))
        after = block.scale * np.sqrt(np.maximum(base + change, 0.0))
        return np.asarray(after - before, dtype=float)

    def _moved_columns(
        self, block: NormBlock, y: FloatArray, d2: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """E = F' P[:, changed], and per change sum_j d2_j P_ji y_j and sum_j d2_j P_ji^2.

        The columns are read as entries (j, k, p) from an index of P kept on the block:
        scipy's column slicing and products cost ~0.15 ms here, more than the sums. A P with
        duplicate entries (no index) goes through scipy.
        """
        changed = self.changed
        index = column_index(block, "P")
        if index is None or not index.covers(changed):
            P = sp.csc_matrix(block.P)[:, changed]
            return (
                np.asarray(P.T @ block.F),
                np.asarray(P.T @ (d2 * y)).ravel(),
                np.asarray(P.multiply(P).T @ d2).ravel(),
            )
        picked = index.pick(changed)
        j, k, p = picked.rows, picked.cols, np.asarray(picked.data, dtype=float)
        E = np.zeros((len(changed), block.F.shape[1]))
        np.add.at(E, k, p[:, None] * block.F[j])
        size = len(changed)
        linear = np.bincount(k, weights=p * d2[j] * y[j], minlength=size)
        quadratic = np.bincount(k, weights=p * p * d2[j], minlength=size)
        return E, np.asarray(linear, dtype=float), np.asarray(quadratic, dtype=float)

    def unsupported(self, block: Block) -> FloatArray | None:
        return None


def _matrix_row(matrix: FloatArray | sp.spmatrix, r: int) -> FloatArray:
    if not isinstance(matrix, sp.csr_matrix | sp.csr_array):
        if sp.issparse(matrix):
            return np.asarray(sp.csr_matrix(matrix)[[r]].toarray(), dtype=float).ravel()
        return np.asarray(matrix[r], dtype=float).ravel()
    # A CSR row read off its arrays: scipy's row indexing costs ~50 us a call, and the
    # culprit search reads a row per breach. Duplicate entries add up, as in toarray().
    start, end = matrix.indptr[r], matrix.indptr[r + 1]
    row = np.bincount(
        matrix.indices[start:end], weights=matrix.data[start:end], minlength=matrix.shape[1]
    )
    return np.asarray(row, dtype=float)


def _suggestion(i: int, snap: Snapshot, adjustment: Adjustment) -> SuggestedAdjustment:
    new, old = float(adjustment.t[i]), float(snap.t[i])
    side = Side.BUY if (new if new != 0 else old) > 0 else Side.SELL
    return SuggestedAdjustment(
        symbol=snap.symbols[i], side=side, quantity=abs(new), original_quantity=abs(old)
    )


def violations_of(
    result: CheckResult, snap: Snapshot, adjustment: Adjustment | None, *, cure_passive: bool
) -> list[Violation]:
    """One Violation per breached row, with the trade change that cures it when known."""
    out = []
    for rc, r in result.breaches():
        rs = rc.rowset
        assert rs.provenance is not None
        policy = rs.provenance.policy
        breach = BreachKind.ACTIVE if rc.active[r] else BreachKind.PASSIVE
        suggested = None
        if adjustment is not None and (rc.active[r] or cure_passive) and rs.provenance.strict:
            i = _culprit(rc, r, snap, adjustment)
            suggested = None if i is None else _suggestion(i, snap, adjustment)
        out.append(
            Violation(
                policy_name=policy.policy_name,
                policy_type=policy.policy_type,
                violation_type=rs.violation_type,
                severity=severity(
                    fixed=policy.severity,
                    policy_type=policy.policy_type,
                    breach=breach,
                    excess=float(rc.post_excess[r]),
                    limit=float(rs.limits[r]),
                ),
                breach=breach,
                enforcement_level=policy.enforcement_level,
                subject=rs.subjects[r],
                observed=float(rc.post[r]),
                limit=float(rs.limits[r]),
                pre_trade=float(rc.pre[r]),
                description=_describe(rc, r),
                suggested_adjustment=suggested,
            )
        )
    return out


def rule_encodings(layout: Layout) -> list[RuleEncoding]:
    """The strict rules the adjuster solved through a convex restriction, and which one."""
    out = []
    for rs in layout.rowsets:
        assert rs.provenance is not None
        if rs.encoding is not None and rs.provenance.strict:
            out.append(
                RuleEncoding(
                    policy_name=rs.provenance.policy_name,
                    kind=rs.provenance.kind,
                    encoding=rs.encoding,
                )
            )
    return out


def binding_constraints(layout: Layout, adjustment: Adjustment) -> list[BindingConstraint]:
    """The binding rows of the adjustment's optimum with their shadow prices.

    `layout` is the one the adjustment was solved with (`Layout.for_solver()`).
    """
    out = []
    for k, r, dual in adjustment.binding:
        rs = layout.rowsets[k]
        assert rs.provenance is not None
        out.append(
            BindingConstraint(
                policy_name=rs.provenance.policy_name,
                violation_type=rs.violation_type,
                subject=rs.subjects[r],
                shadow_price=dual,
            )
        )
    return out


def _quantities(values: FloatArray) -> list[str]:
    """Share counts as text: thousands separated, at most four decimals, no trailing zeros.

    Whole counts (most, with lots) are written as integers, a third faster and the same
    text; below 2^53 every whole float is an exact integer.
    """
    size = np.abs(values)
    whole = ((size == np.floor(size)) & (size < 2.0**53)).tolist()
    return [
        f"{int(q):,}" if is_whole else f"{q:,.4f}".rstrip("0").rstrip(".")
        for q, is_whole in zip(size.tolist(), whole, strict=True)
    ]


_ADD, _CANCEL, _REPLACE, _REDUCE, _INCREASE = range(5)


def trade_changes(symbols: Sequence[str], old: FloatArray, new: FloatArray) -> list[str]:
    """One line per trade changed from `old` to `new` (signed quantities; `old != new`).

    The change's kind is found for every trade at once and the quantities formatted in one
    pass: a projection at n = 2000 changes every trade.
    """
    kinds = np.select(
        [old == 0, new == 0, (old > 0) != (new > 0), np.abs(new) < np.abs(old)],
        [_ADD, _CANCEL, _REPLACE, _REDUCE],
        _INCREASE,
    ).tolist()
    before, after = _quantities(old), _quantities(new)
    side_before = np.where(old > 0, "BUY", "SELL").tolist()
    side_after = np.where(new > 0, "BUY", "SELL").tolist()
    out = []
    for symbol, kind, a, b, side_a, side_b in zip(
        symbols, kinds, before, after, side_before, side_after, strict=True
    ):
        if kind == _ADD:
            out.append(f"Add {side_b} {symbol} {b} shares")
        elif kind == _CANCEL:
            out.append(f"Cancel {side_a} {symbol} ({a} shares)")
        elif kind == _REPLACE:
            out.append(f"Replace {side_a} {symbol} {a} by {side_b} {b} shares")
        else:
            verb = "Reduce" if kind == _REDUCE else "Increase"
            out.append(f"{verb} {side_a} {symbol} from {a} to {b} shares")
    return out


def recommendations(
    violations: list[Violation],
    snap: Snapshot,
    adjustment: Adjustment | None,
    *,
    cure_passive: bool,
) -> list[str]:
    """Readable advice: the trade changes, passive breaches left alone, advisory warnings."""
    out = []
    if adjustment is not None:
        # The policies suggesting a change of each symbol, gathered once: a projection
        # changes most of the universe's trades, and looking through every violation for
        # each of them was quadratic.
        suggesting: dict[str, set[str]] = {}
        for v in violations:
            if v.suggested_adjustment is not None:
                suggesting.setdefault(v.suggested_adjustment.symbol, set()).add(v.policy_name)
        changed = np.flatnonzero(adjustment.t != snap.t)
        symbols = [snap.symbols[i] for i in changed.tolist()]
        lines = trade_changes(symbols, snap.t[changed], adjustment.t[changed])
        for symbol, line in zip(symbols, lines, strict=True):
            policies = suggesting.get(symbol)
            out.append(f"{line} ({', '.join(sorted(policies))})" if policies else line)
        out += adjustment.notes
    for v in violations:
        if (
            v.breach is BreachKind.PASSIVE
            and v.enforcement_level.value == "strict"
            and not cure_passive
        ):
            out.append(
                f"Pre-existing breach of {v.policy_name}: {v.description}; passive, not "
                "blocking (set cure_passive to cure it)"
            )
        elif v.enforcement_level.value == "advisory":
            out.append(f"Advisory {v.policy_name}: {v.description}")
    return out
