"""Portfolio- and group-level kinds: limits on aggregates of the weights.

Groups, gross and net exposure, cash, attribute exposure, concentration and turnover (the
per-position kinds are in `positions`, the risk kinds in `risk`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from engine.compile.blocks import AbsSumBlock, AffineBlock
from engine.compile.conic_blocks import SumLargestAbsBlock
from engine.compile.context import IGNORED, CompileContext
from engine.compile.kinds.base import Kind, bound_of, register
from engine.compile.kinds.currencies import cash_by_currency
from engine.compile.kinds.format import fixed
from engine.compile.rows import BOUNDS, RowSet
from engine.weights.portfolio import Snapshot
from models import (
    Cash,
    Concentration,
    Exposure,
    GrossExposure,
    GroupLimit,
    NetExposure,
    Turnover,
)
from models.contextual import concrete

__all__ = [
    "CashKind",
    "ConcentrationKind",
    "ExposureKind",
    "GrossExposureKind",
    "GroupLimitKind",
    "NetExposureKind",
    "TurnoverKind",
]


def _ones(n: int) -> sp.csr_matrix:
    return sp.csr_matrix(np.ones((1, n)))


def _bounded_rows(block: AffineBlock, spec: Any, vtype: str, what: str) -> list[RowSet]:
    """One row per bound present on `spec` (`<vtype>.max`, `<vtype>.min`)."""
    out = []
    for bound, sense in BOUNDS:
        limit = getattr(spec, bound)
        if limit is not None:
            limit = concrete(limit)
            out.append(
                RowSet(
                    block,
                    sense,
                    np.array([limit]),
                    [None],
                    f"{vtype}.{bound}",
                    fixed(what),
                )
            )
    return out


def _group_describer(attribute: str, measure: str) -> Callable[[str | None], str]:
    return lambda group: f"{attribute} {group} {measure}weight"


@register
class GroupLimitKind(Kind):
    r"""Per group `g` of an attribute's values among V (and benchmark names when active).

    .. math::
        \mathrm{min}_g \le \sum_{i \in g} w_i \le \mathrm{max}_g \quad
        (\text{gross: } |w_i|, \text{ active: } w_i - b_i)
    """

    name = "group_limit"

    def compile(self, spec: GroupLimit, ctx: CompileContext) -> list[RowSet]:
        snap = ctx.snap
        bench = ctx.benchmark_required() if spec.active else {}
        member_of = {}
        for s in dict.fromkeys([*snap.symbols, *bench]):
            value = ctx.attribute(s, spec.attribute, spec.missing)
            if value is not IGNORED:
                member_of[s] = str(value)
        groups = sorted(set(member_of.values()))
        position = {g: r for r, g in enumerate(groups)}
        in_v = [(position[member_of[s]], i) for i, s in enumerate(snap.symbols) if s in member_of]
        G = sp.csr_matrix(
            (np.ones(len(in_v)), ([r for r, _ in in_v], [i for _, i in in_v])),
            shape=(len(groups), snap.n),
        )
        b_v = np.array([bench.get(s, 0.0) if s in member_of else 0.0 for s in snap.symbols])
        outside = np.zeros(len(groups))  # benchmark weight (or |weight|) of names outside V
        for s, weight in bench.items():
            if s in member_of and s not in snap.index:
                gross = spec.measure == "gross"
                outside[position[member_of[s]]] += abs(weight) if gross else weight
        measure = ("active " if spec.active else "") + ("gross " if spec.measure == "gross" else "")
        out = []
        for bound, sense in BOUNDS:
            rows, limits = [], []
            for g in groups:
                limit = bound_of((spec.per_group or {}).get(g), spec, bound)
                if limit is not None:
                    rows.append(position[g])
                    limits.append(limit)
            if not rows:
                continue
            Gr = G[rows]
            block: AffineBlock | AbsSumBlock
            if spec.measure == "gross":
                block = AbsSumBlock(
                    A=sp.identity(snap.n, format="csr"), c=-b_v, G=Gr, k=outside[rows]
                )
            else:
                block = AffineBlock(A=Gr, c=-(Gr @ b_v) - outside[rows])
            out.append(
                RowSet(
                    block,
                    sense,
                    np.array(limits),
                    [groups[r] for r in rows],
                    f"group_limit.{bound}",
                    _group_describer(spec.attribute, measure),
                )
            )
        return out


@register
class GrossExposureKind(Kind):
    r"""Gross exposure.

    .. math:: \sum_{i \in V} |w_i| \le \mathrm{max}
    """

    name = "gross_exposure"

    def compile(self, spec: GrossExposure, ctx: CompileContext) -> list[RowSet]:
        n = ctx.snap.n
        block = AbsSumBlock(A=sp.identity(n, format="csr"), c=np.zeros(n), G=_ones(n))
        return [
            RowSet.portfolio_cap(block, concrete(spec.max), "gross_exposure.max", "gross exposure")
        ]


@register
class NetExposureKind(Kind):
    r"""Net exposure.

    .. math:: \mathrm{min} \le \sum_{i \in V} w_i \le \mathrm{max}
    """

    name = "net_exposure"

    def compile(self, spec: NetExposure, ctx: CompileContext) -> list[RowSet]:
        block = AffineBlock(A=_ones(ctx.snap.n), c=np.zeros(1))
        return _bounded_rows(block, spec, "net_exposure", "net exposure")


@register
class CashKind(Kind):
    r"""Cash weight (with `by_currency`: per currency, see `currencies.cash_by_currency`).

    .. math:: \mathrm{min} \le 1 - \sum_{i \in V} w_i \le \mathrm{max}
    """

    name = "cash"

    def compile(self, spec: Cash, ctx: CompileContext) -> list[RowSet]:
        if spec.by_currency:
            return cash_by_currency(spec, ctx)
        block = AffineBlock(A=-_ones(ctx.snap.n), c=np.ones(1))
        return _bounded_rows(block, spec, "cash", "cash weight")


@register
class ExposureKind(Kind):
    r"""Exposure to a numeric attribute x (beta, ESG score, duration ...).

    .. math:: \mathrm{min} \le \sum_i (w_i - b_i) x_i \le \mathrm{max}
              \quad (b = 0 \text{ unless active})
    """

    name = "exposure"

    def compile(self, spec: Exposure, ctx: CompileContext) -> list[RowSet]:
        snap = ctx.snap
        x = np.zeros(snap.n)
        for i, s in enumerate(snap.symbols):
            value = ctx.numeric_attribute(s, spec.attribute, spec.missing)
            x[i] = 0.0 if value is IGNORED else value
        offset = 0.0
        if spec.active:
            for s, weight in ctx.benchmark_required().items():
                value = ctx.numeric_attribute(s, spec.attribute, spec.missing)
                if value is not IGNORED:
                    offset -= weight * value
        block = AffineBlock(A=x[None, :], c=np.array([offset]), structural=False)
        what = f"{'active ' if spec.active else ''}{spec.attribute} exposure"
        return _bounded_rows(block, spec, "exposure", what)


@register
class ConcentrationKind(Kind):
    r"""Concentration: the largest positions together.

    .. math:: \text{sum of the } k \text{ largest } |w_i| \le \mathrm{max}
    """

    name = "concentration"

    def compile(self, spec: Concentration, ctx: CompileContext) -> list[RowSet]:
        block = SumLargestAbsBlock(n=ctx.snap.n, top_k=spec.top_k)
        return [
            RowSet.portfolio_cap(
                block, concrete(spec.max), "concentration.max", f"top-{spec.top_k} concentration"
            )
        ]


@register
class TurnoverKind(Kind):
    r"""Turnover (always an active breach).

    .. math:: \sum_{i \in V} |w_i - w^0_i| \le \mathrm{max}
    """

    name = "turnover"

    def compile(self, spec: Turnover, ctx: CompileContext) -> list[RowSet]:
        n = ctx.snap.n
        block = AbsSumBlock(A=sp.identity(n, format="csr"), c=-ctx.snap.w0, G=_ones(n))

        def refresh(snap: Snapshot) -> None:
            block.c = -snap.w0

        return [
            RowSet.portfolio_cap(
                block,
                concrete(spec.max),
                "turnover.max",
                "turnover",
                always_active=True,
                refresh=refresh,
            )
        ]
