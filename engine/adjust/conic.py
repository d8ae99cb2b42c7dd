r"""The adjustment problems as numeric cone data, assembled without cvxpy.

Both methods minimize :math:`S \|x - d\|^2` (`S = OBJECTIVE_SCALE`) over `x`, the weight
change of the problem's columns: the traded names for scale_back (with `x` between 0 and
the proposed change), every name of V for project. The weight change over V is `E x`, `E`
the columns' selection, and every row is assembled over `x` with the untraded names
folded into constants:

- affine rows `A w + c`: `(A E) x <= bound - (A w0 + c)` (`>=` rows negated);
- absolute terms `G |A w + c| + k`: a term no column moves is a constant, the others are
  two linear rows each (`|e| <= bound - k` when `G` is absent) or an auxiliary `t >= |e|`
  summed through `G`;
- a risk norm `s ||[F' y ; d o y]||`, `y = P w + c = y0 + (P E) x`: a second-order cone
  over the factor exposures `F' y0 + F' P E x` (factors x columns: O(n k), never n^2), the
  specific terms of the names the columns move, and one constant entry for all the others
  (`sqrt(sum (d_i y0_i)^2)` over the unmoved `i`). The factor entries are written in the
  cone, or read from auxiliary exposure variables held by equality rows, shared by the
  norms that move alike (volatility and tracking error on one risk model) and written
  from the block's loadings when it keeps them apart (sparse): whichever stores fewer
  entries in the KKT system Clarabel factors at every iteration (`engine.adjust.exposures`).

A row no column moves is left out (a constant); when one of them is beyond its bound the
assembly gives up, and the cvxpy chain says why. Any block without a conic form
(`Block.conic` opts out) gives up likewise: the caller then solves through cvxpy.

Duals come back per row set over all its rows, scaled as the cvxpy problem's duals are.

With `constant=True` the objective carries its constant `S ||d||^2` too, as the cost of
one auxiliary variable fixed at 1 (an equality row): Clarabel's objective is then the
distance itself, and its relative gap tolerance is relative to the distance, not to the
distance less `S ||d||^2` (which can be far larger: a gap of 1e-8 of it was 3e-6 of a
small distance). Measuring the variables from the target instead (`u = x - d`, no linear
term) does the same but changes Clarabel's equilibration (no cost scaling without a
linear term) and its dual residual's normalization: it took more iterations, each
dearer (measured in docs/performance-notes.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from engine.adjust.exposures import (
    NormExposures,
    canonical,
    grouped,
    inline_entries,
    reader_entries,
    uses_variables,
)
from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
from engine.compile.conic_blocks import NormBlock
from engine.compile.layout import Layout
from engine.tolerances import TOLERANCE
from models.typing import FloatArray
from solvers.direct import ConeSpec, ConicData

__all__ = ["ColumnCache", "ConicAssembly", "assemble"]

IntArray = np.ndarray[Any, np.dtype[np.intp]]


@dataclass
class _Entries:
    """A sparse matrix as triplets (row, column, value), rows and columns local."""

    rows: IntArray
    cols: IntArray
    data: FloatArray
    shape: tuple[int, int]

    def moved(self) -> IntArray:
        """The rows with an entry, ascending."""
        return np.unique(self.rows)

    def take(self, kept: IntArray, sign: float = 1.0) -> _Entries:
        """Rows `kept` (ascending, a superset of the moved rows), renumbered 0..len-1."""
        return _Entries(
            np.searchsorted(kept, self.rows).astype(np.intp),
            self.cols,
            sign * self.data,
            (len(kept), self.shape[1]),
        )

    def scaled_rows(self, factor: FloatArray) -> _Entries:
        """Each row times `factor[row]`."""
        return _Entries(self.rows, self.cols, self.data * factor[self.rows], self.shape)


class ColumnCache:
    """Sparse matrices in column-compressed form, converted once per matrix object."""

    def __init__(self, max_entries: int = 256) -> None:
        self._csc: dict[int, tuple[Any, sp.csc_matrix]] = {}
        self.max_entries = max_entries

    def of(self, matrix: Any) -> sp.csc_matrix:
        """`matrix` as CSC (sorted indices, no duplicates or zeros), kept for the same object.

        Block matrices are replaced, never changed in place, when a layout is rebound (as
        `engine.compile.blocks.SparseMatVec` assumes too).
        """
        found = self._csc.get(id(matrix))
        if found is not None and found[0] is matrix:
            return found[1]
        csc = sp.csc_matrix(matrix, dtype=float, copy=True)
        csc.sum_duplicates()
        csc.eliminate_zeros()  # a stored zero moves nothing
        self._csc[id(matrix)] = (matrix, csc)
        while len(self._csc) > self.max_entries:
            self._csc.pop(next(iter(self._csc)))
        return csc


@dataclass
class _DualPart:
    """Row set `position`'s rows `rows` take `factor` times the duals of cone rows `at`."""

    position: int
    rows: IntArray
    at: IntArray
    factor: float = 1.0


@dataclass
class ConicAssembly:
    """The cone data of one adjustment problem and how to read its answer back."""

    data: ConicData
    columns: int
    """Number of decision columns `x` (the first entries of the solution)."""
    row_counts: list[int]
    parts: list[_DualPart] = field(default_factory=list)

    def duals(self, z: FloatArray) -> list[FloatArray]:
        """Each row set's duals over all its rows (0 on rows left out)."""
        out = [np.zeros(rows) for rows in self.row_counts]
        for part in self.parts:
            out[part.position][part.rows] += part.factor * z[part.at]
        return out


def _picked(csc: sp.csc_matrix, columns: IntArray) -> _Entries:
    """Columns `columns` of a CSC matrix, as triplets over their positions."""
    starts, ends = csc.indptr[columns], csc.indptr[columns + 1]
    counts = ends - starts
    cols = np.repeat(np.arange(len(columns), dtype=np.intp), counts)
    at = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    return _Entries(
        csc.indices[at].astype(np.intp), cols, csc.data[at], (csc.shape[0], len(columns))
    )


class _Builder:
    """Collects cone rows over `[x; auxiliaries]`; implements `ConicForms[bool]`.

    Each method adds the current row set's rows and returns True, or returns False when the
    block (or this row set) has no conic form here.
    """

    def __init__(self, w0: FloatArray, columns: list[int] | None, cache: ColumnCache) -> None:
        self.w0 = w0
        self.cache = cache
        self.columns = columns
        self.m = len(w0) if columns is None else len(columns)
        self.aux = 0
        self.entries: list[tuple[IntArray, IntArray, FloatArray]] = []
        self.rhs: list[FloatArray] = []
        self.cones: list[ConeSpec] = []
        self.rows = 0
        self.parts: list[_DualPart] = []
        self.exposures: list[NormExposures] = []
        # The row set being added.
        self.position = 0
        self.bound = np.zeros(0)
        self.sense = "le"

    # -- helpers -------------------------------------------------------------------------

    def restrict(self, matrix: Any) -> _Entries:
        """`matrix E`: the matrix over the problem's columns, as triplets."""
        if not sp.issparse(matrix):
            dense = np.asarray(matrix, dtype=float)
            part = dense if self.columns is None else dense[:, self.columns]
            rows, cols = np.nonzero(part)
            rows, cols = rows.astype(np.intp), cols.astype(np.intp)
            return _Entries(rows, cols, part[rows, cols], part.shape)
        csc = self.cache.of(matrix)
        if self.columns is None:
            counts = np.diff(csc.indptr)
            cols = np.repeat(np.arange(csc.shape[1], dtype=np.intp), counts)
            return _Entries(csc.indices.astype(np.intp), cols, csc.data, csc.shape)
        return _picked(csc, np.asarray(self.columns, dtype=np.intp))

    def add(
        self,
        x_part: _Entries | None,
        rhs: FloatArray,
        kind: str,
        aux: tuple[int, _Entries] | None = None,
    ) -> IntArray:
        """Rows `b - A z` in one cone (`A = [x_part, aux]`); returns their indices."""
        count = len(rhs)
        if x_part is not None:
            self.entries.append((x_part.rows + self.rows, x_part.cols, x_part.data))
        if aux is not None:
            offset, a = aux
            self.entries.append((a.rows + self.rows, a.cols + offset, a.data))
        self.rhs.append(np.asarray(rhs, dtype=float))
        self.cones.append((kind, count))  # type: ignore[arg-type]
        at = np.arange(self.rows, self.rows + count, dtype=np.intp)
        self.rows += count
        return at

    def new_aux(self, count: int) -> int:
        """Reserve `count` auxiliary columns; returns the offset of the first."""
        offset = self.m + self.aux
        self.aux += count
        return offset

    def fixed_ok(self, values: FloatArray, kept: IntArray) -> bool:
        """False when a left-out row is beyond its bound (the chain then explains it)."""
        mask = np.ones(len(values), dtype=bool)
        mask[kept] = False
        excess = values[mask] - self.bound[mask]
        if self.sense != "le":
            excess = -excess
        return not (excess > TOLERANCE).any()

    def le_rows(self, matrix: _Entries, values: FloatArray, kept: IntArray) -> IntArray:
        """Rows `value + matrix x` within their bound, in the current sense."""
        sign = 1.0 if self.sense == "le" else -1.0
        return self.add(matrix.take(kept, sign), sign * (self.bound[kept] - values[kept]), "nonneg")

    # -- ConicForms ----------------------------------------------------------------------

    def affine(self, block: AffineBlock) -> bool:
        matrix = self.restrict(block.A)
        values = block.values(self.w0)
        kept = matrix.moved()
        if not self.fixed_ok(values, kept):
            return False
        if len(kept):
            at = self.le_rows(matrix, values, kept)
            self.parts.append(_DualPart(self.position, kept, at))
        return True

    def abs_sum(self, block: AbsSumBlock) -> bool:
        if self.sense != "le":
            return False
        terms = self.restrict(block.A)
        offset = np.asarray(block.A @ self.w0).ravel() + block.c
        moved = terms.moved()
        k = np.zeros(block.rows) if block.k is None else np.asarray(block.k, dtype=float)
        if block.G is None:
            values = np.abs(offset) + k
            if not self.fixed_ok(values, moved):
                return False
            if len(moved):
                room = self.bound[moved] - k[moved]
                plus = self.add(terms.take(moved), room - offset[moved], "nonneg")
                minus = self.add(terms.take(moved, -1.0), room + offset[moved], "nonneg")
                self.parts.append(_DualPart(self.position, moved, plus))
                self.parts.append(_DualPart(self.position, moved, minus))
            return True
        G = self.cache.of(block.G)
        fixed = np.ones(len(offset), dtype=bool)
        fixed[moved] = False
        magnitudes = np.abs(offset)
        values = np.asarray(G @ magnitudes).ravel() + k
        constant = np.asarray(G @ np.where(fixed, magnitudes, 0.0)).ravel() + k
        summed = _picked(G, moved)
        kept = summed.moved()
        if not self.fixed_ok(values, kept):
            return False
        if not len(kept):
            return True
        p = len(moved)
        first = self.new_aux(p)
        eye = _Entries(np.arange(p), np.arange(p), -np.ones(p), (p, p))
        # e = offset + terms x;  e - t <= 0  and  -e - t <= 0.
        self.add(terms.take(moved), -offset[moved], "nonneg", aux=(first, eye))
        self.add(terms.take(moved, -1.0), offset[moved], "nonneg", aux=(first, eye))
        at = self.add(
            None, self.bound[kept] - constant[kept], "nonneg", aux=(first, summed.take(kept))
        )
        self.parts.append(_DualPart(self.position, kept, at))
        return True

    def norm(self, block: NormBlock) -> bool:
        if self.sense != "le" or block.scale <= 0 or self.bound[0] < 0:
            return False
        moves = self.restrict(block.P)  # U x columns
        y0 = np.asarray(block.P @ self.w0).ravel() + block.c
        moved = moves.moved()
        local = moves.take(moved)
        transposed = sp.csr_matrix(
            (local.data, (local.cols, local.rows)), shape=(self.m, len(moved))
        )
        r = block.F.shape[1]
        # The exposures' moves over the moved rows only, factors x columns: the loadings'
        # (sparse) when the block keeps them apart, else F' P E (dense, O(factors n)).
        root = block.root if block.loadings is not None else None
        loadings = block.F if root is None else block.loadings
        assert loadings is not None
        exposure_moves = canonical((transposed @ loadings[moved]).T)
        rhs = [np.array([self.bound[0] / block.scale]), block.F.T @ y0]
        specific_part = None
        if block.d is not None:
            specific = block.d[moved]
            scaled = local.scaled_rows(specific)
            specific_part = _Entries(scaled.rows + 1 + r, scaled.cols, -scaled.data, (0, 0))
            rhs.append(specific * y0[moved])
            fixed = np.ones(len(y0), dtype=bool)
            fixed[moved] = False
            constant = float(np.sqrt(np.sum((block.d[fixed] * y0[fixed]) ** 2)))
            if constant > 0.0:
                rhs.append(np.array([constant]))
        at = self.add(specific_part, np.concatenate(rhs), "soc")
        # The exposures' entries are written once every norm is known (`write_exposures`).
        self.exposures.append(NormExposures(exposure_moves, root, at[1 : 1 + r]))
        self.parts.append(_DualPart(self.position, np.array([0]), at[:1], 1.0 / block.scale))
        return True

    def unit(self) -> int:
        """An auxiliary column held at 1 by an equality row; returns its index."""
        at = self.new_aux(1)
        first = np.zeros(1, dtype=np.intp)
        self.add(None, np.ones(1), "zero", aux=(at, _Entries(first, first, np.ones(1), (1, 1))))
        return at

    def write_exposures(self) -> None:
        """Each norm's factor entries: in its cone, or over exposure variables it may share.

        See `engine.adjust.exposures`: norms with the same exposure moves `M` share the
        variables `g = M x` (equality rows `M x - g = 0`) when these store clearly fewer
        entries than `F' P E` written into each cone.
        """
        for group in grouped(self.exposures):
            matrix = group[0].matrix
            factors = matrix.shape[0]
            if not uses_variables(group):
                self.entries += [inline_entries(item) for item in group]
                continue
            first = self.new_aux(factors)
            moves = matrix.tocoo()
            exposure = _Entries(
                moves.row.astype(np.intp), moves.col.astype(np.intp), moves.data, matrix.shape
            )
            eye = _Entries(np.arange(factors), np.arange(factors), -np.ones(factors), (0, 0))
            self.add(exposure, np.zeros(factors), "zero", aux=(first, eye))
            self.entries += [reader_entries(item, first) for item in group]

    def unsupported(self, block: Block) -> bool:
        return False


def assemble(
    layout: Layout,
    indices: Sequence[int],
    bounds: Sequence[FloatArray],
    *,
    columns: list[int] | None,
    target: FloatArray,
    box: tuple[FloatArray, FloatArray] | None,
    scale: float,
    cache: ColumnCache | None = None,
    constant: bool = False,
) -> ConicAssembly | None:
    """The cone data of the problem, or None when a row set has no conic form here.

    `columns`: the traded names (scale_back) or None (every name of V); `target` the
    proposed change over the columns; `box` the columns' bounds (scale_back) or None;
    `scale` the objective's (`S` above); `cache` keeps the column-compressed form of the
    blocks' matrices between calls (`ColumnCache`); `constant`: the objective with its
    constant term (see the module's docstring).
    """
    builder = _Builder(layout.snap.w0, columns, cache or ColumnCache())
    if box is not None:
        lower, upper = box
        m = builder.m
        diagonal = np.arange(m, dtype=np.intp)
        builder.add(_Entries(diagonal, diagonal, np.ones(m), (m, m)), upper, "nonneg")
        builder.add(_Entries(diagonal, diagonal, -np.ones(m), (m, m)), -lower, "nonneg")
    for position, (k, bound) in enumerate(zip(indices, bounds, strict=True)):
        rowset = layout.rowsets[k]
        if not np.isfinite(bound).all():
            return None
        builder.position, builder.bound, builder.sense = position, bound, rowset.sense
        if not rowset.block.conic(builder):
            return None
    builder.write_exposures()
    unit = builder.unit() if constant else None
    width = builder.m + builder.aux
    rows, cols, values = (
        (np.concatenate(parts) for parts in zip(*builder.entries, strict=True))
        if builder.entries
        else (np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), np.zeros(0))
    )
    A = sp.csc_matrix((values, (rows, cols)), shape=(builder.rows, width))
    A.sum_duplicates()
    A.sort_indices()
    diagonal = np.concatenate([np.full(builder.m, 2.0 * scale), np.zeros(builder.aux)])
    P = sp.diags(diagonal, format="csc")
    q = np.concatenate([-2.0 * scale * target, np.zeros(builder.aux)])
    if unit is not None:
        q[unit] = scale * float(target @ target)
    b = np.concatenate(builder.rhs) if builder.rhs else np.zeros(0)
    data = ConicData(P=P, q=q, A=A, b=b, cones=_merged(builder.cones))
    row_counts = [layout.rowsets[k].block.rows for k in indices]
    return ConicAssembly(data, builder.m, row_counts, builder.parts)


def _merged(cones: list[ConeSpec]) -> list[ConeSpec]:
    """Consecutive nonnegative cones as one (Clarabel's setup is per cone)."""
    out: list[ConeSpec] = []
    for kind, size in cones:
        if out and kind == "nonneg" and out[-1][0] == "nonneg":
            out[-1] = ("nonneg", out[-1][1] + size)
        elif size > 0:
            out.append((kind, size))
    return out
