"""A factor risk model stays in factor form: memory grows with n, never with n squared."""

from __future__ import annotations

import tracemalloc

import numpy as np
import scipy.sparse as sp

from engine import PolicyEngine
from engine.compile.blocks import digest
from engine.export.constraints import export_constraints
from models.export import ConstraintSetRequest
from tests.engine.factor_case import FACTORS, factor_request

N = 2000
DENSE_BYTES = N * N * 8
"""One dense n x n float64 matrix (32 MB at n = 2000): a whole request must peak below it."""


def test_project_with_risk_cones_never_materializes_n_squared() -> None:
    request = factor_request(N)
    engine = PolicyEngine()
    tracemalloc.start()
    try:
        response = engine.validate(request)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    adjusted = response.adjusted_decision
    assert not response.is_compliant
    assert adjusted is not None and adjusted.is_compliant, response.adjustment_error
    # Before: ~2 GB here (cvxpy's parametrized cone form, n^2 x k cells) and a dense copy of
    # the n x n selection matrix in every structure key.
    assert peak < DENSE_BYTES, f"peak {peak / 1e6:.0f} MB"


def test_digest_of_a_sparse_matrix_never_densifies() -> None:
    n = 20_000  # dense: 3.2 GB
    eye = sp.eye(n, format="csr")
    tracemalloc.start()
    try:
        key = digest(eye)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * n * 8  # a few copies of the CSR arrays, not n^2
    # One key per matrix, whatever its sparse format or stored order.
    assert digest(sp.coo_matrix(eye)) == key
    assert digest(sp.csc_matrix(eye)) == key
    assert digest(sp.eye(n + 1, format="csr")) != key
    assert digest(sp.csr_matrix(np.diag([1.0, 2.0]))) != digest(sp.csr_matrix(np.diag([2.0, 1.0])))


def test_exported_risk_cones_stay_sparse() -> None:
    validation = factor_request(N)
    request = ConstraintSetRequest(
        portfolio_state=validation.portfolio_state, policies=validation.policies
    )
    tracemalloc.start()
    try:
        exported = export_constraints(request, [])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(exported.cones) == 2
    # Each cone: F'P (FACTORS x n) and diag(d) P (n entries), not a dense n x n block.
    for cone in exported.cones:
        assert len(cone.matrix.val) <= (FACTORS + 1) * N
    assert peak < DENSE_BYTES, f"peak {peak / 1e6:.0f} MB"
