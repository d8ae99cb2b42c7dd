"""Risk kinds: volatility, tracking error, parametric VaR, scenario CVaR, stress tests."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import norm

from engine.compile.blocks import AffineBlock
from engine.compile.conic_blocks import CVaRBlock, NormBlock
from engine.compile.context import IGNORED, CompileContext
from engine.compile.kinds.base import Kind, register
from engine.compile.kinds.format import of_subject
from engine.compile.rows import RowSet
from models import CVaR, StressTest, TrackingError, ValueAtRisk, Volatility
from models.contextual import concrete

__all__ = ["CVaRKind", "StressKind", "TrackingErrorKind", "VaRKind", "VolatilityKind"]

TRADING_DAYS = 252

SPARSE_LOADINGS = 2 / 3
"""A norm keeps its factor model's loadings apart (`NormBlock.loadings`) when at most this
share of them is nonzero: below it, the loadings (12 bytes a nonzero as CSR) take no more
memory than `F` (8 bytes an entry) and the direct solve's exposure rows get sparser; dense
loadings (a statistical model) would gain nothing there and be held twice."""


def _norm_block(ctx: CompileContext, *, active: bool, scale: float) -> NormBlock:
    """`scale * sqrt(y' Sigma y)` with `y = w` over V, or `w - b` over V and benchmark names."""
    snap = ctx.snap
    bench = ctx.benchmark_required() if active else {}
    extra = tuple(sorted(s for s in bench if s not in snap.index))
    universe = snap.symbols + extra
    factors = ctx.risk(universe)
    P = sp.csr_matrix(sp.eye(len(universe), snap.n))
    c = -np.array([bench.get(s, 0.0) for s in universe])
    loadings = factors.loadings
    if loadings is None or np.count_nonzero(loadings) > SPARSE_LOADINGS * loadings.size:
        return NormBlock(P=P, c=c, F=factors.F, d=factors.d, scale=scale)
    return NormBlock(
        P=P,
        c=c,
        F=factors.F,
        d=factors.d,
        scale=scale,
        loadings=sp.csr_matrix(loadings),
        root=factors.root,
    )


@register
class VolatilityKind(Kind):
    r"""Volatility, annualized.

    .. math:: \sqrt{w^T \Sigma w} \le \mathrm{max}
    """

    name = "volatility"

    def compile(self, spec: Volatility, ctx: CompileContext) -> list[RowSet]:
        block = _norm_block(ctx, active=False, scale=1.0)
        return [
            RowSet.portfolio_cap(
                block, concrete(spec.max), "volatility.max", "volatility", unit="risk"
            )
        ]


@register
class TrackingErrorKind(Kind):
    r"""Tracking error against the benchmark, annualized.

    .. math:: \sqrt{(w - b)^T \Sigma (w - b)} \le \mathrm{max}
    """

    name = "tracking_error"

    def compile(self, spec: TrackingError, ctx: CompileContext) -> list[RowSet]:
        block = _norm_block(ctx, active=True, scale=1.0)
        return [
            RowSet.portfolio_cap(
                block, concrete(spec.max), "tracking_error.max", "tracking error", unit="risk"
            )
        ]


@register
class VaRKind(Kind):
    r"""Parametric normal VaR.

    .. math:: z_{c} \sqrt{h / 252} \sqrt{w^T \Sigma w} \le \mathrm{max},
              \quad z_c = \Phi^{-1}(c)
    """

    name = "var"

    def compile(self, spec: ValueAtRisk, ctx: CompileContext) -> list[RowSet]:
        confidence = concrete(spec.confidence)
        scale = float(norm.ppf(confidence)) * np.sqrt(spec.horizon_days / TRADING_DAYS)
        block = _norm_block(ctx, active=False, scale=scale)
        what = f"{100 * confidence:g}% {spec.horizon_days:g}-day VaR"
        return [RowSet.portfolio_cap(block, concrete(spec.max), "var.max", what, unit="risk")]


@register
class CVaRKind(Kind):
    r"""Scenario CVaR of the loss (Rockafellar-Uryasev).

    .. math:: \min_\zeta \; \zeta + \frac{1}{(1-\beta) S} \sum_s (-r_s^T w - \zeta)_+
              \le \mathrm{max}
    """

    name = "cvar"

    def compile(self, spec: CVaR, ctx: CompileContext) -> list[RowSet]:
        confidence = concrete(spec.confidence)
        block = CVaRBlock(R=ctx.scenario_returns(), beta=confidence)
        what = f"{100 * confidence:g}% CVaR"
        return [RowSet.portfolio_cap(block, concrete(spec.max), "cvar.max", what, unit="loss")]


@register
class StressKind(Kind):
    r"""Per scenario `s`: the loss under its shocks.

    .. math:: -\sum_{i \in V} w_i \, \mathrm{shock}_{s,i} \le \mathrm{max\_loss}
    """

    name = "stress"

    def compile(self, spec: StressTest, ctx: CompileContext) -> list[RowSet]:
        snap = ctx.snap
        names = list(spec.scenarios)
        shocks = np.zeros((len(names), snap.n))
        for r, name in enumerate(names):
            scenario = spec.scenarios[name]
            for i, symbol in enumerate(snap.symbols):
                key: object = symbol
                if scenario.by != "symbol":
                    key = ctx.attribute(symbol, scenario.by, spec.missing)
                # "missing": "ignore" leaves the instrument out of the scenario: no shock.
                shocks[r, i] = (
                    0.0 if key is IGNORED else scenario.shocks.get(str(key), scenario.default)
                )
        block = AffineBlock(A=-shocks, c=np.zeros(len(names)), structural=False)
        return [
            RowSet(
                block,
                "le",
                np.full(len(names), concrete(spec.max_loss)),
                list(names),
                "stress.max_loss",
                of_subject("stress scenario {subject!r} loss"),
                unit="loss",
            )
        ]
