"""`run_stress`: one `StressRequest` to its `StressResponse` (docs/stress.md).

The portfolios' weights over the universe (the names any of them holds), the scenarios of
every source, the loss matrix of the portfolios and of the firm (NAV-weighted: the firm's
P&L in a scenario is `Σ_p NAV_p · P&L_p / Σ_p NAV_p`, i.e. the P&L of the NAV-weighted
weights), its measures, and the policies' stress, VaR and CVaR rules on the same
scenarios. Bad input raises `InputError` naming the request's field.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from engine.batch.backend import Backend
from engine.batch.backend import backend as backend_named
from engine.errors import InputError
from engine.stress.measures import Measures, loss_matrix, risk_measures
from engine.stress.rules import evaluate_rules
from engine.stress.scenarios import SOURCES, build_scenarios
from engine.weights.portfolio import snapshot_of
from models import Instrument, PolicyDefinition, PolicyValidationRequest
from models.stress import (
    MAX_SCENARIO_CELLS,
    MAX_STRESS_CELLS,
    LevelRisk,
    LossSummary,
    PortfolioStress,
    RuleResult,
    ScenarioLoss,
    StressRequest,
    StressResponse,
)
from models.typing import FloatArray

__all__ = ["run_stress"]

logger = logging.getLogger(__name__)


def _portfolio_weights(
    request: StressRequest,
) -> tuple[list[dict[str, float]], list[float], dict[str, Instrument]]:
    """Each portfolio's non-zero weights and NAV, and every instrument given."""
    instruments = {i.symbol: i for i in request.instruments}
    weights: list[dict[str, float]] = []
    navs: list[float] = []
    for p, portfolio in enumerate(request.portfolios):
        state = portfolio.portfolio_state
        if state is None:
            assert portfolio.weights is not None
            weights.append({s: w for s, w in portfolio.weights.items() if w != 0.0})
            navs.append(portfolio.nav or 1.0)
            continue
        plain = PolicyValidationRequest.model_validate(
            {
                "decision": {
                    "decision_id": "stress",
                    "portfolio_id": state.portfolio_id,
                    "trades": [],
                },
                "portfolio_state": state,
                "mode": "validate",
            }
        )
        try:
            snap = snapshot_of(plain)
        except InputError as exc:
            raise InputError(f"portfolios[{p}].{exc.field}", exc.message) from exc
        weights.append(
            {s: float(w) for s, w in zip(snap.symbols, snap.w0, strict=True) if w != 0.0}
        )
        navs.append(float(snap.nav))
        for instrument in state.instruments:
            instruments.setdefault(instrument.symbol, instrument)
    return weights, navs, instruments


def _bounded(request: StressRequest, n: int) -> int:
    """Scenarios of the request; refused beyond the documented bounds."""
    S = (
        (len(request.historical.returns) if request.historical else 0)
        + len(request.factor_shocks)
        + (request.monte_carlo.scenarios if request.monte_carlo else 0)
    )
    field = (
        "monte_carlo.scenarios"
        if request.monte_carlo
        else "historical.returns"
        if request.historical
        else "factor_shocks"
    )
    P = len(request.portfolios) + 1
    if S * n > MAX_SCENARIO_CELLS:
        raise InputError(
            field,
            f"{S} scenarios x {n} names = {S * n:,} returns exceed the maximum "
            f"{MAX_SCENARIO_CELLS:,}; use fewer scenarios or split the portfolios",
        )
    if S * P * n > MAX_STRESS_CELLS:
        raise InputError(
            field,
            f"{S} scenarios x {P} portfolios (with the firm) x {n} names = {S * P * n:,} "
            f"exceed the maximum {MAX_STRESS_CELLS:,}; split the request",
        )
    return S


def _backend(name: str) -> Backend:
    try:
        return backend_named(name)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InputError("backend", str(exc)) from exc


def _figures(
    portfolio_id: str,
    nav: float,
    p: int,
    measures: Measures,
    losses: FloatArray,
    labels: Sequence[str],
    source: np.ndarray,
    rules: list[RuleResult],
    include_losses: bool,
) -> PortfolioStress:
    risk = [
        LevelRisk(
            level=level,
            var=float(measures.var[j, p]),
            cvar=float(measures.cvar[j, p]),
            var_amount=float(measures.var[j, p]) * nav,
            cvar_amount=float(measures.cvar[j, p]) * nav,
        )
        for j, level in enumerate(measures.levels)
    ]
    worst = [
        ScenarioLoss(
            index=int(s),
            label=labels[int(s)],
            source=SOURCES[int(source[int(s)])],
            loss=float(losses[int(s), p]),
        )
        for s in measures.worst[:, p]
    ]
    return PortfolioStress(
        portfolio_id=portfolio_id,
        nav=nav,
        loss=LossSummary(
            mean=float(measures.mean[p]),
            std=float(measures.std[p]),
            min=float(measures.minimum[p]),
            max=float(measures.maximum[p]),
        ),
        risk=risk,
        worst=worst,
        rules=rules,
        losses=[float(x) for x in losses[:, p]] if include_losses else None,
    )


def run_stress(request: StressRequest, policies: Sequence[PolicyDefinition] = ()) -> StressResponse:
    """The stress figures of every portfolio and of the firm (see the module docstring).

    `policies`: whose stress, var and cvar rules to evaluate (the request's inline
    `policies` take precedence when given).
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    backend = _backend(request.backend)
    weights, navs, instruments = _portfolio_weights(request)
    symbols = sorted(set().union(*weights))
    if not symbols:
        raise InputError("portfolios", "every portfolio is all cash: nothing to stress")
    S = _bounded(request, len(symbols))
    index = {s: j for j, s in enumerate(symbols)}
    W = np.zeros((len(weights) + 1, len(symbols)))
    for p, held in enumerate(weights):
        for s, w in held.items():
            W[p, index[s]] = w
    nav = np.asarray(navs)
    W[-1] = nav @ W[:-1] / nav.sum()

    mark = time.perf_counter()
    scenarios = build_scenarios(
        symbols,
        backend=backend,
        risk_model=request.risk_model,
        factor_names=request.factor_names,
        historical=request.historical,
        factor_shocks=request.factor_shocks,
        monte_carlo=request.monte_carlo,
    )
    assert len(scenarios) == S
    timings["scenarios"] = (time.perf_counter() - mark) * 1e3

    mark = time.perf_counter()
    L = loss_matrix(scenarios.returns, W, backend)
    measures = risk_measures(L, request.levels, request.worst, backend)
    timings["measures"] = (time.perf_counter() - mark) * 1e3

    mark = time.perf_counter()
    chosen = list(request.policies) if request.policies is not None else list(policies)
    universe = [instruments.get(s) or Instrument(symbol=s, price=1.0) for s in symbols]
    ids = [p.portfolio_id for p in request.portfolios] + [request.firm_id]
    rules = evaluate_rules(
        chosen,
        universe,
        W,
        ids,
        returns=scenarios.returns,
        losses=L,
        risk_model=request.risk_model,
        context=request.context,
        backend=backend.name,  # type: ignore[arg-type]
    )
    timings["rules"] = (time.perf_counter() - mark) * 1e3

    figures = [
        _figures(
            pid,
            float(nav_p),
            p,
            measures,
            L,
            scenarios.labels,
            scenarios.source,
            rules[p],
            request.include_losses,
        )
        for p, (pid, nav_p) in enumerate(zip(ids, [*navs, float(nav.sum())], strict=True))
    ]
    checked = sorted({r.policy_name for rows in rules for r in rows})
    timings["total"] = (time.perf_counter() - started) * 1e3
    logger.info(
        "stress: %d portfolios, %d names, %d scenarios on %s, %d rule rows, %.1f ms",
        len(request.portfolios),
        len(symbols),
        S,
        backend.name,
        sum(len(r) for r in rules),
        timings["total"],
    )
    return StressResponse(
        scenarios=S,
        sources=scenarios.counts(),
        backend=backend.name,
        levels=list(request.levels),
        portfolios=figures[:-1],
        firm=figures[-1],
        policies_checked=checked,
        timings_ms=timings,
    )
