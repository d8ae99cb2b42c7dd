"""Scenarios: returns of every name of the universe, one row per scenario.

Three sources, in this order in the matrix:

- **historical**: a returns table (rows = dates, columns = symbols), taken as it is. Every
  name of the universe needs a column (a missing one is an error naming it).
- **factor shocks**: named factor moves `f` (the other factors 0) mapped through the
  exposures, `r = B f`; specific returns are zero. Needs a factor model.
- **Monte Carlo**: `S` equally likely draws from the risk model at a horizon of `h` days,
  `r = sqrt(h / 252) (F z + d ∘ e)` with `z ~ N(0, I_k)`, `e ~ N(0, I_n)` and
  `Σ = F Fᵀ + diag(d²)` the model's covariance over the universe (the factor form: `F =
  B Σ_f^{1/2}`, `d` the specific volatilities; a full covariance: `F = Σ^{1/2}`, `d = 0`).

Reproducibility: a seed fixes the draws for a backend. On JAX, scenario `s` is drawn from
`fold_in(PRNGKey(seed), s)`; on NumPy, rows are drawn in order from
`default_rng(seed)`. Either way the draws do not depend on the chunk size; the two backends
draw different (equally valid) samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.batch.backend import Backend
from engine.compile.risk import risk_factors
from engine.errors import InputError
from models import RiskModel
from models.stress import FactorShock, HistoricalScenarios, MonteCarlo
from models.typing import FloatArray

__all__ = ["SOURCES", "TRADING_DAYS", "Scenarios", "build_scenarios", "monte_carlo_returns"]

TRADING_DAYS = 252
SOURCES = ("historical", "factor_shock", "monte_carlo")
"""Source codes: `Scenarios.source[s]` indexes this tuple."""
DRAW_CHUNK = 4096
"""Monte Carlo rows drawn at once: the draw's temporaries are O(chunk x (k + n))."""


@dataclass
class Scenarios:
    """`returns[s, j]`: the return of `symbols[j]` in scenario s; one label and source each."""

    symbols: tuple[str, ...]
    returns: FloatArray
    labels: list[str]
    source: np.ndarray
    """(S,) int: index into `SOURCES`."""

    def __len__(self) -> int:
        return int(self.returns.shape[0])

    def counts(self) -> dict[str, int]:
        """Scenarios per source."""
        return {name: int(np.sum(self.source == j)) for j, name in enumerate(SOURCES)}


def _historical(table: HistoricalScenarios, symbols: Sequence[str]) -> FloatArray:
    column = {s: j for j, s in enumerate(table.symbols)}
    absent = [s for s in symbols if s not in column]
    if absent:
        raise InputError(
            "historical.symbols",
            f"the returns table lacks {len(absent)} name(s) the portfolios hold: "
            f"{', '.join(absent[:10])}" + (" ..." if len(absent) > 10 else ""),
        )
    returns = np.asarray(table.returns, dtype=float)
    return returns[:, [column[s] for s in symbols]]


def _factor_names(model: RiskModel, names: Sequence[str] | None) -> list[str]:
    assert model.factor_covariance is not None
    k = len(model.factor_covariance)
    if names is None:
        return [f"factor_{j}" for j in range(k)]
    if len(names) != k or len(set(names)) != k:
        raise InputError(
            "factor_names", f"give {k} distinct names, one per factor of the risk model"
        )
    return list(names)


def _shocks(
    shocks: Sequence[FactorShock],
    model: RiskModel | None,
    names: Sequence[str] | None,
    symbols: Sequence[str],
) -> FloatArray:
    if model is None or model.factor_loadings is None or model.factor_covariance is None:
        raise InputError("factor_shocks", "factor shocks need a factor model in risk_model")
    factor_names = _factor_names(model, names)
    position = {name: j for j, name in enumerate(factor_names)}
    moves = np.zeros((len(shocks), len(factor_names)))
    for s, shock in enumerate(shocks):
        for name, value in shock.factors.items():
            if name not in position:
                raise InputError(
                    f"factor_shocks[{s}].factors.{name}",
                    f"unknown factor; the model's factors are {', '.join(factor_names)}",
                )
            moves[s, position[name]] = value
    absent = [s for s in symbols if s not in model.factor_loadings]
    if absent:
        raise InputError(
            "risk_model.factor_loadings", f"factor shocks need exposures of {', '.join(absent)}"
        )
    loadings = np.array([model.factor_loadings[s] for s in symbols], dtype=float)
    result: FloatArray = moves @ loadings.T
    return result


def monte_carlo_returns(
    model: RiskModel,
    symbols: Sequence[str],
    spec: MonteCarlo,
    backend: Backend,
) -> FloatArray:
    """(S, n) seeded draws from the model at the horizon (see the module docstring)."""
    try:
        factors = risk_factors(model, tuple(symbols), needed_by="monte_carlo")
    except InputError as exc:
        raise InputError("risk_model", exc.message) from exc
    scale = float(np.sqrt(spec.horizon_days / TRADING_DAYS))
    F = np.asarray(factors.F, dtype=float) * scale
    d = None if factors.d is None else np.asarray(factors.d, dtype=float) * scale
    n, k = F.shape
    width = k + (n if d is not None else 0)
    S = spec.scenarios
    out = np.empty((S, n))
    if backend.name == "jax":
        draw = _jax_draws(spec.seed, width)
    else:
        rng = np.random.default_rng(spec.seed)
    for start in range(0, S, DRAW_CHUNK):
        stop = min(start + DRAW_CHUNK, S)
        if backend.name == "jax":
            z = draw(start, stop)
        else:
            z = rng.standard_normal((stop - start, width))
        chunk = z[:, :k] @ F.T
        if d is not None:
            chunk += z[:, k:] * d
        out[start:stop] = chunk
    return out


_JAX_ROWS: dict[int, Any] = {}
"""The compiled draw of `DRAW_CHUNK` rows of a width, kept across requests."""


def _jax_draws(seed: int, width: int) -> Callable[[int, int], FloatArray]:
    """`draw(start, stop)`: rows start..stop-1, row s from `fold_in(PRNGKey(seed), s)`."""
    import jax

    rows = _JAX_ROWS.get(width)
    if rows is None:

        def draw_rows(key: Any, index: Any) -> Any:
            def one(i: Any) -> Any:
                return jax.random.normal(jax.random.fold_in(key, i), (width,))

            return jax.vmap(one)(index)

        rows = _JAX_ROWS[width] = jax.jit(draw_rows)
    key = jax.random.PRNGKey(seed)

    def draw(start: int, stop: int) -> FloatArray:
        index = np.arange(start, start + DRAW_CHUNK, dtype=np.uint32)  # one compiled shape
        return np.asarray(rows(key, index), dtype=float)[: stop - start]

    return draw


def build_scenarios(
    symbols: Sequence[str],
    *,
    backend: Backend,
    risk_model: RiskModel | None = None,
    factor_names: Sequence[str] | None = None,
    historical: HistoricalScenarios | None = None,
    factor_shocks: Sequence[FactorShock] = (),
    monte_carlo: MonteCarlo | None = None,
) -> Scenarios:
    """The scenarios of every source given, over `symbols`; bad input raises `InputError`."""
    parts: list[FloatArray] = []
    labels: list[str] = []
    sources: list[np.ndarray] = []
    if historical is not None:
        parts.append(_historical(historical, symbols))
        rows = len(historical.returns)
        labels += historical.labels or [f"hist-{s}" for s in range(rows)]
        sources.append(np.full(rows, 0))
    if factor_shocks:
        parts.append(_shocks(factor_shocks, risk_model, factor_names, symbols))
        labels += [shock.name for shock in factor_shocks]
        sources.append(np.full(len(factor_shocks), 1))
    if monte_carlo is not None:
        if risk_model is None:
            raise InputError("monte_carlo", "Monte Carlo draws need risk_model")
        parts.append(monte_carlo_returns(risk_model, symbols, monte_carlo, backend))
        width = len(str(monte_carlo.scenarios - 1))
        labels += [f"mc-{s:0{width}d}" for s in range(monte_carlo.scenarios)]
        sources.append(np.full(monte_carlo.scenarios, 2))
    if not parts:
        raise InputError("scenarios", "give historical, factor_shocks or monte_carlo")
    return Scenarios(
        symbols=tuple(symbols),
        returns=np.concatenate(parts, axis=0),
        labels=labels,
        source=np.concatenate(sources).astype(np.int64),
    )
