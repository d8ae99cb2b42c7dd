"""Regulatory rule kinds: UCITS 5/10/40, 1940 Act 75-5-10, Rules 35d-1, 22e-4 and 18f-4.

Each is exact where the rule is convex. The UCITS 40% aggregate is not: its row is checked
exactly (`AboveThresholdSumBlock`) and the adjuster solves with a convex restriction chosen
per request (see `UcitsKind`), whose every point satisfies the exact rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import norm

from engine.compile.blocks import AffineBlock
from engine.compile.context import IGNORED, CompileContext
from engine.compile.kinds.base import Kind, register, select_where
from engine.compile.kinds.format import fixed, of_subject, pct
from engine.compile.kinds.risk import TRADING_DAYS, _norm_block
from engine.compile.piecewise import (
    THRESHOLD_TOLERANCE,
    AboveThresholdSumBlock,
    CappedSumBlock,
    PositivePartSumBlock,
)
from engine.compile.rows import RowSet
from engine.errors import MissingDataError
from engine.weights.portfolio import Snapshot
from models import (
    DerivativesVaR,
    Diversified75510,
    IlliquidLimit,
    MissingDefault,
    NamesRule80,
    Ucits51040,
)
from models.contextual import concrete
from models.typing import BoolArray, FloatArray

__all__ = [
    "DerivativesVaRKind",
    "DiversifiedKind",
    "IlliquidLimitKind",
    "NamesRuleKind",
    "UcitsKind",
    "allowed_above",
]


def _membership(groups: list[str], member_of: dict[int, str], n: int) -> sp.csr_matrix:
    """0/1 matrix: row g picks the symbols (by index in V) of group `groups[g]`."""
    position = {g: r for r, g in enumerate(groups)}
    cols = sorted(member_of)
    rows = [position[member_of[i]] for i in cols]
    return sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(groups), n))


def _exempt(ctx: CompileContext, where: dict[str, list[Any]] | None, missing: Any) -> set[str]:
    """The symbols an `exempt` filter matches.

    An exemption is favourable treatment, so an instrument lacking an attribute the filter
    reads is simply not exempt (no error, whatever `missing` says), unless `missing` gives
    a default value, which is then matched.
    """
    if not where:
        return set()
    lenient = missing if isinstance(missing, MissingDefault) else "ignore"
    return set(select_where(ctx, where, lenient, ctx.snap.symbols))


def _weight_row(ctx: CompileContext, symbols: Sequence[str]) -> AffineBlock:
    """One row: the total weight of `symbols`."""
    picked = set(symbols)
    ones = np.array([1.0 if s in picked else 0.0 for s in ctx.snap.symbols])
    return AffineBlock(A=sp.csr_matrix(ones[None, :]), c=np.zeros(1))


def allowed_above(
    y0: FloatArray,
    y_hat: FloatArray,
    *,
    threshold: float,
    single_max: float,
    aggregate_max: float,
) -> BoolArray:
    """The issuers the UCITS restriction lets exceed the threshold (a 0/1 mask).

    Every issuer above the threshold before the decision is in (so that not trading stays
    feasible). If those already exceed `aggregate_max` no other issuer is added; otherwise
    the issuers the proposal takes above the threshold are added, largest first, while
    their proposed weights (capped at `single_max`) fit within `aggregate_max` together,
    and while the members' pre-trade weights stay within it too (so that the restriction's
    own pre-trade value never exceeds the exact rule's bound).
    """
    above = threshold + THRESHOLD_TOLERANCE
    chosen = y0 > above
    pre_total = float(np.maximum(y0[chosen], 0.0).sum())
    if pre_total > aggregate_max:
        return chosen
    size = np.clip(y_hat, 0.0, single_max)
    total = float(size[chosen].sum())
    for g in np.argsort(-y_hat, kind="stable"):
        if chosen[g] or y_hat[g] <= above:
            continue
        pre_g = max(float(y0[g]), 0.0)
        if total + size[g] <= aggregate_max and pre_total + pre_g <= aggregate_max:
            chosen[g] = True
            total += float(size[g])
            pre_total += pre_g
    return chosen


@register
class UcitsKind(Kind):
    r"""UCITS Art. 52 5/10/40 per issuer group g (exempt instruments left out).

    .. math::
        y_g \le \mathrm{single\_max} \quad (\texttt{.single}), \qquad
        \sum_{g:\, y_g > \theta} y_g \le \mathrm{aggregate\_max} \quad (\texttt{.aggregate})

    The aggregate row is checked exactly. It is not convex, so the adjuster solves with a
    restriction: a set S of issuers allowed above the threshold θ (`allowed_above`) and

    .. math::
        y_g \le \theta \ (g \notin S), \quad y_g \le \mathrm{single\_max} \ (g \in S), \quad
        \sum_g \max(y_g - \theta [g \notin S], 0) \le \mathrm{aggregate\_max}

    Certificate: at a point satisfying it, every issuer above θ is in S, so the exact
    aggregate is at most :math:`\sum_{g \in S} \max(y_g, 0)`, which is at most the left side
    of the last row. S, the caps and the shifts are per-request values of a fixed structure.
    """

    name = "ucits_5_10_40"

    def compile(self, spec: Ucits51040, ctx: CompileContext) -> list[RowSet]:
        single_max = concrete(spec.single_max)
        threshold = concrete(spec.threshold)
        aggregate_max = concrete(spec.aggregate_max)
        snap = ctx.snap
        exempt = _exempt(ctx, spec.exempt, spec.missing)
        member_of: dict[int, str] = {}
        for i, symbol in enumerate(snap.symbols):
            if symbol in exempt:
                continue
            value = ctx.attribute(symbol, spec.group_by, spec.missing)
            if value is not IGNORED:
                member_of[i] = str(value)
        groups = sorted(set(member_of.values()))
        if not groups:
            return []
        G = _membership(groups, member_of, snap.n)
        by = spec.group_by
        single = RowSet(
            AffineBlock(A=G, c=np.zeros(len(groups))),
            "le",
            np.full(len(groups), single_max),
            list(groups),
            "ucits_5_10_40.single",
            of_subject(by + " {subject} weight"),
        )
        caps = RowSet(
            AffineBlock(A=G, c=np.zeros(len(groups))),
            "le",
            np.full(len(groups), threshold),
            list(groups),
            "ucits_5_10_40.restriction",
            of_subject(by + " {subject} weight (restriction)"),
        )
        shifted = PositivePartSumBlock(G=G, c=np.zeros(len(groups)))
        total = RowSet.portfolio_cap(
            shifted,
            aggregate_max,
            "ucits_5_10_40.aggregate",
            f"weight of {by}s allowed above {pct(threshold)} (restriction)",
        )
        exact = AboveThresholdSumBlock(G=G, threshold=threshold)
        aggregate = RowSet.portfolio_cap(
            exact,
            aggregate_max,
            "ucits_5_10_40.aggregate",
            f"weight of {by}s above {pct(threshold)}",
        )
        aggregate.restriction = [caps, total]

        def refresh(snap: Snapshot) -> None:
            chosen = allowed_above(
                np.asarray(G @ snap.w0).ravel(),
                np.asarray(G @ snap.w_hat).ravel(),
                threshold=threshold,
                single_max=single_max,
                aggregate_max=aggregate_max,
            )
            caps.limits = np.where(chosen, single_max, threshold)
            shifted.c = np.where(chosen, 0.0, -threshold)
            names = ", ".join(g for g, c in zip(groups, chosen, strict=True) if c) or "none"
            aggregate.encoding = (
                f"restriction: {by}s allowed above {pct(threshold)}: {names}; each at "
                f"most {pct(single_max)} and together at most "
                f"{pct(aggregate_max)}; every other {by} at most {pct(threshold)}"
            )

        refresh(snap)
        aggregate.refresh = refresh
        return [single, aggregate]


@register
class DiversifiedKind(Kind):
    r"""1940 Act section 5(b)(1) diversified-company basket.

    .. math::
        c + \sum_{i \in E} w_i + \sum_g \min\Big(y_g,\ \mathrm{issuer\_cap},\
        \mathrm{voting\_cap} \cdot \frac{\sum_{i \in g} \mathrm{so}_i\, p_i}{\mathrm{NAV}}\Big)
        \ge \mathrm{basket\_min}

    with cash :math:`c = 1 - \sum_i w_i`, exempt instruments E and issuer weights
    :math:`y_g` over the other instruments (so = shares outstanding). A concave function
    above a constant: convex, and exact. Only purchases can lower it (a sale adds to cash
    at least what it takes from the capped sum), matching section 5(c).
    """

    name = "diversified_75_5_10"

    def compile(self, spec: Diversified75510, ctx: CompileContext) -> list[RowSet]:
        basket_min = concrete(spec.basket_min)
        issuer_cap = concrete(spec.issuer_cap)
        voting_cap = None if spec.voting_cap is None else concrete(spec.voting_cap)
        snap = ctx.snap
        exempt = _exempt(ctx, spec.exempt, spec.missing)
        a = np.zeros(snap.n)
        member_of: dict[int, str] = {}
        shares = np.zeros(snap.n)
        for i, symbol in enumerate(snap.symbols):
            if symbol in exempt:
                continue
            a[i] = -1.0  # held outside the basket: it is not cash and counts only if capped
            value = ctx.attribute(symbol, spec.group_by, spec.missing)
            if value is IGNORED:
                continue
            if voting_cap is not None:
                count = ctx.numeric_attribute(symbol, "shares_outstanding", spec.missing)
                if count is IGNORED:
                    continue
                if count < 0:
                    raise MissingDataError(
                        ctx.attribute_path(symbol, "shares_outstanding"),
                        f"{ctx.where()}: shares_outstanding of {symbol} must be >= 0",
                    )
                shares[i] = count
            member_of[i] = str(value)
        groups = sorted(set(member_of.values()))
        G = _membership(groups, member_of, snap.n)

        def caps(snap: Snapshot) -> FloatArray:
            cap = np.full(len(groups), issuer_cap)
            if voting_cap is not None:
                voting = voting_cap * np.asarray(G @ (shares * snap.prices)).ravel()
                cap = np.minimum(cap, voting / snap.nav)
            return cap

        block = CappedSumBlock(a=a, k=1.0, G=G, cap=caps(snap))

        def refresh(snap: Snapshot) -> None:
            block.cap = caps(snap)

        voting = "" if voting_cap is None else f" and {pct(voting_cap)} of voting shares"
        what = f"diversified basket (cash, exempt, {spec.group_by}s up to {pct(issuer_cap)}"
        return [
            RowSet(
                block,
                "ge",
                np.array([basket_min]),
                [None],
                "diversified_75_5_10.basket_min",
                fixed(what + voting + ")"),
                refresh=refresh,
            )
        ]


@register
class NamesRuleKind(Kind):
    r"""Rule 35d-1 names rule: the instruments matching `where` (set Q).

    .. math:: \sum_{i \in Q} w_i \ge \mathrm{min}
    """

    name = "names_rule_80"

    def compile(self, spec: NamesRule80, ctx: CompileContext) -> list[RowSet]:
        floor = concrete(spec.min)
        qualifying = select_where(ctx, spec.where, spec.missing, ctx.snap.symbols)
        return [
            RowSet(
                _weight_row(ctx, qualifying),
                "ge",
                np.array([floor]),
                [None],
                "names_rule_80.min",
                fixed("weight of investments the fund's name suggests"),
            )
        ]


@register
class IlliquidLimitKind(Kind):
    r"""Rule 22e-4 illiquid investments (set L: `attribute` equal to `value`).

    .. math::
        \sum_{i \in L} w_i \le \mathrm{max}, \qquad
        m \, (w_i - w^0_i) \le 0 \quad (i \in L,\ \texttt{.no\_purchase})

    with :math:`m = 1` when the pre-trade illiquid weight is already above `max`, else 0:
    no illiquid investment may be acquired then, even while the total falls.
    """

    name = "illiquid_limit"

    def compile(self, spec: IlliquidLimit, ctx: CompileContext) -> list[RowSet]:
        ceiling = concrete(spec.max)
        snap = ctx.snap
        illiquid = select_where(ctx, {spec.attribute: [spec.value]}, spec.missing, snap.symbols)
        total = RowSet.portfolio_cap(
            _weight_row(ctx, illiquid), ceiling, "illiquid_limit.max", "illiquid weight"
        )
        if not illiquid:
            return [total]
        idx = [snap.index[s] for s in illiquid]
        select = ctx.selection(idx).toarray()
        block = AffineBlock(A=select, c=np.zeros(len(idx)), structural=False)

        def refresh(snap: Snapshot) -> None:
            armed = float(snap.w0[idx].sum() > ceiling + THRESHOLD_TOLERANCE)
            block.A = armed * select
            block.c = -armed * snap.w0[idx]

        refresh(snap)
        purchases = RowSet(
            block,
            "le",
            np.zeros(len(idx)),
            list(illiquid),
            "illiquid_limit.no_purchase",
            of_subject(
                "{subject} purchase (weight change) while illiquid weight exceeds " + pct(ceiling)
            ),
            refresh=refresh,
        )
        return [total, purchases]


@register
class DerivativesVaRKind(Kind):
    r"""Rule 18f-4 VaR, parametric normal, :math:`s = \Phi^{-1}(c) \sqrt{h/252}`.

    .. math::
        s \sqrt{w^T \Sigma w} \le \mathrm{max} \ (\text{absolute}), \qquad
        s \sqrt{w^T \Sigma w} \le \mathrm{max\_ratio} \cdot s \sqrt{b^T \Sigma b}
        \ (\text{relative})

    The benchmark b is the designated reference portfolio. Its VaR depends only on the
    benchmark and the risk model, which are part of the layout's cache key, so the relative
    limit is computed once per layout.
    """

    name = "derivatives_var"

    def compile(self, spec: DerivativesVaR, ctx: CompileContext) -> list[RowSet]:
        ceiling = concrete(spec.max)
        max_ratio = concrete(spec.max_ratio)
        confidence = concrete(spec.confidence)
        scale = float(norm.ppf(confidence)) * np.sqrt(spec.horizon_days / TRADING_DAYS)
        block = _norm_block(ctx, active=False, scale=scale)
        horizon = f"{100 * confidence:g}% {spec.horizon_days:g}-day VaR"
        if spec.mode == "absolute":
            return [
                RowSet.portfolio_cap(block, ceiling, "derivatives_var.max", horizon, unit="risk")
            ]
        reference = _reference_var(ctx, scale)
        what = f"{horizon} (limit {max_ratio:g} x reference portfolio VaR {pct(reference)})"
        return [
            RowSet.portfolio_cap(
                block, max_ratio * reference, "derivatives_var.max_ratio", what, unit="risk"
            )
        ]


def _reference_var(ctx: CompileContext, scale: float) -> float:
    """The VaR of the benchmark weights (the designated reference portfolio)."""
    bench = ctx.benchmark_required()
    universe = tuple(sorted(bench))
    factors = ctx.risk(universe)
    b = np.array([bench[s] for s in universe])
    variance = float(np.sum((factors.F.T @ b) ** 2))
    if factors.d is not None:
        variance += float(np.sum((factors.d * b) ** 2))
    return scale * float(np.sqrt(variance))
