"""Exporting the regulatory rules' piecewise-linear blocks (`engine.compile.piecewise`).

The engine's cvxpy forms of these blocks are over the weight change with per-request
offsets (DPP); the export speaks absolute weights `w`, so the offsets are folded back:
`CappedSumBlock` is `a w + k + sum_g min((G w)_g, cap_g)` and `PositivePartSumBlock` is
`sum_g max((G w)_g + c_g, 0)`, exactly as their `values` evaluate them.

Linearized, over auxiliary variables (each exact: a weight vector satisfies the rule iff
some values of the auxiliaries satisfy the rows):

- ``capped_sum`` (a concave function bounded below): `u_g <= (G w)_g`, `u_g <= cap_g`
  (an upper bound on the auxiliary) and the limit row `a w + sum_g u_g >= bound - k`.
- ``positive_part_sum`` (convex, bounded above): `p_g >= (G w)_g + c_g`, `p_g >= 0` and
  the limit row `sum_g p_g <= bound`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from engine.compile.piecewise import CappedSumBlock, PositivePartSumBlock
from engine.compile.rows import RowSet
from engine.export.rows import ExportRowBuilder, sparse_of
from models.export import NamedBlock
from models.typing import FloatArray

__all__ = [
    "linearize_capped_sum",
    "linearize_positive_part_sum",
    "named_capped_sum",
    "named_positive_part_sum",
]


def _group_rows(G: sp.spmatrix) -> list[dict[int, float]]:
    """Each group's members as `{column: coefficient}`."""
    rows = sp.csr_matrix(G)
    return [
        {int(i): float(v) for i, v in zip(rows[g].indices, rows[g].data, strict=True)}
        for g in range(rows.shape[0])
    ]


def _label(entries: dict[int, float], symbols: tuple[str, ...]) -> str:
    """A group's name in its auxiliaries' names: its member symbols, joined by `+`."""
    return "+".join(symbols[i] for i in sorted(entries))


def linearize_capped_sum(
    rows: ExportRowBuilder,
    block: CappedSumBlock,
    rowset: RowSet,
    bound: FloatArray,
    symbols: tuple[str, ...],
) -> None:
    """`u_g <= (G w)_g`, `u_g <= cap_g` and `a w + sum_g u_g >= bound - k`.

    An auxiliary is named after its group's member symbols (`u[AAA+AAB]`).
    """
    if rowset.sense != "ge":  # models never build one (not convex); an engine bug
        raise ValueError(f"{rowset.violation_type}: an upper bound on a concave function")
    u = []
    for g, entries in enumerate(_group_rows(block.G)):
        cap = float(block.cap[g])
        u.append(rows.auxiliary_variable(f"u[{_label(entries, symbols)}]", lower=None, upper=cap))
        # u_g <= (G w)_g, as (G w)_g - u_g >= 0
        rows.add_auxiliary({**entries, u[g]: -1.0}, 0.0)
    a = {int(i): float(v) for i, v in enumerate(block.a) if v != 0.0}
    rows.add(0, {**a, **dict.fromkeys(u, 1.0)}, float(bound[0] - block.k), None)


def linearize_positive_part_sum(
    rows: ExportRowBuilder,
    block: PositivePartSumBlock,
    rowset: RowSet,
    bound: FloatArray,
    symbols: tuple[str, ...],
) -> None:
    """`p_g >= (G w)_g + c_g`, `p_g >= 0` and `sum_g p_g <= bound` (`p[AAA+AAB]`)."""
    if rowset.sense != "le":
        raise ValueError(f"{rowset.violation_type}: a lower bound on a convex function")
    p = []
    for g, entries in enumerate(_group_rows(block.G)):
        p.append(rows.auxiliary_variable(f"p[{_label(entries, symbols)}]", lower=0.0))
        # p_g >= (G w)_g + c_g, as p_g - (G w)_g >= c_g
        rows.add_auxiliary({p[g]: 1.0, **{i: -v for i, v in entries.items()}}, float(block.c[g]))
    rows.add(0, dict.fromkeys(p, 1.0), None, float(bound[0]))


def named_capped_sum(
    rows: ExportRowBuilder, block: CappedSumBlock, bound: FloatArray
) -> NamedBlock:
    """The ``capped_sum`` named block with its data (form `blocks`)."""
    return NamedBlock(
        type="capped_sum",
        lower=bound.tolist(),
        rows=[rows.info(0, "limit")],
        a=np.asarray(block.a, dtype=float).tolist(),
        k=[float(block.k)],
        G=sparse_of(sp.csr_matrix(block.G), columns=rows.n),
        cap=np.asarray(block.cap, dtype=float).tolist(),
    )


def named_positive_part_sum(
    rows: ExportRowBuilder, block: PositivePartSumBlock, bound: FloatArray
) -> NamedBlock:
    """The ``positive_part_sum`` named block with its data (form `blocks`)."""
    return NamedBlock(
        type="positive_part_sum",
        upper=bound.tolist(),
        rows=[rows.info(0, "limit")],
        G=sparse_of(sp.csr_matrix(block.G), columns=rows.n),
        c=np.asarray(block.c, dtype=float).tolist(),
    )
