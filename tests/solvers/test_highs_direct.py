"""HiGHS through its own API (solvers.highs_direct): MILP, QP, infeasibility, no MIQP."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from solvers.highs_direct import solve_highs

# One row x0 + x1 <= 1.5 over [0, 1]^2.
ROW = sp.csr_matrix(np.array([[1.0, 1.0]]))
REPO = Path(__file__).resolve().parents[2]
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


def test_it_answers_after_another_highs_solve_in_the_same_process() -> None:
    # HiGHS has one thread scheduler per process: a solve that asked for its own thread
    # count after another HiGHS solve (the cvxpy chain's, say) ended without an answer.
    # A fresh process, so that the other solve really is the first one.
    script = textwrap.dedent(
        """
        import numpy as np, highspy, scipy.sparse as sp
        from solvers.highs_direct import solve_highs
        first = highspy.Highs()
        first.setOptionValue("output_flag", False)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = 1, 0
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = [1.0], [0.0], [1.0]
        first.passModel(lp)
        first.run()
        answer = solve_highs(
            c=np.ones(2), A=sp.csr_matrix(np.ones((1, 2))), row_lower=np.array([1.0]),
            row_upper=np.array([np.inf]), col_lower=np.zeros(2), col_upper=np.ones(2),
            integer=np.array([True, False]), time_limit=5.0,
        )
        print(answer.status)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "optimal"
