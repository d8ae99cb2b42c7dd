"""The rows an adjustment's continuous optimum holds at their bound (SPEC section 6)."""

from __future__ import annotations

import numpy as np

from engine.adjust.problems import OBJECTIVE_SCALE, CompiledProblem
from engine.compile.layout import Layout
from engine.tolerances import BINDING_DUAL, BINDING_GAP

__all__ = ["binding_rows"]


def binding_rows(
    compiled: CompiledProblem, strict: list[int], layout: Layout
) -> list[tuple[int, int, float]]:
    """Rows whose constraint is tight at the continuous optimum, with their dual values.

    `(row set, row, dual)` for every row with a dual above `BINDING_DUAL`, within
    `BINDING_GAP` of its bound, and moved by some variable of the problem. The tests run
    cheapest first and each only on the rows the one before kept: most row sets have no
    dual that large, and their values and reach are not needed.
    """
    snap = layout.snap
    w = snap.w0 + compiled.delta(snap.n)
    # Rows no variable of this problem can move (an untraded name in scale_back) are
    # constants: solvers give them arbitrary duals, and they bind nothing.
    movable = np.zeros(snap.n)
    movable[list(compiled.traded) if compiled.space == "scale_back" else slice(None)] = 1.0
    out = []
    for position, (k, bound) in enumerate(zip(strict, compiled.filled_bounds, strict=True)):
        # Rows left out of the problem (constant) come back with a zero dual.
        row_duals = compiled.row_duals(position)
        if row_duals is None:
            continue
        duals = row_duals / OBJECTIVE_SCALE
        tight = duals > BINDING_DUAL
        if not tight.any():
            continue
        block = layout.rowsets[k].block
        tight &= np.abs(block.values(w) - bound) <= BINDING_GAP
        if not tight.any():
            continue
        tight &= block.perturbation_bound(movable) > 0
        for r in np.flatnonzero(tight):
            out.append((k, int(r), float(duals[r])))
    return out
