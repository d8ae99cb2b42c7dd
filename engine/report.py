"""Turning check results and adjustments into the response's violations and advice."""

from __future__ import annotations

import numpy as np

from engine.adjust import Adjustment
from engine.check import CheckResult, RowCheck
from engine.kinds.format import pct
from engine.layout import Layout
from engine.portfolio import Snapshot
from engine.scoring import severity
from models import (
    BindingConstraint,
    BreachKind,
    RuleEncoding,
    Side,
    SuggestedAdjustment,
    Trade,
    Violation,
)
from models.typing import FloatArray

__all__ = [
    "binding_constraints",
    "recommendations",
    "rule_encodings",
    "trades_of",
    "violations_of",
]


def trades_of(snap: Snapshot, t: FloatArray) -> list[Trade]:
    """One trade per symbol with a non-zero net quantity, in V's order."""
    return [
        Trade(symbol=s, side=Side.BUY if q > 0 else Side.SELL, quantity=float(abs(q)))
        for s, q in zip(snap.symbols, t, strict=True)
        if q != 0
    ]


def _describe(rc: RowCheck, r: int) -> str:
    rs = rc.rowset
    verb = "exceeds max" if rs.sense == "le" else "is below min"
    return (
        f"{rs.describe(rs.subjects[r])} {pct(rc.post[r])} {verb} {pct(rs.limits[r])} "
        f"(pre-trade {pct(rc.pre[r])})"
    )


def _culprit(rc: RowCheck, r: int, snap: Snapshot, adjustment: Adjustment) -> int | None:
    """The changed trade that does most to cure row r.

    That is the subject itself when it is a symbol whose trade changed, else the change that
    alone reduces the row's excess the most.
    """
    changed = np.flatnonzero(adjustment.t != snap.t)
    subject = rc.rowset.subjects[r]
    if subject in snap.index and snap.index[subject] in changed:
        return snap.index[subject]
    best, gain = None, 0.0
    for i in changed:
        w = snap.w_hat.copy()
        w[i] = adjustment.w[i]
        improvement = rc.post_excess[r] - rc.rowset.excess(rc.rowset.block.values(w))[r]
        if improvement > gain:
            best, gain = int(i), float(improvement)
    return best


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


def _fmt_qty(q: float) -> str:
    return f"{q:,.4f}".rstrip("0").rstrip(".")


def _trade_change(symbol: str, old: float, new: float) -> str:
    side_old = "BUY" if old > 0 else "SELL"
    side_new = "BUY" if new > 0 else "SELL"
    if old == 0:
        return f"Add {side_new} {symbol} {_fmt_qty(abs(new))} shares"
    if new == 0:
        return f"Cancel {side_old} {symbol} ({_fmt_qty(abs(old))} shares)"
    if side_old != side_new:
        return (
            f"Replace {side_old} {symbol} {_fmt_qty(abs(old))} by {side_new} "
            f"{_fmt_qty(abs(new))} shares"
        )
    verb = "Reduce" if abs(new) < abs(old) else "Increase"
    return f"{verb} {side_old} {symbol} from {_fmt_qty(abs(old))} to {_fmt_qty(abs(new))} shares"


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
        for i in np.flatnonzero(adjustment.t != snap.t):
            symbol = snap.symbols[i]
            policies = sorted(
                {
                    v.policy_name
                    for v in violations
                    if v.suggested_adjustment is not None
                    and v.suggested_adjustment.symbol == symbol
                }
            )
            reason = f" ({', '.join(policies)})" if policies else ""
            out.append(_trade_change(symbol, float(snap.t[i]), float(adjustment.t[i])) + reason)
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
