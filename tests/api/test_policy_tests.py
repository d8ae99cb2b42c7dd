"""`pes test`: policy test files, driven in-process through `api.cli.main`.

Portfolio used throughout (NAV 100,000, every price 100, fractional lots): AAA 20%, BBB 10%,
CCC 30%, DDD 10%, cash 30%. Under a 35% name cap, buying 10 AAA (21%) complies; buying 200
AAA (40%) does not, and scaling it back to the cap buys exactly 150.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.cli import main
from api.cli.policy_tests.expectations import match_rows
from api.cli.policy_tests.loading import merge_requests
from api.cli.policy_tests.schema import BreachRow
from models import Violation
from tests.builders import policy, request

REPO = Path(__file__).resolve().parents[2]
BASE = {"AAA": 200.0, "BBB": 100.0, "CCC": 300.0, "DDD": 100.0}
CAP = policy("cap", {"kind": "weight_bounds", "max": 0.35})
CASH = policy("cash-floor", {"kind": "cash", "min": 0.02}, policy_type="INVESTMENT_MANDATE")
CAP_BREACH = {"policy": "cap", "subject": "AAA", "constraint": "weight_bounds.max"}


def _request(trades: list[tuple[str, str, float]], **fields: Any) -> dict[str, Any]:
    """A full request as JSON data (cash 30,000)."""
    data = request(BASE, trades, cash=30_000.0, **fields).model_dump(mode="json")
    data["decision"]["decision_id"] = "d-1"
    return data


def _suite(
    root: Path,
    cases: list[dict[str, Any]],
    *,
    policies: list[dict[str, Any]] | None = None,
    name: str = "cap.tests.yaml",
    **top: Any,
) -> Path:
    """A test directory under `root`: policies/, requests/buy-200.json and tests/<name>."""
    (root / "policies").mkdir(parents=True, exist_ok=True)
    (root / "requests").mkdir(exist_ok=True)
    (root / "tests").mkdir(exist_ok=True)
    (root / "policies" / "pack.yaml").write_text(
        yaml.safe_dump(policies or [CAP, CASH], sort_keys=False), encoding="utf-8"
    )
    (root / "requests" / "buy-200.json").write_text(
        json.dumps(_request([("AAA", "BUY", 200.0)])), encoding="utf-8"
    )
    body = {"policies": "../policies/pack.yaml", **top, "cases": cases}
    path = root / "tests" / name
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    status = main(["test", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


BLOCKED = {
    "name": "buying 200 AAA is blocked",
    "request_file": "../requests/buy-200.json",
    "expect": {
        "compliant": False,
        # 5 points over 35% is a relative excess of 14%: MEDIUM (5% to 25%).
        "breaches": [{**CAP_BREACH, "type": "active", "severity": "MEDIUM"}],
        "adjusted": {"method": "scale_back", "trades": {"AAA": 150}, "tolerance": 1e-6},
    },
}
SMALL_BUY = {
    "name": "buying 10 AAA complies",
    "request": _request([("AAA", "BUY", 10.0)]),
    "expect": {"compliant": True, "no_breaches": True, "adjusted": "none"},
}


def test_passing_file_exits_0_with_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _suite(tmp_path, [BLOCKED, SMALL_BUY])
    status, out, err = _run(capsys, tmp_path)
    assert (status, err) == (0, "")
    assert re.fullmatch(r"1 file, 2 cases: 2 passed, 0 failed \(\d+\.\d\d s\)\n", out), out


def test_wrong_expectation_exits_1_with_expected_and_got_per_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = {
        **BLOCKED,
        "expect": {
            "compliant": True,
            "breaches": [{**CAP_BREACH, "type": "passive"}],
            "adjusted": {"trades": {"AAA": 120}},
        },
    }
    path = _suite(tmp_path, [wrong, SMALL_BUY])
    status, out, _ = _run(capsys, tmp_path)
    assert status == 1
    assert f"FAIL {path}::buying 200 AAA is blocked" in out
    assert "compliant: expected true, got false" in out
    assert "breach cap / AAA\n" in out
    assert "expected: passive weight_bounds.max\n" in out
    assert re.search(
        r"got: +active weight_bounds\.max MEDIUM observed 0\.4 limit 0\.35 \(AAA weight 40\.00%",
        out,
    ), out
    assert "adjusted.trades.AAA: expected 120, got 150" in out
    assert "PASS" not in out  # passing cases are listed only with --verbose
    assert out.rstrip().endswith(" s)") and "2 cases: 1 passed, 1 failed" in out


def test_exact_breaches_report_missing_and_unexpected_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = {
        **BLOCKED,
        "expect": {"breaches": [{"policy": "cash-floor", "subject": None, "type": "active"}]},
    }
    _suite(tmp_path, [case])
    status, out, _ = _run(capsys, tmp_path)
    assert status == 1
    assert "missing breach cash-floor / (portfolio)\n" in out
    assert "unexpected breach cap / AAA\n        expected: no row\n" in out


@pytest.mark.parametrize(
    ("values", "passes"),
    [
        ({"observed": 0.4, "limit": 0.35}, True),
        ({"observed": 0.40009}, True),  # default tolerance 1e-4
        ({"observed": 0.4002}, False),
        ({"observed": 0.41, "tolerance": 0.02}, True),
        ({"limit": 0.3}, False),
    ],
)
def test_observed_value_and_limit_of_a_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], values: dict[str, float], passes: bool
) -> None:
    case = {**BLOCKED, "expect": {"breaches": [{**CAP_BREACH, "type": "active", **values}]}}
    _suite(tmp_path, [case])
    status, out, _ = _run(capsys, tmp_path)
    assert status == (0 if passes else 1), out
    if not passes:
        assert re.search(r"got: +active weight_bounds\.max MEDIUM observed 0\.4 limit 0\.35", out)


def test_duplicate_yaml_key_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _suite(tmp_path, [SMALL_BUY])
    path.write_text(path.read_text(encoding="utf-8") + "policies: other.yaml\n", encoding="utf-8")
    status, _, err = _run(capsys, path)
    assert status == 2
    assert f"{path}: not valid YAML: duplicate key 'policies'" in err


def test_breaches_include_accepts_other_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tight = policy("tight-cap", {"kind": "weight_bounds", "max": 0.3})
    case = {
        **BLOCKED,
        "expect": {"breaches_include": [{"policy": "cap", "subject": "AAA", "type": "active"}]},
    }
    _suite(tmp_path, [case], policies=[CAP, tight])
    assert _run(capsys, tmp_path)[0] == 0


def test_unknown_key_exits_2_naming_file_case_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = {
        **BLOCKED,
        "expect": {"breaches": [{**CAP_BREACH, "type": "active", "sevrity": "HIGH"}]},
    }
    path = _suite(tmp_path, [SMALL_BUY, typo])
    status, out, err = _run(capsys, tmp_path)
    assert (status, out) == (2, "")
    assert (
        f"pes test: {path}: case 'buying 200 AAA is blocked' (cases[1]): "
        "expect.breaches[0].sevrity: Extra inputs are not permitted"
    ) in err


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ({}, "expect: expect states nothing"),
        ({"error": "decision", "compliant": True}, "cannot be combined with compliant"),
        ({"no_breaches": True, "breaches": []}, "give only one of breaches, no_breaches"),
        ({"adjusted": "nothing"}, "expect.adjusted: Input should be 'none'"),
        ({"adjusted": {"tolerance": 1}}, "give `method`, `trades` or both"),
        ({"compliant": "yes please"}, "expect.compliant: Input should be a valid boolean"),
    ],
)
def test_inconsistent_expectations_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], expect: dict[str, Any], message: str
) -> None:
    _suite(tmp_path, [{**SMALL_BUY, "expect": expect}])
    status, _, err = _run(capsys, tmp_path)
    assert status == 2
    assert message in err


def test_a_case_that_is_not_a_mapping_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _suite(tmp_path, [SMALL_BUY, "just text"])  # type: ignore[list-item]
    status, _, err = _run(capsys, path)
    assert status == 2
    assert f"{path}: cases[1]: (case): Input should be a valid dictionary" in err


def test_every_unusable_file_is_reported_and_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _suite(tmp_path, [SMALL_BUY])
    missing = {**BLOCKED, "request_file": "../requests/nowhere.json"}
    bad = _suite(tmp_path, [missing], name="bad.tests.yaml", policies=[CAP])
    bad_text = bad.read_text(encoding="utf-8").replace("../policies/pack.yaml", "gone.yaml")
    bad.write_text(bad_text, encoding="utf-8")
    (tmp_path / "tests" / "broken.tests.yaml").write_text("cases: [unclosed", encoding="utf-8")
    (tmp_path / "tests" / "list.tests.yaml").write_text("- a\n- b\n", encoding="utf-8")
    status, out, err = _run(capsys, tmp_path)
    assert (status, out) == (2, "")
    assert f"{bad}: policies[0]: {bad.parent / 'gone.yaml'}: no such file or directory" in err
    assert (
        f"{bad}: case 'buying 200 AAA is blocked' (cases[0]): request_file: "
        f"{bad.parent / '..' / 'requests' / 'nowhere.json'}: no such file"
    ) in err
    assert "broken.tests.yaml: not valid YAML" in err
    assert "list.tests.yaml: a test file is a mapping" in err
    assert str(good) not in err


def test_invalid_inline_policy_and_duplicate_names_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _suite(tmp_path, [SMALL_BUY])
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    body["policies"] = ["../policies/pack.yaml", CAP, {**CASH, "rules": {"constraints": []}}]
    body["cases"].append(SMALL_BUY)
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    status, _, err = _run(capsys, path)
    assert status == 2
    assert "case name 'buying 10 AAA complies' is used twice" in err
    body["cases"].pop()
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    status, _, err = _run(capsys, path)
    assert status == 2
    assert f"{path}: policies[2].rules.constraints: List should have at least 1 item" in err
    assert f"{path}: policies: 'cap' is defined twice" in err


def test_request_file_resolves_relative_to_the_test_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _suite(tmp_path / "project", [BLOCKED])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    status, out, err = _run(capsys, "../project")
    assert (status, err) == (0, ""), out


@pytest.mark.parametrize(
    ("trades", "tolerance", "passes"),
    [
        ({"AAA": 150}, 1e-6, True),
        ({"AAA": 149.5}, 0.6, True),
        ({"AAA": 149.5}, 0.4, False),
        ({"AAA": 150, "BBB": 0}, 1e-6, True),  # listed at zero = not traded
        ({"AAA": 150, "BBB": 1}, 0.5, False),  # a trade the engine did not make
        ({}, 100, False),  # AAA traded but not listed
    ],
)
def test_adjusted_trades_pass_within_the_tolerance_only(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    trades: dict[str, float],
    tolerance: float,
    passes: bool,
) -> None:
    case = {**BLOCKED, "expect": {"adjusted": {"trades": trades, "tolerance": tolerance}}}
    _suite(tmp_path, [case])
    status, out, _ = _run(capsys, tmp_path)
    assert status == (0 if passes else 1), out
    if not passes:
        assert f"(tolerance {tolerance:g})" in out


def test_adjusted_none_and_status_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = {**BLOCKED, "expect": {"adjusted": "none", "adjustment_status": "not_requested"}}
    _suite(tmp_path, [case])
    status, out, _ = _run(capsys, tmp_path)
    assert status == 1
    assert "adjusted: expected none, got scale_back {AAA: 150" in out
    assert "adjustment_status: expected not_requested, got adjusted" in out


def test_validate_mode_override_over_a_request_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = {
        **BLOCKED,
        "request": {"mode": "validate"},
        "expect": {"compliant": False, "adjusted": "none", "adjustment_status": "not_requested"},
    }
    _suite(tmp_path, [case])
    assert _run(capsys, tmp_path)[0] == 0


def test_conflicting_policies_of_an_infeasible_adjustment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    floor = policy("floor", {"kind": "weight_bounds", "symbols": ["AAA"], "min": 0.5})
    case = {
        **BLOCKED,
        "request": {"cure_passive": True},
        "expect": {
            "compliant": False,
            "adjustment_status": "infeasible",
            "adjusted": "none",
            "conflicting_policies": ["floor", "cap"],
        },
    }
    _suite(tmp_path, [case], policies=[CAP, floor])
    status, out, _ = _run(capsys, tmp_path)
    assert status == 0, out


def test_shared_portfolio_in_defaults_and_trade_only_cases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _request([])["portfolio_state"]
    cases = [
        {
            "name": "buy 200",
            "request": {
                "decision": {"trades": [{"symbol": "AAA", "side": "BUY", "quantity": 200}]}
            },
            "expect": {"compliant": False},
        },
        {
            "name": "buy 10 checked only",
            "request": {
                "decision": {"trades": [{"symbol": "AAA", "side": "BUY", "quantity": 10}]},
                "mode": "adjust",
            },
            "expect": {"compliant": True},
        },
    ]
    _suite(tmp_path, cases, defaults={"request": {"portfolio_state": state, "mode": "validate"}})
    status, out, err = _run(capsys, tmp_path, "--verbose")
    assert (status, err) == (0, ""), out
    assert "buy 200 (" in out and "not compliant, 1 breach, not_requested" in out


@pytest.mark.parametrize(
    ("case", "passes", "message"),
    [
        (
            {
                "request": {
                    "decision": {"trades": [{"symbol": "ZZZ", "side": "BUY", "quantity": 1}]}
                },
                "expect": {"error": "decision.trades[0].symbol"},
            },
            True,
            "",
        ),
        (
            {
                "request": {
                    "decision": {"trades": [{"symbol": "ZZZ", "side": "BUY", "quantity": 1}]}
                },
                "expect": {"error": {"field": "decision.trades[0].symbol", "message": "YYY"}},
            },
            False,
            "error.message: expected text 'YYY' in decision.trades[0].symbol",
        ),
        (
            {
                "request": {
                    "decision": {"trades": [{"symbol": "AAA", "side": "BUY", "quantity": -1}]}
                }
            },
            False,
            "expected a verdict, got a rejection: decision.trades[0].quantity:",
        ),
        (
            {"request": _request([("AAA", "BUY", 1.0)]), "expect": {"error": "decision"}},
            False,
            "error: expected a rejection naming decision, got a verdict (compliant, 0 breach(es))",
        ),
    ],
)
def test_expected_and_unexpected_rejections(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: dict[str, Any],
    passes: bool,
    message: str,
) -> None:
    case = {"name": "c", "expect": {"compliant": True}, **case}
    state = _request([])["portfolio_state"]
    _suite(tmp_path, [case], defaults={"request": {"portfolio_state": state}})
    status, out, _ = _run(capsys, tmp_path)
    assert status == (0 if passes else 1), out
    assert message in out


def test_verbose_lists_every_case_with_its_timings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _suite(tmp_path, [BLOCKED, SMALL_BUY])
    status, out, _ = _run(capsys, tmp_path, "--verbose")
    assert status == 0
    lines = out.splitlines()
    blocked = next(k for k, line in enumerate(lines) if "buying 200 AAA" in line)
    assert re.fullmatch(
        rf"PASS {re.escape(str(path))}::buying 200 AAA is blocked \(\d+\.\d ms\): "
        r"not compliant, 1 breach, adjusted \(scale_back\)",
        lines[blocked],
    )
    assert re.fullmatch(
        r" +engine ms: resolve [\d.]+, weights [\d.]+, compile [\d.]+, check [\d.]+, "
        r"adjust [\d.]+, verify [\d.]+, report [\d.]+",
        lines[blocked + 1],
    )
    assert any(line.startswith(f"PASS {path}::buying 10 AAA complies (") for line in lines)


def test_filter_runs_matching_cases_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _suite(tmp_path, [BLOCKED, SMALL_BUY])
    status, out, _ = _run(capsys, tmp_path, "-k", "10 AAA", "--verbose")
    assert status == 0
    assert "buying 10 AAA" in out and "buying 200" not in out
    assert "1 case: 1 passed, 0 failed, 1 deselected" in out
    status, _, err = _run(capsys, tmp_path, "--filter", "no such case")
    assert status == 2
    assert "no case matches 'no such case'" in err


def test_nothing_to_run_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    status, _, err = _run(capsys, tmp_path / "empty", tmp_path / "absent")
    assert status == 2
    assert f"{tmp_path / 'empty'}: no test files (*.tests.yaml or *.tests.yml) found" in err
    assert f"{tmp_path / 'absent'}: no such file or directory" in err


def test_help_names_the_format_and_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["test", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "docs/policy-tests.md" in text and "Exit status: 0" in text


def test_shipped_examples_pass(capsys: pytest.CaptureFixture[str]) -> None:
    """How CI runs the shipped policy packs: `pes test examples/` must pass."""
    status, out, err = _run(capsys, REPO / "examples")
    assert (status, err) == (0, ""), out
    assert re.search(r"\d+ files?, \d+ cases: \d+ passed, 0 failed", out), out


def test_documented_example_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The complete file in docs/policy-tests.md, saved next to the shipped examples."""
    doc = (REPO / "docs" / "policy-tests.md").read_text(encoding="utf-8")
    example = doc.split("A complete file, with every key", 1)[1].split("```yaml\n", 1)[1]
    example = example.split("```", 1)[0]
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    path = tmp_path / "examples" / "tests" / "doc.tests.yaml"
    path.write_text(example, encoding="utf-8")
    status, out, err = _run(capsys, path, "--verbose")
    assert (status, err) == (0, ""), out
    assert "4 cases: 4 passed" in out


def test_merge_requests_merges_mappings_and_replaces_lists() -> None:
    base = {"decision": {"decision_id": "a", "trades": [1, 2]}, "mode": "adjust"}
    overlay = {"decision": {"trades": [3]}, "mode": "validate", "cure_passive": True}
    assert merge_requests(base, overlay) == {
        "decision": {"decision_id": "a", "trades": [3]},
        "mode": "validate",
        "cure_passive": True,
    }
    assert base["decision"] == {"decision_id": "a", "trades": [1, 2]}  # not modified


def _violation(subject: str, violation_type: str) -> Violation:
    return Violation(
        policy_name="p",
        policy_type="POSITION_LIMIT",
        violation_type=violation_type,
        severity="HIGH",
        breach="active",
        enforcement_level="strict",
        subject=subject,
        observed=0.5,
        limit=0.4,
        pre_trade=0.1,
        description="",
    )


def test_row_matching_finds_an_assignment_a_first_fit_would_miss() -> None:
    # The loose row (any constraint) fits both violations, the strict one only the first;
    # a first fit would give the first violation to the loose row and leave the strict one.
    loose = BreachRow(policy="p", subject="AAA", type="active")
    strict = BreachRow(policy="p", subject="AAA", type="active", constraint="x.max")
    actual = [_violation("AAA", "x.max"), _violation("AAA", "y.max")]
    assert match_rows([loose, strict], actual) == {0: 1, 1: 0}
    assert match_rows([strict, strict], actual) == {0: 0}


def test_fx_trades_of_the_adjusted_decision_are_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A USD fund buying EUR it has no rule about: scale-back keeps the EUR purchase.
    data = _request([("AAA", "BUY", 200.0)])
    data["portfolio_state"]["fx_rates"] = {"EUR": 1.1}
    data["decision"]["fx_trades"] = [{"pair": "EURUSD", "side": "BUY", "quantity": 1_000}]
    case = {**BLOCKED, "request": data, "expect": {"adjusted": {"fx_trades": {"EURUSD": 500}}}}
    case.pop("request_file")
    _suite(tmp_path, [case])
    status, out, _ = _run(capsys, tmp_path)
    assert status == 1
    assert "adjusted.fx_trades.EURUSD: expected 500, got 1000" in out
