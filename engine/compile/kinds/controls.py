"""The runtime controls' kinds: trading halts, risk per trade and correlation clusters.

Both are convex and compile to the row blocks every stage already handles (`AbsSumBlock`):
the checker, the adjuster, lot rounding, capacity and the export need nothing new. The
global policy's closed gates become `trading_halt` policies and its `max_risk_per_trade` a
`trade_risk` policy (`engine.resolve.global_policy`); any policy may use all three.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from engine.compile.blocks import AbsSumBlock
from engine.compile.context import CompileContext
from engine.compile.kinds.base import Kind, register
from engine.compile.kinds.format import of_subject
from engine.compile.piecewise import OpenCountBlock
from engine.compile.rows import OpenSupport, RowSet
from engine.tolerances import OPEN_POSITION
from engine.weights.portfolio import MAX_WEIGHT, Snapshot
from models import CorrelationCluster, MaxPositions, TradeRisk, TradingHalt
from models.contextual import concrete
from models.typing import BoolArray, FloatArray

__all__ = [
    "CorrelationClusterKind",
    "MaxPositionsKind",
    "TradeRiskKind",
    "TradingHaltKind",
    "correlation_clusters",
    "positions_allowed",
    "support_changes",
]


@register
class TradeRiskKind(Kind):
    r"""Standalone risk of each trade (always active, like trade limits).

    .. math:: \sigma_i \, |w_i - w^0_i| \le \mathrm{max}, \qquad
              \sigma_i = \sqrt{b_i^T F b_i + d_i} \text{ (1 without a risk model)}

    A name whose volatility is 0 carries no standalone risk and gets no row.
    """

    name = "trade_risk"

    def compile(self, spec: TradeRisk, ctx: CompileContext) -> list[RowSet]:
        snap = ctx.snap
        if spec.symbols is None:
            idx = list(range(snap.n))
        else:
            listed = set(spec.symbols)
            idx = [i for i, s in enumerate(snap.symbols) if s in listed]
        with_model = ctx.request.portfolio_state.risk_model is not None
        if with_model and idx:
            factors = ctx.risk(snap.symbols)
            variance = np.einsum("ij,ij->i", factors.F, factors.F)
            if factors.d is not None:
                variance = variance + factors.d**2
            vol_all = np.sqrt(np.clip(variance, 0.0, None))
        else:
            vol_all = np.ones(snap.n)
        idx = [i for i in idx if vol_all[i] > 0]
        if not idx:
            return []
        vol = vol_all[idx]
        block = AbsSumBlock(A=sp.diags(vol) @ ctx.selection(idx), c=-vol * snap.w0[idx])

        def refresh(snap: Snapshot) -> None:
            block.c = -vol * snap.w0[idx]

        if with_model:
            describe = _risk_describer(dict(zip((snap.symbols[i] for i in idx), vol, strict=True)))
        else:
            describe = of_subject("{subject} trade risk (weight change; no risk model given)")
        return [
            RowSet(
                block,
                "le",
                np.full(len(idx), concrete(spec.max)),
                [snap.symbols[i] for i in idx],
                "trade_risk.max",
                describe,
                unit="risk",
                always_active=True,
                refresh=refresh,
            )
        ]


def _risk_describer(vol: dict[str, float]) -> Callable[[str | None], str]:
    def describe(subject: str | None) -> str:
        sigma = vol.get(subject or "", 0.0)
        return f"{subject} trade risk (weight change x volatility {sigma:.2%})"

    return describe


def correlation_clusters(
    F: FloatArray, d: FloatArray | None, threshold: float, min_size: int
) -> list[list[int]]:
    """Clusters of indices whose every pair is correlated at least `threshold`.

    Complete linkage on the distance `1 - correlation` (scipy, deterministic), cut at
    `1 - threshold`; clusters of fewer than `min_size` names dropped, the rest ordered by
    their smallest index. Names with zero variance are correlated with nothing.
    """
    cov = F @ F.T
    if d is not None:
        cov = cov + np.diag(d**2)
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    live = np.flatnonzero(sd > 0)
    if len(live) < min_size or len(live) < 2:
        return []
    corr = cov[np.ix_(live, live)] / np.outer(sd[live], sd[live])
    distance = np.clip(1.0 - corr, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    distance = 0.5 * (distance + distance.T)
    tree = linkage(squareform(distance, checks=False), method="complete")
    labels = fcluster(tree, t=1.0 - threshold, criterion="distance")
    groups: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        groups.setdefault(int(label), []).append(int(live[position]))
    clusters = [members for members in groups.values() if len(members) >= min_size]
    return sorted(clusters, key=min)


@register
class CorrelationClusterKind(Kind):
    r"""Gross weight of each cluster of correlated names (`correlation_clusters`).

    .. math:: \sum_{i \in C_k} |w_i| \le \mathrm{max} \quad \text{for every cluster } C_k

    The clusters are computed from the risk model over the universe when the policy is
    compiled; each row's subject lists its members.
    """

    name = "correlation_cluster"

    def compile(self, spec: CorrelationCluster, ctx: CompileContext) -> list[RowSet]:
        snap = ctx.snap
        factors = ctx.risk(snap.symbols)
        clusters = correlation_clusters(factors.F, factors.d, spec.min_correlation, spec.min_size)
        if not clusters:
            return []
        rows = np.concatenate([np.full(len(c), r) for r, c in enumerate(clusters)])
        cols = np.concatenate([np.array(c) for c in clusters])
        G = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(clusters), snap.n))
        block = AbsSumBlock(A=sp.identity(snap.n, format="csr"), c=np.zeros(snap.n), G=G)
        subjects: list[str | None] = [
            ", ".join(snap.symbols[i] for i in members) for members in clusters
        ]
        return [
            RowSet(
                block,
                "le",
                np.full(len(clusters), concrete(spec.max)),
                subjects,
                "correlation_cluster.max",
                of_subject(
                    f"gross weight of the cluster correlated at least {spec.min_correlation:g} "
                    "({subject})"
                ),
            )
        ]


@register
class TradingHaltKind(Kind):
    r"""No trades (always active): the only compliant decision is to trade nothing.

    .. math:: |w_i - w^0_i| \le 0 \quad \text{for every } i \in V
    """

    name = "trading_halt"

    def compile(self, spec: TradingHalt, ctx: CompileContext) -> list[RowSet]:
        snap = ctx.snap
        block = AbsSumBlock(A=sp.identity(snap.n, format="csr"), c=-snap.w0.copy())

        def refresh(snap: Snapshot) -> None:
            block.c = -snap.w0.copy()

        return [
            RowSet(
                block,
                "le",
                np.zeros(snap.n),
                list(snap.symbols),
                spec.violation_type,
                of_subject(
                    "{subject} weight change ("
                    + spec.reason.replace("{", "{{").replace("}", "}}")
                    + ")"
                ),
                always_active=True,
                refresh=refresh,
            )
        ]


def _halt_describer(reason: str) -> Callable[[str | None], str]:
    return lambda subject: f"{subject} weight change ({reason})"


def positions_allowed(w0: FloatArray, w_hat: FloatArray, limit: int) -> BoolArray:
    """The names the `max_positions` restriction lets be open (a 0/1 mask).

    The budget is `limit`, or the pre-trade count when that is larger (a passive breach
    may stay). In: every name open before and after the proposal; then the proposal's new
    positions, largest first, while the budget lasts; then the positions the proposal
    closes, largest first, while it still lasts (a name left out must close completely).
    """
    pre = np.abs(w0) > OPEN_POSITION
    proposed = np.abs(w_hat) > OPEN_POSITION
    budget = max(limit, int(np.count_nonzero(pre)))
    allowed = pre & proposed
    room = budget - int(np.count_nonzero(allowed))
    for candidates, size in ((~pre & proposed, np.abs(w_hat)), (pre & ~proposed, np.abs(w0))):
        for i in np.argsort(-size, kind="stable"):
            if room <= 0:
                break
            if candidates[i]:
                allowed[i] = True
                room -= 1
    return allowed


def support_changes(symbols: Sequence[str], pre: BoolArray, allowed: BoolArray) -> str:
    """What a choice of names allowed open changes: the new positions, the closed ones."""
    opened = [symbols[int(i)] for i in np.flatnonzero(allowed & ~pre)]
    shut = [symbols[int(i)] for i in np.flatnonzero(~allowed & pre)]
    return (
        f"new positions allowed: {', '.join(opened) or 'none'}; to close completely: "
        f"{', '.join(shut) or 'none'}"
    )


@register
class MaxPositionsKind(Kind):
    r"""At most N open positions (`OpenCountBlock`, checked exactly).

    .. math:: \#\{\, i \in V : |w_i| > \epsilon \,\} \le N

    Not convex: the adjuster solves with a restriction, a set S of names allowed open
    (|S| at most N, or the pre-trade count when that is larger) and

    .. math:: |w_i| \le 0 \quad (i \notin S)

    Certificate: at a point satisfying it only names of S can be open, so the count is at
    most |S|. S is chosen per request: the stated choice (`positions_allowed`) here, which
    the adjuster replaces by the support of the closest compliant decision when the other
    rows are linear (`engine.adjust.cardinality`, through the row set's `OpenSupport`).
    The structure is fixed (one row per name, limit 0 or `MAX_WEIGHT`); the limits are
    per-request values.
    """

    name = "max_positions"

    def compile(self, spec: MaxPositions, ctx: CompileContext) -> list[RowSet]:
        snap = ctx.snap
        limit = int(concrete(spec.max))
        count = RowSet.portfolio_cap(
            OpenCountBlock(snap.n), float(limit), "max_positions.max", "open positions",
            unit="count",
        )  # fmt: skip
        closed = RowSet(
            AbsSumBlock(A=sp.identity(snap.n, format="csr"), c=np.zeros(snap.n)),
            "le",
            np.full(snap.n, MAX_WEIGHT),
            list(snap.symbols),
            "max_positions.restriction",
            of_subject("{subject} weight (restriction: not among the positions allowed open)"),
            # A held name left out must close: its row has no passive "no worse than before".
            always_active=True,
        )
        count.restriction = [closed]
        symbols = snap.symbols

        def stated(snap: Snapshot) -> tuple[BoolArray, str]:
            allowed = positions_allowed(snap.w0, snap.w_hat, limit)
            pre = np.abs(snap.w0) > OPEN_POSITION
            encoding = (
                f"restriction: at most {int(np.count_nonzero(allowed))} positions open "
                f"(limit {limit}, {int(np.count_nonzero(pre))} open before); "
                + support_changes(symbols, pre, allowed)
                + "; no other name may open"
            )
            return allowed, encoding

        support = OpenSupport(closed, stated)

        def refresh(snap: Snapshot) -> None:
            support.allow(count, *stated(snap))

        refresh(snap)
        count.refresh = refresh
        count.support = support
        return [count]
