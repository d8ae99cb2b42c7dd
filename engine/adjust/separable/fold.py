"""An adjustment QP's row sets folded for the separable solver (engine.adjust.separable.qp).

Rows over one name become an interval of that name (`Box`); rows over several names are
kept as coupling rows with a multiplier each (`Coupling`): affine ones as a sparse matrix,
absolute-value ones as their terms (name, slope, offset) and the sums over them. What
depends only on a row set's structure (`AffineShape`, `AbsShape`) is built once and
memoized on the compiled problem; each request folds its bounds and offsets in. A
restriction to some names (`scale_back`'s traded ones, which change with every request) is
picked from a per-matrix column index (`engine.adjust.separable.columns`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from engine.adjust.separable.columns import Entries, IntArray, column_index
from engine.compile.blocks import AbsSumBlock, AffineBlock
from engine.tolerances import CERTIFICATE_FEASIBILITY
from models.typing import FloatArray

__all__ = [
    "FEASIBILITY",
    "Box",
    "Coupling",
    "IntArray",
    "Unsupported",
    "fold_abs_sum",
    "fold_affine",
    "abs_shape",
    "affine_shape",
    "memoized",
]

FEASIBILITY = CERTIFICATE_FEASIBILITY
"""Certified row accuracy, relative to max(1, |bound|)."""


class Unsupported(Exception):
    """The problem is not of the separable kind, or is infeasible on its face."""


class Box:
    """Per-name interval, and which one-name row set each end (row set position, row, slope)."""

    def __init__(self, lower: FloatArray, upper: FloatArray) -> None:
        n = len(lower)
        self.lo, self.hi = np.array(lower, dtype=float), np.array(upper, dtype=float)
        # Per end: the row set position (-1: the problem's own box), the row, |row slope|.
        self.sources = {
            side: (np.full(n, -1, dtype=np.intp), np.zeros(n, dtype=np.intp), np.ones(n))
            for side in ("lo", "hi")
        }

    def tighten(
        self, position: int, rows: IntArray, names: IntArray, ends: FloatArray, slopes: FloatArray
    ) -> None:
        """Upper ends where `slopes > 0`, lower ends where `slopes < 0` (slope of the row)."""
        for side, chosen in (("hi", slopes > 0), ("lo", slopes < 0)):
            picked = np.flatnonzero(chosen)
            if not len(picked):
                continue
            key = ends[picked] if side == "hi" else -ends[picked]
            picked = picked[np.lexsort((key, names[picked]))]
            first = np.ones(len(picked), dtype=bool)
            first[1:] = names[picked][1:] != names[picked][:-1]
            picked = picked[first]  # the tightest end per name
            current = self.hi if side == "hi" else self.lo
            tighter = ends[picked] < current[names[picked]]
            if side == "lo":
                tighter = ends[picked] > current[names[picked]]
            picked = picked[tighter]
            name = names[picked]
            current[name] = ends[picked]
            source_position, source_row, source_scale = self.sources[side]
            source_position[name] = position
            source_row[name] = rows[picked]
            source_scale[name] = np.abs(slopes[picked])

    def meet(self) -> bool:
        """Close rounding-size gaps where the ends cross; False when they truly cross.

        A row at its bound before the trade (bound = pre-trade value) gives an end computed
        back from that bound, a rounding away from the other end. The row's end moves to
        the other end: the row is then off by a rounding, far inside the certified accuracy.
        """
        gap = self.lo - self.hi
        if not (gap > 0).any():
            return True
        if (gap > FEASIBILITY * np.maximum(1.0, np.abs(self.hi))).any():
            return False
        crossed = np.flatnonzero(gap > 0)
        row_hi = self.sources["hi"][0][crossed] >= 0
        self.hi[crossed[row_hi]] = self.lo[crossed[row_hi]]
        self.lo[crossed[~row_hi]] = self.hi[crossed[~row_hi]]
        return True


@dataclass
class Coupling:
    """Rows over several names: affine `M z <= b_aff`, absolute `G |a z[name] + e| <= b_abs`."""

    aff_rows: list[tuple[int, IntArray]] = field(default_factory=list)
    aff_matrices: list[sp.csr_matrix] = field(default_factory=list)
    aff_bounds: list[FloatArray] = field(default_factory=list)
    abs_rows: list[tuple[int, IntArray]] = field(default_factory=list)
    abs_sums: list[sp.csr_matrix] = field(default_factory=list)
    abs_bounds: list[FloatArray] = field(default_factory=list)
    term_names: list[IntArray] = field(default_factory=list)
    term_slopes: list[FloatArray] = field(default_factory=list)
    term_offsets: list[FloatArray] = field(default_factory=list)


def memoized(memo: dict[Any, Any], key: Any, build: Any, *args: Any) -> Any:
    """`build(*args)` once per key; an Unsupported structure is remembered as such."""
    if key not in memo:
        try:
            memo[key] = build(*args)
        except Unsupported as exc:
            memo[key] = exc
    found = memo[key]
    if isinstance(found, Unsupported):
        raise found
    return found


def _restricted(owner: object, name: str, columns: IntArray | None, *, fixed: bool) -> Entries:
    """The nonzeros of `matrix[:, columns]` (all columns when None), `matrix` = `owner.name`.

    A `fixed` matrix (never changed in place) is picked from its `ColumnIndex`, kept on
    `owner`; any other matrix, or columns the index does not cover, through scipy.
    """
    if fixed and columns is not None:
        index = column_index(owner, name)
        if index is not None and index.covers(columns):
            return index.pick(columns)
    csr = sp.csr_matrix(getattr(owner, name))
    return Entries.of_csr(csr if columns is None else sp.csr_matrix(csr[:, columns]))


def _check_constant(values: FloatArray, bound: FloatArray, sense: str) -> None:
    excess = values - bound if sense == "le" else bound - values
    if len(excess) and float(excess.max()) > FEASIBILITY * max(1.0, float(np.abs(bound).max())):
        raise Unsupported("a row no variable moves is beyond its bound")


@dataclass
class AffineShape:
    """What depends on an affine row set's structure only (memoized per compiled problem)."""

    constant: IntArray
    single: IntArray
    single_names: IntArray
    single_coefficients: FloatArray
    several: IntArray
    several_matrix: sp.csr_matrix
    """The coupling rows, signed so that each reads `row <= bound`."""


def affine_shape(block: AffineBlock, sense: str, columns: IntArray | None) -> AffineShape:
    """Which rows of an affine block are constant, over one name, or over several."""
    A = _restricted(block, "A", columns, fixed=block.structural)
    sign = 1.0 if sense == "le" else -1.0
    count = A.per_row()
    single = np.flatnonzero(count == 1).astype(np.intp)
    names, coefficients = A.first_of(single)
    several = np.flatnonzero(count > 1).astype(np.intp)
    return AffineShape(
        np.flatnonzero(count == 0).astype(np.intp),
        single,
        names,
        coefficients,
        several,
        A.of_rows(several).scaled(sign).csr(),
    )


def fold_affine(
    position: int,
    shape: AffineShape,
    block: AffineBlock,
    sense: str,
    bound: FloatArray,
    w0: FloatArray,
    box: Box,
    coupling: Coupling,
) -> None:
    """Fold one request's affine rows in: intervals for one-name rows, coupling rows else."""
    offset = block.values(w0)
    sign = 1.0 if sense == "le" else -1.0
    _check_constant(offset[shape.constant], bound[shape.constant], sense)
    single = shape.single
    if len(single):
        ends = (bound[single] - offset[single]) / shape.single_coefficients
        box.tighten(position, single, shape.single_names, ends, sign * shape.single_coefficients)
    several = shape.several
    if len(several):
        coupling.aff_rows.append((position, several))
        coupling.aff_matrices.append(shape.several_matrix)
        coupling.aff_bounds.append(sign * (bound[several] - offset[several]))


@dataclass
class AbsShape:
    """What depends on an absolute-sum row set's structure only (memoized likewise)."""

    moving: IntArray
    """The terms a variable moves (one name each); the others are constants."""
    fixed: IntArray
    fixed_sum: sp.csr_matrix
    names: IntArray
    slopes: FloatArray
    constant: IntArray
    single: IntArray
    single_terms: IntArray
    single_weights: FloatArray
    several: IntArray
    used: IntArray
    several_sum: sp.csr_matrix


def _weights(block: AbsSumBlock, moving: IntArray, fixed: IntArray) -> tuple[Entries, Entries]:
    """The columns of `G` of the moving and of the fixed terms (`G` = identity when None)."""
    n_terms = int(np.shape(block.A)[0])
    if block.G is None:
        return Entries.identity_columns(n_terms, moving), Entries.identity_columns(n_terms, fixed)
    index = column_index(block, "G")
    if index is not None:
        negative = index.any_negative
    else:
        negative = bool((Entries.of_csr(sp.csr_matrix(block.G)).data < 0).any())
    if negative:
        raise Unsupported("a negative weight on an absolute term")
    return (
        _restricted(block, "G", moving, fixed=True),
        _restricted(block, "G", fixed, fixed=True),
    )


def abs_shape(block: AbsSumBlock, sense: str, columns: IntArray | None) -> AbsShape:
    """Which terms of an absolute-value block move, and which rows are over one name."""
    if sense != "le":
        raise Unsupported("an absolute-value row bounded below is not convex")
    # An absolute-value block's A and G are constants of its compiled form: never changed.
    A = _restricted(block, "A", columns, fixed=True)
    per_term = A.per_row()
    if (per_term > 1).any():
        raise Unsupported("an absolute term over several names")
    moving = np.flatnonzero(per_term == 1).astype(np.intp)
    fixed = np.flatnonzero(per_term == 0).astype(np.intp)
    G_moving, G_fixed = _weights(block, moving, fixed)
    count = G_moving.per_row()
    names, slopes = A.first_of(moving)
    single = np.flatnonzero(count == 1).astype(np.intp)
    terms, weights = G_moving.first_of(single)
    several = np.flatnonzero(count > 1).astype(np.intp)
    G_several = G_moving.of_rows(several)
    used = np.unique(G_several.cols).astype(np.intp)
    return AbsShape(
        moving,
        fixed,
        G_fixed.csr(),
        names,
        slopes,
        np.flatnonzero(count == 0).astype(np.intp),
        single,
        terms,
        weights,
        several,
        used,
        G_several.of_columns(used).csr(),
    )


def fold_abs_sum(
    position: int,
    shape: AbsShape,
    block: AbsSumBlock,
    bound: FloatArray,
    w0: FloatArray,
    box: Box,
    coupling: Coupling,
) -> None:
    """Fold one request's absolute-value rows in: intervals, or coupling terms and sums."""
    terms = np.asarray(block.A @ w0).ravel() + block.c
    k = np.zeros(block.rows) if block.k is None else np.asarray(block.k, dtype=float)
    constant_part = k + shape.fixed_sum @ np.abs(terms[shape.fixed])
    _check_constant(constant_part[shape.constant], bound[shape.constant], "le")
    offsets = terms[shape.moving]
    single = shape.single
    if len(single):
        weight = shape.single_weights
        radius = (bound[single] - constant_part[single]) / weight
        if (radius < -FEASIBILITY * np.maximum(1.0, np.abs(bound[single]))).any():
            raise Unsupported("an absolute value bounded below zero")
        radius = np.maximum(radius, 0.0)  # a row at its bound, less a rounding
        term = shape.single_terms
        a, e = shape.slopes[term], offsets[term]
        scale = weight * np.abs(a)
        # |a z + e| <= radius: z between (-radius - e) / a and (radius - e) / a.
        upper = np.where(a > 0, radius - e, -radius - e) / a
        lower = np.where(a > 0, -radius - e, radius - e) / a
        box.tighten(position, single, shape.names[term], upper, scale)
        box.tighten(position, single, shape.names[term], lower, -scale)
    several = shape.several
    if len(several):
        coupling.abs_rows.append((position, several))
        coupling.abs_sums.append(shape.several_sum)
        coupling.abs_bounds.append(bound[several] - constant_part[several])
        coupling.term_names.append(shape.names[shape.used])
        coupling.term_slopes.append(shape.slopes[shape.used])
        coupling.term_offsets.append(offsets[shape.used])
