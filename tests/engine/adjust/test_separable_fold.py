"""The separable solver's row-set shapes equal scipy's indexing of the same matrices.

`affine_shape` and `abs_shape` pick the traded names' columns from a column index kept on
the block (`engine.adjust.separable.columns`); the reference below is the plain scipy form
they replaced (fancy indexing, then row and column selections). On seeded random blocks
(explicit zeros, empty rows and columns, rows over no, one or several names, `G` absent
or with zeros and negative weights, dense, CSR with duplicate entries) and random name
sets (none, empty, shuffled, every name, negative indices), every field of both shapes
must be equal: the arrays with their dtypes, the sparse matrices entry by entry once
sorted, and `Unsupported` raised in the same cases with the same message.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from engine.adjust.separable.columns import ColumnIndex
from engine.adjust.separable.fold import (
    AbsShape,
    AffineShape,
    Unsupported,
    abs_shape,
    affine_shape,
)
from engine.compile.blocks import AbsSumBlock, AffineBlock

CASES = 400


def _reference_restricted(matrix: Any, columns: np.ndarray | None) -> sp.csr_matrix:
    csr = sp.csr_matrix(matrix)
    return csr if columns is None else sp.csr_matrix(csr[:, columns])


def _reference_single(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = matrix.indptr[rows]
    return matrix.indices[starts].astype(np.intp), np.asarray(matrix.data[starts], dtype=float)


def reference_affine(block: AffineBlock, sense: str, columns: np.ndarray | None) -> AffineShape:
    """The scipy form of `affine_shape`."""
    A = _reference_restricted(block.A, columns)
    A.eliminate_zeros()
    sign = 1.0 if sense == "le" else -1.0
    count = np.diff(A.indptr)
    single = np.flatnonzero(count == 1).astype(np.intp)
    names, coefficients = _reference_single(A, single)
    several = np.flatnonzero(count > 1).astype(np.intp)
    return AffineShape(
        np.flatnonzero(count == 0).astype(np.intp),
        single,
        names,
        coefficients,
        several,
        sp.csr_matrix(sign * A[several]),
    )


def reference_abs(block: AbsSumBlock, sense: str, columns: np.ndarray | None) -> AbsShape:
    """The scipy form of `abs_shape`."""
    if sense != "le":
        raise Unsupported("an absolute-value row bounded below is not convex")
    A = _reference_restricted(block.A, columns)
    A.eliminate_zeros()
    per_term = np.diff(A.indptr)
    if (per_term > 1).any():
        raise Unsupported("an absolute term over several names")
    moving = np.flatnonzero(per_term == 1).astype(np.intp)
    fixed = np.flatnonzero(per_term == 0).astype(np.intp)
    if block.G is None:
        G = sp.identity(A.shape[0], format="csr")
    else:
        G = sp.csr_matrix(block.G)
        G.eliminate_zeros()
        if (G.data < 0).any():
            raise Unsupported("a negative weight on an absolute term")
    G_moving = sp.csr_matrix(G[:, moving])
    count = np.diff(G_moving.indptr)
    names, slopes = _reference_single(A, moving)
    single = np.flatnonzero(count == 1).astype(np.intp)
    terms, weights = _reference_single(G_moving, single)
    several = np.flatnonzero(count > 1).astype(np.intp)
    used = np.unique(G_moving[several].indices).astype(np.intp)
    return AbsShape(
        moving,
        fixed,
        sp.csr_matrix(G[:, fixed]),
        names,
        slopes,
        np.flatnonzero(count == 0).astype(np.intp),
        single,
        terms,
        weights,
        several,
        used,
        sp.csr_matrix(G_moving[several][:, used]),
    )


def _assert_same_field(name: str, got: Any, want: Any) -> None:
    if sp.issparse(want):
        assert sp.issparse(got) and got.format == want.format == "csr", name
        assert got.shape == want.shape and got.dtype == want.dtype, name
        got, want = got.copy(), want.copy()
        got.sort_indices()
        want.sort_indices()
        for part in ("indptr", "indices", "data"):
            mine, theirs = getattr(got, part), getattr(want, part)
            assert mine.dtype == theirs.dtype, f"{name}.{part}"
            np.testing.assert_array_equal(mine, theirs, err_msg=f"{name}.{part}")
    else:
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype, name
        assert got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def _assert_same(
    shape: Any, build: Any, reference: Any, block: Any, sense: str, columns: Any
) -> None:
    """`build` and `reference` give equal shapes, or raise the same `Unsupported`."""
    # The reference runs on its own copy: scipy's in-place `eliminate_zeros` may reach a
    # CSR block's own arrays through the matrix it wraps.
    try:
        want = reference(copy.deepcopy(block), sense, columns)
    except Unsupported as exc:
        with pytest.raises(Unsupported) as raised:
            build(block, sense, columns)
        assert str(raised.value) == str(exc)
        return
    got = build(block, sense, columns)
    assert isinstance(got, shape)
    for f in fields(shape):
        _assert_same_field(f.name, getattr(got, f.name), getattr(want, f.name))


def _values(rng: np.random.Generator, size: int, *, negative: bool) -> np.ndarray:
    """Nonzero values, some of them stored zeros (about one in five)."""
    values = rng.choice([0.5, 1.0, 2.0, 0.1, 3.7], size=size)
    if negative:
        values = values * rng.choice([-1.0, 1.0], size=size)
    values[rng.random(size) < 0.2] = 0.0
    return values


def _random_matrix(
    rng: np.random.Generator, rows: int, cols: int, per_row: list[int], *, negative: bool
) -> Any:
    """A sparse or dense matrix with `per_row[r]` stored entries in row r (zeros among them)."""
    r = np.repeat(np.arange(rows), per_row).astype(np.int32)
    c = np.concatenate(
        [rng.choice(cols, size=k, replace=False) for k in per_row] or [np.zeros(0, int)]
    ).astype(np.int32)
    data = _values(rng, len(r), negative=negative)
    form = rng.integers(5)
    if form == 0:  # stored order within a row left as drawn (unsorted indices)
        indptr = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int32)
        return sp.csr_matrix((data, c, indptr), shape=(rows, cols))
    if form == 1:
        return sp.csr_matrix((data, (r, c)), shape=(rows, cols)).toarray()
    if form == 2:
        return sp.csc_matrix((data, (r, c)), shape=(rows, cols))
    if form == 3 and len(r):  # a duplicate entry, kept as such in the CSR arrays
        at = rng.integers(len(r))
        r, c, data = np.insert(r, at, r[at]), np.insert(c, at, c[at]), np.insert(data, at, 1.0)
        order = np.argsort(r, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=rows))]).astype(np.int32)
        return sp.csr_matrix((data[order], c[order], indptr), shape=(rows, cols))
    return sp.csr_matrix((data, (r, c)), shape=(rows, cols))


def _columns(rng: np.random.Generator, n: int) -> np.ndarray | None:
    """None, empty, a shuffled subset, every name shuffled, or a subset with negative indices."""
    kind = rng.integers(6)
    if kind == 0:
        return None
    if kind == 1:
        return np.zeros(0, dtype=np.intp)
    if kind == 2:
        return rng.permutation(n).astype(np.intp)
    picked = rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False).astype(np.intp)
    if kind == 3:
        return picked - n  # the same names counted from the end
    return picked


def _per_row(rng: np.random.Generator, rows: int, n: int, most: int) -> list[int]:
    return [int(rng.integers(0, min(most, n) + 1)) for _ in range(rows)]


@pytest.mark.parametrize("seed", range(CASES))
def test_affine_shape_is_scipys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, rows = int(rng.integers(1, 16)), int(rng.integers(0, 12))
    A = _random_matrix(rng, rows, n, _per_row(rng, rows, n, 5), negative=True)
    block = AffineBlock(A=A, c=np.zeros(rows), structural=bool(rng.random() < 0.8))
    sense = "le" if rng.random() < 0.5 else "ge"
    for _ in range(3):  # the block keeps its index between requests
        _assert_same(AffineShape, affine_shape, reference_affine, block, sense, _columns(rng, n))


@pytest.mark.parametrize("seed", range(CASES))
def test_abs_shape_is_scipys(seed: int) -> None:
    rng = np.random.default_rng(10_000 + seed)
    n, terms = int(rng.integers(1, 16)), int(rng.integers(0, 12))
    # Mostly one name a term; now and then two (Unsupported unless the names left drop one).
    per_term = [int(rng.choice([0, 1, 1, 1, 2])) for _ in range(terms)]
    A = _random_matrix(rng, terms, n, [min(k, n) for k in per_term], negative=True)
    G = None
    if rng.random() < 0.7:
        rows = int(rng.integers(0, 6))
        negative = bool(rng.random() < 0.15)
        G = _random_matrix(rng, rows, terms, _per_row(rng, rows, terms, 6), negative=negative)
    block = AbsSumBlock(A=A, c=np.zeros(terms), G=G)
    sense = "le" if rng.random() < 0.9 else "ge"
    for _ in range(3):
        _assert_same(AbsShape, abs_shape, reference_abs, block, sense, _columns(rng, n))


def test_a_swapped_matrix_is_indexed_anew() -> None:
    """A block whose matrix is replaced (not a structural one) is restricted from the new one."""
    first = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 2.0]]))
    block = AffineBlock(A=first, c=np.zeros(2))
    columns = np.array([2, 0], dtype=np.intp)
    before = affine_shape(block, "le", columns)
    np.testing.assert_array_equal(before.single, [0, 1])
    block.A = sp.csr_matrix(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    after = affine_shape(block, "le", columns)
    np.testing.assert_array_equal(after.several, [0])
    np.testing.assert_array_equal(after.constant, [1])
    _assert_same_field("several_matrix", after.several_matrix, sp.csr_matrix([[1.0, 1.0]]))


def test_duplicate_entries_have_no_index() -> None:
    """A CSR that stores an entry twice is left to scipy (which keeps both)."""
    doubled = sp.csr_matrix(
        (np.array([1.0, 2.0]), np.array([1, 1]), np.array([0, 2])), shape=(1, 3)
    )
    assert ColumnIndex.of(doubled) is None
    assert ColumnIndex.of(sp.csr_matrix(doubled.toarray())) is not None
