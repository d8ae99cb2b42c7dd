"""Portfolio figures of a response's `analytics` block: NAV, exposures, sectors, risk.

Computed for the pre-trade portfolio, the proposed one and the adjusted one (when there
is one), from the snapshot's weights over the universe V. What depends only on the
layout's static data (sector codes, the risk model's factors, the benchmark and scenarios
over V) is derived once per layout (`Layout.memo`, whose key covers that data); a request
then costs a few products of length n·k. A figure the request's data cannot give (no risk
model, a risk model that does not cover the benchmark, no scenarios) is null: analytics
never fail a request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from engine.compile.layout import Layout
from engine.compile.risk import RiskFactors, risk_factors
from engine.errors import InputError
from engine.tolerances import OPEN_POSITION
from models import Analytics, PolicyValidationRequest, PortfolioFigures, SectorWeight
from models.typing import FloatArray

__all__ = ["TOP_SECTORS", "VAR_CONFIDENCE", "analytics_of"]

TOP_SECTORS = 5
"""Sectors listed per portfolio, largest absolute net weight first."""

VAR_CONFIDENCE = 0.95
"""Confidence of the reported VaR (parametric normal, one day) and CVaR (scenarios)."""

_Z = float(norm.ppf(VAR_CONFIDENCE))
_TRADING_DAYS = 252.0


@dataclass(frozen=True)
class _Static:
    """One layout's static data for the figures, over V (and the benchmark's names)."""

    sector_names: list[str]
    sector_codes: np.ndarray
    factors: RiskFactors | None
    """Over V followed by the benchmark's names outside V (`extra` of them)."""
    extra: int
    benchmark: FloatArray | None
    """Benchmark weights over V and then the names outside V (None: no benchmark)."""
    scenarios: FloatArray | None
    """Scenario returns (S x n over V), None without scenarios covering V."""
    target: FloatArray | None = None
    """Target weights over V (None: the state has none)."""
    target_outside: FloatArray | None = None
    """Target weights of the names outside V (their drift does not move)."""


def _static(layout: Layout, request: PolicyValidationRequest) -> _Static:
    memo = layout.memo.get("figures")
    if isinstance(memo, _Static):
        return memo
    snap = layout.snap
    sectors = [snap.instruments[s].sector or "(none)" for s in snap.symbols]
    names = sorted(set(sectors))
    position = {name: k for k, name in enumerate(names)}
    codes = np.array([position[s] for s in sectors], dtype=np.intp)
    state = request.portfolio_state
    outside = [s for s in snap.benchmark if s not in snap.index]
    universe = (*snap.symbols, *outside)
    factors = None
    if state.risk_model is not None:
        try:
            factors = risk_factors(state.risk_model, universe, needed_by="analytics")
        except InputError:
            factors = None
    benchmark = None
    if state.benchmark is not None:
        benchmark = np.array([snap.benchmark.get(s, 0.0) for s in universe], dtype=float)
    scenarios = None
    if state.scenarios is not None:
        column = {s: j for j, s in enumerate(state.scenarios.symbols)}
        if all(s in column for s in snap.symbols):
            returns = np.asarray(state.scenarios.returns, dtype=float)
            scenarios = returns[:, [column[s] for s in snap.symbols]]
    target = target_outside = None
    if snap.target is not None:
        target = np.array([snap.target.get(s, 0.0) for s in snap.symbols])
        target_outside = np.array([x for s, x in snap.target.items() if s not in snap.index])
    static = _Static(
        names, codes, factors, len(outside), benchmark, scenarios, target, target_outside
    )
    layout.memo["figures"] = static
    return static


def _risk(factors: RiskFactors, y: FloatArray) -> float:
    exposure = factors.F.T @ y
    variance = float(exposure @ exposure)
    if factors.d is not None:
        variance += float(np.sum((factors.d * y) ** 2))
    return float(np.sqrt(max(variance, 0.0)))


def _cvar(losses: FloatArray) -> float:
    """Mean loss of the worst (1 - confidence) share of equally likely scenarios.

    The Rockafellar-Uryasev value: with k = (1 - confidence) S, the worst floor(k) losses
    count fully and the next one by the fraction left (losses sorted worst first).
    """
    k = (1.0 - VAR_CONFIDENCE) * len(losses)
    whole = min(int(np.floor(k)), len(losses))
    total = float(losses[:whole].sum())
    if whole < len(losses):
        total += (k - whole) * float(losses[whole])
    return total / k


def _figures(static: _Static, nav: float, w: FloatArray) -> PortfolioFigures:
    net_by_sector = np.bincount(static.sector_codes, weights=w, minlength=len(static.sector_names))
    order = np.argsort(-np.abs(net_by_sector), kind="stable")[:TOP_SECTORS]
    volatility = tracking = var = cvar = None
    drift_total = drift_max = None
    if static.target is not None and static.target_outside is not None:
        drift = np.concatenate([np.abs(w - static.target), np.abs(static.target_outside)])
        drift_total = float(drift.sum())
        drift_max = float(drift.max()) if len(drift) else 0.0
    padded = np.concatenate([w, np.zeros(static.extra)])
    if static.factors is not None:
        volatility = _risk(static.factors, padded)
        var = _Z * np.sqrt(1.0 / _TRADING_DAYS) * volatility
        if static.benchmark is not None:
            tracking = _risk(static.factors, padded - static.benchmark)
    if static.scenarios is not None and len(static.scenarios):
        cvar = _cvar(np.sort(-(static.scenarios @ w))[::-1])
    # Built without validation (`model_construct`): every value is a float or an int this
    # module computed; validating 13 small models cost two thirds of the block's time.
    return PortfolioFigures.model_construct(
        nav=nav,
        positions=int(np.count_nonzero(np.abs(w) > OPEN_POSITION)),
        gross_exposure=float(np.abs(w).sum()),
        net_exposure=float(w.sum()),
        cash_weight=float(1.0 - w.sum()),
        top_sectors=[
            SectorWeight.model_construct(
                sector=static.sector_names[k], weight=float(net_by_sector[k])
            )
            for k in order
            if net_by_sector[k] != 0.0
        ],
        volatility=volatility,
        tracking_error=tracking,
        var_95_1d=None if var is None else float(var),
        cvar_95=cvar,
        drift_total=drift_total,
        drift_max=drift_max,
    )


def analytics_of(
    layout: Layout, request: PolicyValidationRequest, adjusted: FloatArray | None
) -> Analytics:
    """The figures of the pre-trade, proposed and (if any) adjusted weights."""
    static = _static(layout, request)
    snap = layout.snap
    return Analytics(
        pre_trade=_figures(static, snap.nav, snap.w0),
        proposed=_figures(static, snap.nav, snap.w_hat),
        adjusted=None if adjusted is None else _figures(static, snap.nav, adjusted),
    )
