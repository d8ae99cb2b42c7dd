"""Exact answers from approximate cone solves: polish on the tangent planes of the cones.

Interior-point solvers need a strictly feasible point. A decision whose passive breaches
may not get worse can leave the feasible set without one (a cash cap held at its pre-trade
value together with a gross cap held at its own forces sum(w) to stay put), and then they
stop "inaccurate" or fail. The approximate point they reach is still close to the optimum.

Polishing replaces each risk norm row by its tangent plane at that point and solves the
resulting QP with an active-set solver (HiGHS), exact on its active set. The tangent plane
under-estimates the convex norm, so the QP is a relaxation: its optimum is at most the true
optimum. When its solution also satisfies the true norm rows (checked exactly), it is
feasible for the true problem and therefore optimal. Otherwise the planes are moved to the
new point and the QP solved again, a few times at most.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from engine.compile.blocks import AffineBlock
from engine.compile.layout import Layout
from models.typing import FloatArray

__all__ = ["POLISH_ROUNDS", "linearized"]

POLISH_ROUNDS = 8


def linearized(layout: Layout, w: FloatArray) -> Layout:
    """The layout with every cone row (a single row) replaced by its tangent plane at `w`."""
    rowsets = []
    for rowset in layout.rowsets:
        block = rowset.block
        if block.needs_cone:
            gradient = block.gradient(w)
            value = float(block.values(w)[0])
            plane = AffineBlock(
                A=gradient[None, :], c=np.array([value - gradient @ w]), structural=False
            )
            rowset = dataclasses.replace(rowset, block=plane)
        rowsets.append(rowset)
    return Layout(snap=layout.snap, rowsets=rowsets, policies=layout.policies)
