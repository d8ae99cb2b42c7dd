"""The benchmark harness runs end to end on a tiny universe. No test here asserts a time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks.cases import build_case
from benchmarks.measure import ENGINE_PATHS, PATHS
from benchmarks.run import main

ADJUST_PATHS = [p.name for p in ENGINE_PATHS if p.mode == "adjust"]
REPEATS = 3


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    argv = ["--quick", "--sizes", "20", "--repeats", str(REPEATS), "--warmup", "1"]
    argv += ["--http-size", "20", "--http-requests", "5", "--no-plot", "--output", str(out)]
    assert main(argv) == 0
    data: dict[str, Any] = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    return data


def test_every_path_has_well_formed_stats(results: dict[str, Any]) -> None:
    assert set(results["paths"]) == set(PATHS)
    for path, data in results["paths"].items():
        cell = data["results"]["20"]
        assert cell["count"] == REPEATS, path
        assert 0 < cell["p50_ms"] <= cell["p99_ms"] <= cell["max_ms"], path
    assert {"cpu", "cores", "python", "versions", "date"} <= set(results["machine"])
    assert results["config"]["sizes"] == [20]
    assert {t["target"] for t in results["targets"]}


def test_engine_adjustments_in_the_bench_are_compliant(results: dict[str, Any]) -> None:
    for path in ADJUST_PATHS:
        outcomes = results["paths"][path]["results"]["20"]["outcomes"]
        # Every generated decision breaches a strict policy, so every one is adjusted.
        assert outcomes.get("not_compliant") == REPEATS, path
        assert outcomes.get("adjusted") == REPEATS, path
        assert outcomes.get("adjusted_compliant") == REPEATS, path
    check = results["paths"]["engine_check"]["results"]["20"]["outcomes"]
    assert check.get("not_compliant") == REPEATS and "adjusted" not in check


def test_baselines_solve_the_same_qp(results: dict[str, Any]) -> None:
    for path in ("naive_cvxpy", "osqp_direct", "osqp_direct_tight"):
        cell = results["paths"][path]["results"]["20"]
        assert cell["max_violation"] < 1e-4, path
        assert cell["distance_p50"] > 0, path


def test_http_run_answers_every_request(results: dict[str, Any]) -> None:
    http = results["http"]
    assert http["count"] == 5 and http["errors"] == {}
    assert 0 < http["p50_ms"] <= http["max_ms"]


def test_cases_are_deterministic() -> None:
    a, b = build_case(20), build_case(20)
    assert a.body(3, policy_set="cones", mode="adjust") == b.body(
        3, policy_set="cones", mode="adjust"
    )
    assert a.body(3, policy_set="base", mode="adjust") != a.body(
        4, policy_set="base", mode="adjust"
    )
