"""The vectorized checker equals a row set by row set reading of SPEC section 5."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from engine.check.checker import TOLERANCE, check
from engine.compile.blocks import AffineBlock, SparseMatVec
from engine.compile.layout import Layout, build_layout
from engine.compile.rows import RowSet
from engine.resolve.resolve import effective_policies
from engine.weights.portfolio import snapshot_of
from models import PolicyDefinition, PolicyValidationRequest
from models.typing import FloatArray
from tests.strategies import random_case


def _layout(seed: int) -> Layout:
    body, raw = random_case(np.random.default_rng(70_000 + seed), lot_mode="fractional")
    req = PolicyValidationRequest.model_validate(body)
    policies = [PolicyDefinition.model_validate(p) for p in raw]
    snap = snapshot_of(req)
    return build_layout(effective_policies(req, policies), req, snap)


def _reference(
    layout: Layout, w: FloatArray, *, cure_passive: bool, indices: list[int]
) -> list[tuple[FloatArray, ...]]:
    """Each row set on its own, as the spec reads: excess, breach, active, blocking."""
    out = []
    for k in indices:
        rs = layout.rowsets[k]
        assert rs.provenance is not None
        pre, post = rs.block.values(layout.snap.w0), rs.block.values(w)
        pre_x, post_x = rs.excess(pre), rs.excess(post)
        breached = post_x > TOLERANCE
        active = breached if rs.always_active else breached & (post_x > pre_x + TOLERANCE)
        strict = rs.provenance.strict
        blocking = (breached if cure_passive else active) & strict
        out.append((pre, post, pre_x, post_x, breached, active, blocking))
    return out


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("cure_passive", [False, True])
def test_check_equals_the_row_set_reading(seed: int, cure_passive: bool) -> None:
    layout = _layout(seed)
    rng = np.random.default_rng(seed)
    for w in (layout.snap.w_hat, layout.snap.w0 + rng.normal(0, 0.02, layout.snap.n)):
        for indices in (None, layout.strict()):
            chosen = list(range(len(layout.rowsets))) if indices is None else indices
            result = check(layout, w, cure_passive=cure_passive, indices=indices)
            expected = _reference(layout, w, cure_passive=cure_passive, indices=chosen)
            assert [rc.rowset for rc in result.checks] == [layout.rowsets[k] for k in chosen]
            for rc, want in zip(result.checks, expected, strict=True):
                got = (rc.pre, rc.post, rc.pre_excess, rc.post_excess)
                got += (rc.breached, rc.active, rc.blocking)
                for a, b in zip(got, want, strict=True):
                    np.testing.assert_array_equal(a, b)
            assert result.is_compliant == (not any(bool(e[-1].any()) for e in expected))
            breaches = [(rc.rowset, r) for rc, r in result.breaches()]
            assert breaches == [
                (layout.rowsets[k], int(r))
                for k, e in zip(chosen, expected, strict=True)
                for r in np.flatnonzero(e[4])
            ]


class _Doubled(RowSet):
    """A row set whose excess is not the plain one: the checker must ask it."""

    def excess(self, values: FloatArray) -> FloatArray:
        return 2.0 * super().excess(values)


def test_a_row_set_with_its_own_excess_is_asked() -> None:
    layout = _layout(0)
    plain = layout.rowsets[0]
    block = AffineBlock(A=np.eye(layout.snap.n), c=np.zeros(layout.snap.n))
    limits = layout.snap.w_hat - 0.6e-9  # excess 0.6e-9 each: breached only when doubled
    doubled = _Doubled(block, "le", limits, [None] * layout.snap.n, "test.max", str)
    doubled.provenance = plain.provenance
    layout.rowsets.append(doubled)
    layout.pre_values.append(block.values(layout.snap.w0))
    result = check(layout, layout.snap.w_hat, cure_passive=False)
    np.testing.assert_allclose(result.checks[-1].post_excess, 1.2e-9, rtol=1e-6)
    assert result.checks[-1].breached.all()


@pytest.mark.parametrize("seed", range(5))
def test_row_product_equals_scipy_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, cols = int(rng.integers(1, 40)), int(rng.integers(1, 60))
    drawn = sp.random(rows, cols, density=0.2, random_state=seed, format="csr")
    matrix = sp.vstack([drawn, sp.csr_matrix((1, cols))], format="csr")  # an empty last row
    w = rng.normal(size=cols)
    for m in (matrix, matrix.tocoo(), matrix.toarray()):
        np.testing.assert_array_equal(SparseMatVec(m)(w), np.asarray(m @ w).ravel())
    many = rng.normal(size=(cols, 3))
    np.testing.assert_array_equal(SparseMatVec(matrix)(many), matrix @ many)


def test_row_product_sums_duplicates_in_stored_order() -> None:
    # Row 0 holds column 3 twice and out of order, row 1 is empty, row 2 has one entry.
    matrix = sp.csr_matrix(
        (np.array([1e16, 1.0, -1e16, 0.1]), np.array([3, 1, 3, 0]), np.array([0, 3, 3, 4])),
        shape=(3, 5),
    )
    w = np.array([1.0, 1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(SparseMatVec(matrix)(w), matrix @ w)
    assert SparseMatVec(matrix)(w)[0] == 0.0  # 1e16 + 1 rounds to 1e16: order matters
