"""The benchmark harness runs end to end on a tiny universe. No test here asserts a time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks.cases import build_case
from benchmarks.markdown import markdown
from benchmarks.measure import DEFAULT_PATHS, ENGINE_PATHS, PATHS
from benchmarks.peers import PEER_PATHS
from benchmarks.run import main

ADJUST_PATHS = [p.name for p in ENGINE_PATHS if p.mode == "adjust"]
CHECK_PATHS = [p.name for p in ENGINE_PATHS if p.mode == "validate"]
REPEATS = 3


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    argv = ["--quick", "--sizes", "20", "--repeats", str(REPEATS), "--warmup", "1"]
    argv += ["--http-size", "20", "--http-requests", "5", "--no-plot", "--output", str(out)]
    argv += ["--paths", ",".join(PATHS)]
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


def test_the_default_run_has_the_main_paths_the_fixed_set_and_the_peers() -> None:
    names = {p.name for p in ENGINE_PATHS}
    assert {"engine_check", "engine_project_cones", "engine_project_cones_fixed"} <= names
    assert {p.traded for p in ENGINE_PATHS if p.name.endswith("_fixed")} == {"fixed"}
    assert {p.traded for p in ENGINE_PATHS if not p.name.endswith("_fixed")} == {"varying"}
    assert set(PEER_PATHS) - set(DEFAULT_PATHS) == {"osqp_direct_tight"}
    assert set(names) <= set(DEFAULT_PATHS)


def test_engine_adjustments_in_the_bench_are_compliant(results: dict[str, Any]) -> None:
    for path in ADJUST_PATHS:
        outcomes = results["paths"][path]["results"]["20"]["outcomes"]
        # Every generated decision breaches a strict policy, so every one is adjusted.
        assert outcomes.get("not_compliant") == REPEATS, path
        assert outcomes.get("adjusted") == REPEATS, path
        assert outcomes.get("adjusted_compliant") == REPEATS, path
    for path in CHECK_PATHS:
        check = results["paths"][path]["results"]["20"]
        assert check["outcomes"].get("not_compliant") == REPEATS and "adjusted" not in check
        assert "references" in check["stages_p50_ms"], path  # resolved in process, timed


def test_cone_paths_use_the_20_factor_model_and_breach_it(results: dict[str, Any]) -> None:
    for path in ("engine_scale_back_cones", "engine_project_cones"):
        outcomes = results["paths"][path]["results"]["20"]["outcomes"]
        assert outcomes.get("proposals_breaching_volatility", 0) > 0, path
    case = results["cases"]["20"]
    assert case["factors"]["cones20"] == case["factors"]["cones"] + 9


def test_peers_solve_the_same_qp(results: dict[str, Any]) -> None:
    cells = {p: results["paths"][p]["results"]["20"] for p in PEER_PATHS}
    for path, cell in cells.items():
        assert cell["max_violation"] < 1e-4, path
        assert cell["distance_p50"] > 0, path
    optimum = cells["clarabel_direct"]["distance_p50"]
    for path in ("cvxportfolio_clarabel", "osqp_direct_tight"):
        assert cells[path]["distance_p50"] == pytest.approx(optimum, rel=1e-4), path
    assert set(cells["cvxportfolio_clarabel"]["statuses"]) == {"CLARABEL: optimal"}


def test_ratios_and_targets_are_reported(results: dict[str, Any]) -> None:
    assert "engine_project/cvxportfolio_clarabel" in results["ratios"]
    text = markdown(results)
    for heading in ("Main table", "Secondary table", "Peers and floors", "Ratios", "Targets"):
        assert heading in text
    ratio = next(t for t in results["targets"] if "ratio_at_most" in t)
    assert ratio["measured"] and set(ratio["sizes"]) == {"20"}


def test_http_run_answers_every_request(results: dict[str, Any]) -> None:
    http = results["http"]
    assert http["count"] == 5 and http["errors"] == {}
    assert 0 < http["p50_ms"] <= http["max_ms"]


def test_cases_are_deterministic() -> None:
    a, b = build_case(20), build_case(20)
    assert a.body(3, policy_set="cones", mode="adjust") == b.body(
        3, policy_set="cones", mode="adjust"
    )
    assert a.body(3, policy_set="cones20", mode="adjust") == b.body(
        3, policy_set="cones20", mode="adjust"
    )
    assert a.body(3, policy_set="base", mode="adjust") != a.body(
        4, policy_set="base", mode="adjust"
    )
