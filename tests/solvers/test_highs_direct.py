"""HiGHS through its own API (solvers.highs_direct): MILP, QP, infeasibility, no MIQP."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from solvers.highs_direct import solve_highs

# One row x0 + x1 <= 1.5 over [0, 1]^2.
ROW = sp.csr_matrix(np.array([[1.0, 1.0]]))
BOX = {"col_lower": np.zeros(2), "col_upper": np.ones(2)}


def test_a_milp_takes_whole_values() -> None:
    answer = solve_highs(
        c=np.array([-1.0, -2.0]),
        A=ROW,
        row_lower=np.array([-np.inf]),
        row_upper=np.array([1.5]),
        integer=np.array([True, True]),
        time_limit=5.0,
        **BOX,
    )
    assert answer.status == "optimal"
    assert answer.x == pytest.approx([0.0, 1.0])
    assert answer.objective == pytest.approx(-2.0) and answer.bound == pytest.approx(-2.0)


def test_a_qp_projects() -> None:
    # min (x0 - 1)^2 + (x1 - 1)^2 on the row: the point (0.75, 0.75).
    answer = solve_highs(
        c=np.array([-2.0, -2.0]),
        A=ROW,
        row_lower=np.array([-np.inf]),
        row_upper=np.array([1.5]),
        hessian=np.array([2.0, 2.0]),
        time_limit=5.0,
        **BOX,
    )
    assert answer.status == "optimal"
    assert answer.x == pytest.approx([0.75, 0.75], abs=1e-9)


def test_infeasible_has_no_point() -> None:
    answer = solve_highs(
        c=np.zeros(2),
        A=ROW,
        row_lower=np.array([2.5]),
        row_upper=np.array([np.inf]),
        time_limit=5.0,
        **BOX,
    )
    assert answer.status == "infeasible" and answer.x is None


def test_no_qp_with_integer_variables() -> None:
    with pytest.raises(ValueError, match="no QP with integer variables"):
        solve_highs(
            c=np.zeros(2),
            A=ROW,
            row_lower=np.array([-np.inf]),
            row_upper=np.array([1.5]),
            integer=np.array([True, False]),
            hessian=np.ones(2),
            time_limit=5.0,
            **BOX,
        )
