r"""The loss distribution and its measures, over S equally likely scenarios.

Losses are `L[s, p] = -r_s · w_p` (fractions of NAV; P&L = `r_s · w_p`). At a level β, with
`tail = (1 - β) S`, the losses in decreasing order `L_(1) ≥ L_(2) ≥ …` and
`m = ⌊tail⌋` (snapped as the checker snaps it, `CVAR_TAIL_SNAP`):

- **VaR_β** `= L_(m+1)`, the ⌈βS⌉-th smallest loss: the smallest loss not exceeded in at
  least a fraction β of the scenarios (the ζ at which the Rockafellar-Uryasev minimum is
  attained).
- **CVaR_β** `= (L_(1) + … + L_(m) + (tail - m) L_(m+1)) / tail`: the worst `tail`
  scenarios averaged, the boundary one with its fractional weight. This is the
  `cvar` kind's value exactly (`engine.compile.conic_blocks.cvar_of_losses`), so a `cvar`
  rule over the same scenarios reports the same number.

Everything runs on the backend (JAX `jit`, 64-bit, or NumPy) over arrays of one shape; the
loss matrix is formed in chunks of scenarios (memory O(chunk x (n + P)) besides the
scenarios and the (S, P) losses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.batch.backend import Backend
from engine.tolerances import CVAR_TAIL_SNAP
from models.typing import FloatArray, IntArray

__all__ = ["LOSS_CHUNK", "Measures", "loss_matrix", "risk_measures", "var_of_losses"]

LOSS_CHUNK = 8192
"""Scenarios multiplied at once when forming the loss matrix."""


def _tail(level: float, S: int) -> tuple[float, int]:
    tail = (1.0 - level) * S
    whole = min(math.floor(tail + CVAR_TAIL_SNAP), S - 1)
    return tail, whole


def var_of_losses(losses: FloatArray, level: float) -> float:
    """VaR at `level` of equally likely `losses` (the module's definition), in NumPy."""
    ordered = np.sort(np.asarray(losses, dtype=float))[::-1]
    _, whole = _tail(level, len(ordered))
    return float(ordered[whole])


def loss_matrix(
    returns: FloatArray, weights: FloatArray, backend: Backend, *, chunk: int = LOSS_CHUNK
) -> FloatArray:
    """(S, P) losses `-returns @ weights.T` of P weight vectors, chunked over scenarios."""
    R = np.asarray(returns, dtype=float)
    W = np.asarray(weights, dtype=float)
    S = R.shape[0]
    out = np.empty((S, W.shape[0]))
    Wt = backend.put(W.T)
    for start in range(0, S, chunk):
        block = backend.put(R[start : start + chunk])
        out[start : start + chunk] = np.asarray(-(block @ Wt))
    return out


@dataclass
class Measures:
    """The measures of each column (portfolio) of a loss matrix."""

    levels: tuple[float, ...]
    mean: FloatArray
    """(P,)"""
    std: FloatArray
    minimum: FloatArray
    maximum: FloatArray
    var: FloatArray
    """(levels, P)"""
    cvar: FloatArray
    """(levels, P)"""
    worst: IntArray
    """(N, P): scenario indices, worst first (ties: lower index first)."""


_COMPILED: dict[tuple[str, int, tuple[float, ...], int], Any] = {}


def risk_measures(
    losses: FloatArray, levels: Sequence[float], worst: int, backend: Backend
) -> Measures:
    """Mean, std, min, max, VaR and CVaR per level, and the `worst` scenarios per column."""
    L = np.asarray(losses, dtype=float)
    S = L.shape[0]
    if S == 0:
        raise ValueError("losses must hold at least one scenario")
    levels_t = tuple(float(level) for level in levels)
    worst = min(int(worst), S)
    key = (backend.name, S, levels_t, worst)
    fn = _COMPILED.get(key)
    if fn is None:
        fn = backend.compile(_measures_fn(backend, S, levels_t, worst))
        if len(_COMPILED) > 64:
            _COMPILED.clear()
        _COMPILED[key] = fn
    mean, std, lo, hi, var, cvar, order = (np.asarray(x) for x in fn(backend.put(L)))
    return Measures(
        levels=levels_t,
        mean=mean.astype(float),
        std=std.astype(float),
        minimum=lo.astype(float),
        maximum=hi.astype(float),
        var=var.reshape(len(levels_t), -1).astype(float),
        cvar=cvar.reshape(len(levels_t), -1).astype(float),
        worst=order.astype(np.int64),
    )


def _measures_fn(backend: Backend, S: int, levels: tuple[float, ...], worst: int) -> Any:
    xp = backend.ops.xp
    tails = [_tail(level, S) for level in levels]
    jax = backend.name == "jax"

    def measures(L: Any) -> tuple[Any, ...]:
        ordered = xp.sort(L, axis=0)[::-1]  # decreasing, per column
        var = xp.stack([ordered[whole] for _, whole in tails])
        cvars = []
        for tail, whole in tails:
            total = xp.sum(ordered[:whole], axis=0)
            if whole < S:
                total = total + (tail - whole) * ordered[whole]
            cvars.append(total / tail)
        if jax:
            order = xp.argsort(-L, axis=0, stable=True)[:worst]
        else:
            order = xp.argsort(-L, axis=0, kind="stable")[:worst]
        mean = xp.mean(L, axis=0)
        return (mean, xp.std(L, axis=0), ordered[-1], ordered[0], var, xp.stack(cvars), order)

    return measures
