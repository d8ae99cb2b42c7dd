"""The stage profiler runs on a tiny universe and reports every stage. No time is asserted."""

from __future__ import annotations

import re

import pytest

from benchmarks.stages import main


def test_stages_prints_percentiles_stages_and_a_profile(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--n", "20", "--policy-set", "base", "--requests", "4", "--warmup", "1"]
    assert main([*argv, "--profile", "5"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"n=20 base validate/auto, 4 requests: p50 [\d.]+ ms, p99 [\d.]+ ms", out)
    for stage in ("resolve", "weights", "compile", "check", "report", "total"):
        assert re.search(rf"\b{stage} [\d.]+", out), stage
    assert "cumulative" in out and "validate" in out


def test_stages_refuses_a_non_positive_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--n", "0"]) == 2
    assert "--n and --requests must be positive" in capsys.readouterr().err


def test_vary_trades_draws_different_sets_of_the_case_trades() -> None:
    from argparse import Namespace

    from benchmarks.cases import build_case
    from benchmarks.stages import _request

    case = build_case(20)
    args = Namespace(
        n=20,
        policy_set="base",
        mode="adjust",
        adjustment="scale_back",
        traded="fixed",
        vary_trades=5,
    )
    full = {t.symbol for t in case.request(0, policy_set="base", mode="adjust").decision.trades}
    drawn = [
        frozenset(t.symbol for t in _request(case, i, args, None).decision.trades) for i in range(6)
    ]
    assert all(len(d) == 5 and d <= full for d in drawn)
    assert len(set(drawn)) > 1  # not the same set every time
    assert drawn[0] == frozenset(t.symbol for t in _request(case, 0, args, None).decision.trades)


def test_vary_trades_beyond_the_case_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--n", "20", "--vary-trades", "999", "--requests", "1"]) == 2
    assert "--vary-trades: the case has" in capsys.readouterr().err


def test_solves_reports_the_direct_solves_iterations(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--n", "20", "--policy-set", "cones", "--mode", "adjust", "--adjustment", "project"]
    assert main([*argv, "--requests", "2", "--warmup", "1", "--solves"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"direct solves \(CLARABEL \(direct\)\): \d+, iterations median \d+ mean [\d.]+,"
        r" ms median [\d.]+ mean [\d.]+, ms per iteration [\d.]+",
        out,
    )


def test_by_reference_names_the_registered_universe(capsys: pytest.CaptureFixture[str]) -> None:
    from argparse import Namespace

    from benchmarks.cases import build_case
    from benchmarks.measure import RegisteredUniverse
    from benchmarks.stages import _request

    case = build_case(20)
    args = Namespace(
        policy_set="twenty", mode="validate", adjustment="auto", traded="varying", vary_trades=0
    )
    state = _request(case, 0, args, RegisteredUniverse(case)).portfolio_state
    assert state.universe is not None and state.universe.id == "bench-20"
    assert not state.instruments and state.prices and len(state.prices) == 20
    argv = ["--n", "20", "--requests", "3", "--warmup", "1", "--traded", "varying"]
    assert main([*argv, "--by-reference"]) == 0
    assert re.search(r"n=20 twenty validate/auto, 3 requests: p50", capsys.readouterr().out)
