r"""Exporting custom expressions: cvxpy's own conic canonicalization, mapped back to `x`.

An expression row (`engine.compile.language.block.ExpressionBlock`) can hold any DCP combination
of the language's atoms, so it has no fixed encoding. Its bound is written as a cvxpy
constraint over a variable for the absolute weights `w` (the engine's form is over the
weight change; `w0` is set to this request's value), and cvxpy reduces it to the standard
conic form a conic solver receives:

.. math:: b - A z \in \{0\}^{m_0} \times \mathbb{R}_+^{m_1} \times Q^{s_1} \times \dots

over cvxpy's stacked variables `z`, which hold `w` and the auxiliary variables cvxpy
introduced. The columns of `w` map onto the export's weights, every other column becomes
a new auxiliary (unbounded: the cone rows constrain it); zero-cone rows become equality
rows, non-negative rows `A_i z <= b_i`, and each second-order cone one `ConicRows`
(`matrix = -A`, `offset = b`). cvxpy's canonicalization is exact (no relaxation): `w`
satisfies the bound iff some values of the auxiliaries satisfy the rows. The language has
no atom that needs another cone (exponential, semidefinite, power); one would be refused.
"""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from engine.compile.rows import RowSet
from engine.errors import InputError
from engine.export.rows import ExportRowBuilder, sparse_of
from models.export import ConicRows
from models.typing import FloatArray

__all__ = ["canonical_rows"]

_CANONICALIZER = cp.CLARABEL
"""Whose standard form cvxpy builds: zero, non-negative, second-order cones, in that order
(Clarabel: a declared dependency). Only the problem data is built; nothing is solved."""


def _stuffing_offsets(inverse_data: list[Any], width: int) -> dict[int, int]:
    """Column offsets of cvxpy's variables in the stacked vector of width `width`."""
    for item in reversed(inverse_data):
        offsets = getattr(item, "var_offsets", None)
        if offsets is not None and getattr(item, "x_length", None) == width:
            return dict(offsets)
    raise RuntimeError("cvxpy's problem data has no variable offsets")  # a cvxpy change


def canonical_rows(
    rows: ExportRowBuilder,
    rowset: RowSet,
    w0: FloatArray,
    bound: FloatArray,
    *,
    field: str,
) -> list[ConicRows]:
    """Append the conic form of `rowset` (bounded by `bound`) to `rows`; return its cones.

    `field` names the policy's constraint in the error raised for an expression whose
    canonical form needs a cone the export does not carry.
    """
    n = rows.n
    w = cp.Variable(n, name="w")
    params = rowset.block.declare()
    rowset.block.fill(params, w0)
    value = rowset.block.expression(w - w0, params)
    limit = np.asarray(bound, dtype=float)
    constraint = value <= limit if rowset.sense == "le" else value >= limit
    data, _chain, inverse = cp.Problem(cp.Minimize(0), [constraint]).get_problem_data(
        _CANONICALIZER
    )
    A, b, dims = sp.csr_matrix(data["A"]), np.asarray(data["b"], dtype=float), data["dims"]
    if dims.exp or dims.psd or dims.p3d:
        raise InputError(
            field, "the expression's conic form needs a cone other than second-order cones"
        )
    columns = _columns(rows, _stuffing_offsets(inverse, A.shape[1]), w, A.shape[1])
    for r in range(dims.zero):  # b - A z = 0
        rows.add_conic(0, _entries(A, r, columns), float(b[r]), float(b[r]))
    start = dims.zero
    for r in range(start, start + dims.nonneg):  # b - A z >= 0
        rows.add_conic(0, _entries(A, r, columns), None, float(b[r]))
    start += dims.nonneg
    cones: list[tuple[int, int]] = []
    for size in dims.soc:
        cones.append((start, start + size))
        start += size
    return [_cone(rows, A[lo:hi], b[lo:hi], columns) for lo, hi in cones]


def _columns(
    rows: ExportRowBuilder, offsets: dict[int, int], w: cp.Variable, width: int
) -> list[int]:
    """Column in the export's `x` of each of cvxpy's stacked columns."""
    mapped = [-1] * width
    start = offsets.get(w.id)
    if start is not None:  # absent when the expression does not involve the weights
        for i in range(w.size):
            mapped[start + i] = i
    extra = 0
    for j in range(width):
        if mapped[j] < 0:
            mapped[j] = rows.auxiliary_variable(f"v[{extra}]", lower=None)
            extra += 1
    return mapped


def _entries(A: sp.csr_matrix, r: int, columns: list[int]) -> dict[int, float]:
    """Row `r` of `A` over the export's columns."""
    lo, hi = A.indptr[r], A.indptr[r + 1]
    out: dict[int, float] = {}
    for j, v in zip(A.indices[lo:hi], A.data[lo:hi], strict=True):
        out[columns[int(j)]] = out.get(columns[int(j)], 0.0) + float(v)
    return out


def _cone(rows: ExportRowBuilder, A: sp.csr_matrix, b: FloatArray, columns: list[int]) -> ConicRows:
    coo = sp.coo_matrix(A)
    # As wide as x is so far; the caller widens it once every auxiliary is known.
    width = rows.n + len(rows.auxiliary)
    mapped = sp.coo_matrix(
        (-coo.data, (coo.row, np.array([columns[int(j)] for j in coo.col], dtype=int))),
        shape=(A.shape[0], width),
    )
    return ConicRows(
        matrix=sparse_of(mapped.tocsr(), columns=width),
        offset=b.tolist(),
        info=rows.info(0, "conic"),
    )
