"""Exporting the piecewise-linear blocks: gross sums of absolute values, top-k, CVaR.

Linearized over auxiliary variables (each exact: `w` satisfies the block's rows iff some
auxiliary values satisfy the linear rows):

- ``AbsSumBlock`` with a group matrix: `t_j >= |a_j w + c_j|` (two rows), `G t <= bound - k`.
- ``SumLargestAbsBlock``: `k s + sum(u) <= bound`, `u_i >= |w_i| - s`, `u >= 0`.
- ``CVaRBlock``: `zeta + sum(z) / ((1 - beta) S) <= bound`, `z_s >= -r_s w - zeta`,
  `z >= 0` (Rockafellar-Uryasev).

Or as named blocks (``abs_sum``, ``sum_largest_abs``, ``cvar``) with their data.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from engine.compile.blocks import AbsSumBlock
from engine.compile.conic_blocks import CVaRBlock, SumLargestAbsBlock
from engine.export.rows import ExportRowBuilder, sparse_of
from models.export import NamedBlock
from models.typing import FloatArray

__all__ = [
    "linearize_abs_sum",
    "linearize_cvar",
    "linearize_sum_largest_abs",
    "named_abs_sum",
    "named_cvar",
    "named_sum_largest_abs",
]


def linearize_abs_sum(
    rows: ExportRowBuilder, block: AbsSumBlock, bound: FloatArray, symbols: tuple[str, ...]
) -> None:
    """`t_j >= |a_j w + c_j|` (two rows per term) and `G t <= bound - k`."""
    assert block.G is not None
    A = sp.csr_matrix(block.A)
    t = []
    for j in range(A.shape[0]):
        entries = {int(i): float(v) for i, v in zip(A[j].indices, A[j].data, strict=True)}
        label = symbols[next(iter(entries))] if len(entries) == 1 else str(j)
        t.append(rows.auxiliary_variable(f"t[{label}]", lower=None))
        c = float(block.c[j])
        # t_j >= a_j w + c_j and t_j >= -(a_j w + c_j)
        rows.add_auxiliary({t[j]: 1.0, **{i: -v for i, v in entries.items()}}, c)
        rows.add_auxiliary({t[j]: 1.0, **entries}, -c)
    G = sp.csr_matrix(block.G)
    k = np.zeros(block.rows) if block.k is None else block.k
    for r in range(block.rows):
        entries = {t[int(j)]: float(v) for j, v in zip(G[r].indices, G[r].data, strict=True)}
        rows.add(r, entries, None, float(bound[r] - k[r]))


def linearize_sum_largest_abs(
    rows: ExportRowBuilder, block: SumLargestAbsBlock, bound: FloatArray, symbols: tuple[str, ...]
) -> None:
    """`k s + sum(u) <= bound`, `u_i >= |w_i| - s`, `u >= 0`."""
    n = len(symbols)
    s = rows.auxiliary_variable("s", lower=None)
    u = [rows.auxiliary_variable(f"u[{symbol}]", lower=0.0) for symbol in symbols]
    for i in range(n):  # u_i >= w_i - s and u_i >= -w_i - s
        rows.add_auxiliary({u[i]: 1.0, i: -1.0, s: 1.0}, 0.0)
        rows.add_auxiliary({u[i]: 1.0, i: 1.0, s: 1.0}, 0.0)
    top_k = min(block.top_k, n)
    rows.add(0, {s: float(top_k), **dict.fromkeys(u, 1.0)}, None, float(bound[0]))


def linearize_cvar(rows: ExportRowBuilder, block: CVaRBlock, bound: FloatArray) -> None:
    """`zeta + sum(z) / ((1 - beta) S) <= bound`, `z_s >= -r_s w - zeta`, `z >= 0`."""
    S = block.R.shape[0]
    zeta = rows.auxiliary_variable("zeta", lower=None)
    z = [rows.auxiliary_variable(f"z[{s}]", lower=0.0) for s in range(S)]
    for s in range(S):  # z_s >= -r_s w - zeta
        nonzero = {int(i): float(v) for i, v in enumerate(block.R[s]) if v != 0.0}
        rows.add_auxiliary({z[s]: 1.0, zeta: 1.0, **nonzero}, 0.0)
    weight = 1.0 / ((1.0 - block.beta) * S)
    rows.add(0, {zeta: 1.0, **dict.fromkeys(z, weight)}, None, float(bound[0]))


def named_abs_sum(rows: ExportRowBuilder, block: AbsSumBlock, bound: FloatArray) -> NamedBlock:
    """The ``abs_sum`` named block with its data (form `blocks`)."""
    assert block.G is not None
    k = np.zeros(block.rows) if block.k is None else block.k
    return NamedBlock(
        type="abs_sum",
        upper=bound.tolist(),
        rows=[rows.info(r, "limit") for r in range(block.rows)],
        A=sparse_of(sp.csr_matrix(block.A), columns=rows.n),
        c=np.asarray(block.c, dtype=float).tolist(),
        G=sparse_of(sp.csr_matrix(block.G), columns=int(np.shape(block.A)[0])),
        k=np.asarray(k, dtype=float).tolist(),
    )


def named_sum_largest_abs(
    rows: ExportRowBuilder, block: SumLargestAbsBlock, bound: FloatArray
) -> NamedBlock:
    """The ``sum_largest_abs`` named block."""
    return NamedBlock(
        type="sum_largest_abs",
        upper=bound.tolist(),
        rows=[rows.info(0, "limit")],
        top_k=min(block.top_k, block.n),
    )


def named_cvar(rows: ExportRowBuilder, block: CVaRBlock, bound: FloatArray) -> NamedBlock:
    """The ``cvar`` named block with its scenario returns."""
    return NamedBlock(
        type="cvar",
        upper=bound.tolist(),
        rows=[rows.info(0, "limit")],
        returns=block.R.tolist(),
        beta=block.beta,
    )
