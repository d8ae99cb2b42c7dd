"""The `pes validate` command line, driven in-process through `api.cli.main` (and once as a
real process, to prove the module entry point works end to end).

Portfolio used throughout (NAV 100,000, every price 100): AAA 20%, BBB 10%, CCC 30%,
DDD 10%, cash 30%. With a 35% single-name cap, buying 10 AAA (21%) complies and buying 200
AAA (40%) does not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import engine.adjust.problems
from api.cli import main
from engine.adjust.problems import CompiledProblem, Space
from engine.compile.layout import Layout
from models import PolicyValidationResponse
from tests.builders import instrument, policy, request

REPO = Path(__file__).resolve().parents[2]

BASE: dict[str, float] = {"AAA": 200, "BBB": 100, "CCC": 300, "DDD": 100}
CAP = policy("cap", {"kind": "weight_bounds", "max": 0.35})
TECH = policy(
    "tech", {"kind": "group_limit", "attribute": "sector", "max": 0.5}, policy_type="SECTOR_LIMIT"
)
CASH = policy("cash-floor", {"kind": "cash", "min": 0.02}, policy_type="INVESTMENT_MANDATE")
COMPLIANT = [("AAA", "BUY", 10.0)]
BREACHING = [("AAA", "BUY", 200.0)]
RISK: dict[str, Any] = {
    "factor_loadings": {"AAA": [1.2], "BBB": [1.0], "CCC": [0.8], "DDD": [0.5], "EEE": [0.9]},
    "factor_covariance": [[0.04]],
    "specific_variance": {"AAA": 0.01, "BBB": 0.01, "CCC": 0.01, "DDD": 0.01, "EEE": 0.01},
}


def _body(
    trades: list[tuple[str, str, float]],
    *,
    decision_id: str = "d-1",
    positions: dict[str, float] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A request as JSON data (cash 30,000 unless given)."""
    fields.setdefault("cash", 30_000.0)
    body = request(BASE if positions is None else positions, trades, **fields).model_dump(
        mode="json"
    )
    body["decision"]["decision_id"] = decision_id
    return body


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _policy_file(path: Path, policies: list[dict[str, Any]] | dict[str, Any]) -> Path:
    """Policies as YAML (.yaml/.yml) or JSON (.json), a list or a single document."""
    if path.suffix == ".json":
        path.write_text(json.dumps(policies), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(policies, sort_keys=False), encoding="utf-8")
    return path


def _responses(stdout: str) -> list[PolicyValidationResponse]:
    """One PolicyValidationResponse per stdout line."""
    lines = stdout.splitlines()
    assert all(line.strip() for line in lines), stdout
    return [PolicyValidationResponse.model_validate_json(line) for line in lines]


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


# --- verdicts and output -------------------------------------------------------------------


def test_all_compliant_exits_0_with_one_json_line_per_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = _policy_file(tmp_path / "policies.yaml", [CAP, TECH])
    files = [
        _write(tmp_path / f"r{k}.json", _body(COMPLIANT, decision_id=f"d-{k}")) for k in range(3)
    ]
    status, out, err = _run(capsys, "validate", *files, "--policies", policies)
    assert status == 0, err
    assert err == ""
    responses = _responses(out)
    assert [r.decision_id for r in responses] == ["d-0", "d-1", "d-2"]
    for response in responses:
        assert response.is_compliant and response.violations == []
        assert response.compliance_score == 1.0
        assert response.policies_checked == ["cap", "tech"]
        assert response.adjusted_decision is None


def test_some_not_compliant_exits_1_and_reports_each_file_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = _policy_file(tmp_path / "policies.yaml", [CAP])
    files = [
        _write(tmp_path / "a.json", _body(COMPLIANT, decision_id="first")),
        _write(tmp_path / "b.json", _body(BREACHING, decision_id="second")),
        _write(tmp_path / "c.json", _body(COMPLIANT, decision_id="third")),
    ]
    status, out, _ = _run(capsys, "validate", *files, "--policies", policies)
    assert status == 1
    first, second, third = _responses(out)
    assert (first.decision_id, second.decision_id, third.decision_id) == (
        "first",
        "second",
        "third",
    )
    assert first.is_compliant and third.is_compliant and not second.is_compliant
    [violation] = second.violations
    assert (violation.policy_name, violation.violation_type, violation.subject) == (
        "cap",
        "weight_bounds.max",
        "AAA",
    )
    assert violation.observed == pytest.approx(0.40)
    adjusted = second.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant
    [trade] = adjusted.trades
    assert (trade.symbol, trade.side.value) == ("AAA", "BUY")
    assert trade.quantity == pytest.approx(150.0, abs=1e-6)


def test_validate_mode_request_is_reported_without_adjustment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = _write(tmp_path / "r.json", _body(BREACHING, policies=[CAP], mode="validate"))
    status, out, _ = _run(capsys, "validate", file)
    assert status == 1
    [response] = _responses(out)
    assert not response.is_compliant and response.adjusted_decision is None


def test_pretty_indents_the_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = _write(tmp_path / "r.json", _body(BREACHING, policies=[CAP]))
    status, plain, _ = _run(capsys, "validate", file)
    assert status == 1 and len(plain.splitlines()) == 1
    status, pretty, _ = _run(capsys, "validate", "--pretty", file)
    assert status == 1
    assert len(pretty.splitlines()) > 10 and '\n  "decision_id": "d-1"' in pretty
    parsed = PolicyValidationResponse.model_validate_json(pretty)
    again = PolicyValidationResponse.model_validate_json(plain)
    timing: Any = {"timings_ms": True, "adjusted_decision": {"solver_attempts"}}
    assert parsed.model_dump(exclude=timing) == again.model_dump(exclude=timing)


# --- where the policies come from --------------------------------------------------------


@pytest.mark.parametrize("name", ["policies.yaml", "policies.yml", "policies.json"])
def test_policies_from_a_file(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = _policy_file(tmp_path / name, [CASH, CAP])
    file = _write(tmp_path / "r.json", _body(BREACHING))
    status, out, _ = _run(capsys, "validate", file, "--policies", policies)
    assert status == 1
    [response] = _responses(out)
    assert response.policies_checked == ["cap", "cash-floor"]
    assert {v.policy_name for v in response.violations} == {"cap"}


@pytest.mark.parametrize("name", ["cap.yaml", "cap.json"])
def test_policy_file_may_hold_a_single_policy(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = _policy_file(tmp_path / name, CAP)
    file = _write(tmp_path / "r.json", _body(COMPLIANT))
    status, out, _ = _run(capsys, "validate", file, "--policies", policies)
    assert status == 0
    assert _responses(out)[0].policies_checked == ["cap"]


def test_policies_from_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "policies"
    (folder / "nested").mkdir(parents=True)
    _policy_file(folder / "cap.yaml", CAP)  # one policy
    _policy_file(folder / "nested" / "more.json", [TECH, CASH])  # a list
    (folder / "README.md").write_text("not a policy file", encoding="utf-8")
    file = _write(tmp_path / "r.json", _body(BREACHING))
    status, out, _ = _run(capsys, "validate", file, "--policies", folder)
    assert status == 1
    [response] = _responses(out)
    assert response.policies_checked == ["cap", "cash-floor", "tech"]


def test_inline_policies_replace_the_policy_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strict_cap = policy("file-cap", {"kind": "weight_bounds", "max": 0.05})
    loose_cap = policy("inline-cap", {"kind": "weight_bounds", "max": 0.5})
    policies = _policy_file(tmp_path / "policies.yaml", [strict_cap])
    inline = _write(tmp_path / "inline.json", _body(BREACHING, policies=[loose_cap]))
    stored = _write(tmp_path / "stored.json", _body(COMPLIANT, decision_id="d-2"))
    status, out, _ = _run(capsys, "validate", inline, stored, "--policies", policies)
    assert status == 1
    inline_response, stored_response = _responses(out)
    assert inline_response.policies_checked == ["inline-cap"] and inline_response.is_compliant
    assert stored_response.policies_checked == ["file-cap"] and not stored_response.is_compliant


def test_inline_policies_need_no_policy_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = _write(tmp_path / "r.json", _body(COMPLIANT, policies=[CAP, TECH]))
    status, out, _ = _run(capsys, "validate", file)
    assert status == 0
    assert _responses(out)[0].policies_checked == ["cap", "tech"]


def test_applicable_policies_narrow_the_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = _policy_file(tmp_path / "policies.yaml", [CAP, TECH, CASH])
    file = _write(tmp_path / "r.json", _body(BREACHING, applicable_policies=["tech"]))
    status, out, _ = _run(capsys, "validate", file, "--policies", policies)
    assert status == 0
    assert _responses(out)[0].policies_checked == ["tech"]


def _assert_bad_input(status: int, out: str, err: str, *needles: str | Path) -> None:
    """Exit 2, no output, and one readable message on stderr mentioning every needle."""
    assert status == 2, err
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith("pes validate: ")
    for needle in needles:
        assert str(needle) in err, (needle, err)


def test_duplicate_policy_names_across_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    first = _policy_file(folder / "a.yaml", [CAP, TECH])
    second = _policy_file(folder / "b.json", [CASH, policy("cap", {"kind": "cash", "min": 0.1})])
    file = _write(tmp_path / "r.json", _body(COMPLIANT))
    status, out, err = _run(capsys, "validate", file, "--policies", folder)
    _assert_bad_input(status, out, err, second, first, "'cap'")


def test_duplicate_policy_names_in_one_file_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = _policy_file(tmp_path / "policies.yaml", [CAP, CAP])
    file = _write(tmp_path / "r.json", _body(COMPLIANT))
    status, out, err = _run(capsys, "validate", file, "--policies", policies)
    _assert_bad_input(status, out, err, policies, "'cap'")


def test_duplicate_inline_policy_names_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = _write(tmp_path / "r.json", _body(COMPLIANT, policies=[CAP, TECH, CAP]))
    status, out, err = _run(capsys, "validate", file)
    _assert_bad_input(status, out, err, file, "policies[2].policy_name", "'cap'")


def test_no_policies_at_all_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = _write(tmp_path / "r.json", _body(COMPLIANT))
    status, out, err = _run(capsys, "validate", file)
    _assert_bad_input(status, out, err, file, "no policies", "--policies")


def test_policies_none_of_which_apply_exit_2_unless_approved_explicitly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = {**CAP, "scope": {"portfolios": ["another-fund"]}}
    policies = _policy_file(tmp_path / "p.yaml", [elsewhere])
    file = _write(tmp_path / "r.json", _body(BREACHING))
    status, out, err = _run(capsys, "validate", file, "--policies", policies)
    _assert_bad_input(status, out, err, "decision.portfolio_id", "no enabled strict or advisory")
    status, out, err = _run(
        capsys, "validate", file, "--policies", policies, "--approve-when-no-policy-applies"
    )
    assert status == 0, err
    assert PolicyValidationResponse.model_validate_json(out).policies_checked == []


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("bad.yaml", "- policy_name: [unclosed\n", "not valid YAML"),
        ("bad.json", "[{", "not valid JSON"),
        (
            "bad.yaml",
            "policy_name: x\npolicy_type: POSITION_LIMIT\n"
            "rules: {constraints: [{kind: leverage, max: 2}]}\n",
            "rules.constraints[0]",
        ),
        (
            "bad.json",
            json.dumps(
                [
                    CAP,
                    {
                        **TECH,
                        "rules": {
                            "constraints": [{"kind": "weight_bounds", "max": 0.1, "maxx": 0.2}]
                        },
                    },
                ]
            ),
            "[1]: rules.constraints[0].weight_bounds.maxx",
        ),
        (
            "nan.json",
            '{"policy_name": "x", "policy_type": "POSITION_LIMIT", '
            '"rules": {"constraints": [{"kind": "weight_bounds", "max": NaN}]}}',
            "rules.constraints[0].weight_bounds.max: Input should be a finite number",
        ),
        ("empty.yaml", "", "(root): Input should be a valid dictionary"),
    ],
    ids=["yaml-syntax", "json-syntax", "unknown-kind", "unknown-field", "nan", "empty"],
)
def test_invalid_policy_file_exit_2(
    name: str, text: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / name
    policies.write_text(text, encoding="utf-8")
    file = _write(tmp_path / "r.json", _body(COMPLIANT))
    status, out, err = _run(capsys, "validate", file, "--policies", policies)
    _assert_bad_input(status, out, err, policies, needle)


def test_missing_policy_path_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = _write(tmp_path / "r.json", _body(COMPLIANT))
    status, out, err = _run(capsys, "validate", file, "--policies", tmp_path / "nowhere.yaml")
    _assert_bad_input(status, out, err, tmp_path / "nowhere.yaml", "no such file")


# --- bad requests ------------------------------------------------------------------------


def _unknown_trade_symbol(body: dict[str, Any]) -> None:
    body["decision"]["trades"].append({"symbol": "ZZZ", "side": "BUY", "quantity": 5})


def _foreign_instrument(body: dict[str, Any]) -> None:
    body["portfolio_state"]["instruments"][0]["currency"] = "JPY"


def _bad_cash_currency(body: dict[str, Any]) -> None:
    body["portfolio_state"]["cash"] = {"USD": 1_000.0, "yen": 5.0}


def _fx_trade(pair: str) -> Callable[[dict[str, Any]], None]:
    def edit(body: dict[str, Any]) -> None:
        body["decision"]["fx_trades"] = [{"pair": pair, "side": "BUY", "quantity": 100}]

    return edit


def _position_without_instrument(body: dict[str, Any]) -> None:
    instruments = body["portfolio_state"]["instruments"]
    body["portfolio_state"]["instruments"] = [i for i in instruments if i["symbol"] != "CCC"]


def _instrument_without_price(body: dict[str, Any]) -> None:
    del body["portfolio_state"]["instruments"][1]["price"]


def _policies(*constraints: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def edit(body: dict[str, Any]) -> None:
        body["policies"] = [
            policy(f"p{k}", c, policy_type="RISK_LIMIT") for k, c in enumerate(constraints)
        ]

    return edit


def _with(edit: Callable[[dict[str, Any]], None], **state: Any) -> Callable[[dict[str, Any]], None]:
    def both(body: dict[str, Any]) -> None:
        edit(body)
        body["portfolio_state"].update(state)

    return both


def _unknown_applicable(body: dict[str, Any]) -> None:
    body["policies"] = [CAP, TECH]
    body["applicable_policies"] = ["tech", "leverage-cap"]


def _conditional_without_context(body: dict[str, Any]) -> None:
    body["policies"] = [CAP, {**TECH, "when": "risk_mode == 'STRESSED'"}]


def _malformed_condition(body: dict[str, Any]) -> None:
    body["policies"] = [CAP, {**TECH, "when": "risk_mode = 'STRESSED'"}]


def _limit_without_context(body: dict[str, Any]) -> None:
    body["policies"] = [
        policy("cap", {"kind": "weight_bounds", "max": {"by": "risk_mode", "values": {"N": 0.3}}})
    ]


def _negative_nav(body: dict[str, Any]) -> None:
    body["portfolio_state"]["cash"] = -1_000_000.0


NO_BETA_ESG = [instrument(s) for s in ("AAA", "BBB", "CCC", "DDD", "EEE")]

BAD_REQUESTS: list[tuple[str, Callable[[dict[str, Any]], None], list[str]]] = [
    (
        "unknown-trade-symbol",
        _unknown_trade_symbol,
        ["decision.trades[1].symbol", "no instrument", "ZZZ"],
    ),
    (
        "position-without-instrument",
        _position_without_instrument,
        ["portfolio_state.positions[2].symbol", "no instrument", "CCC"],
    ),
    (
        "instrument-without-price",
        _instrument_without_price,
        ["portfolio_state.instruments[1].price", "Field required"],
    ),
    (
        "missing-attribute",
        _policies({"kind": "group_limit", "attribute": "esg", "max": 0.5}),
        ["portfolio_state.instruments[0].attributes.esg", "'p0'", "'esg'", "AAA"],
    ),
    (
        "missing-exposure-attribute",
        _policies({"kind": "exposure", "attribute": "esg", "max": 7}),
        ["esg", "'p0'", "AAA"],
    ),
    (
        "non-numeric-exposure-attribute",
        _policies({"kind": "exposure", "attribute": "sector", "max": 1.0}),
        ["numeric 'sector'", "'p0'", "AAA", "'Tech'"],
    ),
    (
        "volatility-without-risk-model",
        _policies({"kind": "volatility", "max": 0.2}),
        ["portfolio_state.risk_model", "needs a risk model", "'p0'"],
    ),
    (
        "var-without-risk-model",
        _policies({"kind": "var", "confidence": 0.99, "max": 0.1}),
        ["portfolio_state.risk_model", "needs a risk model"],
    ),
    (
        "cvar-without-scenarios",
        _policies({"kind": "cvar", "confidence": 0.95, "max": 0.1}),
        ["portfolio_state.scenarios", "needs scenario returns", "'p0'"],
    ),
    (
        "cvar-scenarios-missing-symbol",
        _with(
            _policies({"kind": "cvar", "confidence": 0.95, "max": 0.1}),
            scenarios={"symbols": ["AAA", "BBB", "CCC"], "returns": [[0.1, 0.0, -0.1]]},
        ),
        ["portfolio_state.scenarios.symbols", "DDD"],
    ),
    (
        "tracking-error-without-benchmark",
        _with(_policies({"kind": "tracking_error", "max": 0.05}), risk_model=RISK),
        ["portfolio_state.benchmark", "needs benchmark", "'p0'"],
    ),
    (
        "risk-model-missing-symbol",
        _with(
            _policies({"kind": "volatility", "max": 0.2}),
            risk_model={
                **RISK,
                "factor_loadings": {s: RISK["factor_loadings"][s] for s in ("AAA", "BBB", "CCC")},
            },
        ),
        ["portfolio_state.risk_model", "covering DDD"],
    ),
    (
        "risk-model-not-psd",
        _with(
            _policies({"kind": "volatility", "max": 0.2}),
            risk_model={
                "covariance": {
                    "symbols": ["AAA", "BBB", "CCC", "DDD"],
                    "matrix": [
                        [0.04, 0.0, 0.0, 0.0],
                        [0.0, -0.01, 0.0, 0.0],
                        [0.0, 0.0, 0.04, 0.0],
                        [0.0, 0.0, 0.0, 0.04],
                    ],
                }
            },
        ),
        ["portfolio_state.risk_model.covariance", "positive semidefinite"],
    ),
    ("non-positive-nav", _negative_nav, ["portfolio_state", "NAV", "must be > 0"]),
    (
        "unknown-applicable-policy",
        _unknown_applicable,
        ["applicable_policies[1]", "'leverage-cap'"],
    ),
    (
        "condition-without-context",
        _conditional_without_context,
        ["context.risk_mode", "'tech'", "risk_mode == 'STRESSED'", "lacks"],
    ),
    (
        "malformed-condition",
        _malformed_condition,
        ["policies[1].when", "line 1, column 11", "write =="],
    ),
    (
        "limit-without-context",
        _limit_without_context,
        ["policies[cap].rules.constraints[0].max", "context.risk_mode", "lacks"],
    ),
    (
        "currency-without-a-rate",
        _foreign_instrument,
        ["portfolio_state.fx_rates", "no rate for JPY", "portfolio_state.instruments[0]"],
    ),
    ("malformed-cash-currency", _bad_cash_currency, ["portfolio_state.cash.yen"]),
    ("malformed-fx-pair", _fx_trade("EUR/US"), ["decision.fx_trades[0].pair"]),
    ("fx-pair-one-currency", _fx_trade("EUREUR"), ["decision.fx_trades[0]", "EUREUR"]),
    ("fx-trade-without-a-rate", _fx_trade("GBPUSD"), ["portfolio_state.fx_rates", "GBP"]),
    (
        "drift-without-targets",
        _policies({"kind": "target_drift", "max": 0.05}),
        ["portfolio_state.target_weights", "'p0'"],
    ),
]


@pytest.mark.parametrize(
    ("edit", "needles"),
    [(e, n) for _, e, n in BAD_REQUESTS],
    ids=[name for name, _, _ in BAD_REQUESTS],
)
def test_bad_request_exits_2_naming_file_and_problem(
    edit: Callable[[dict[str, Any]], None],
    needles: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = _body(COMPLIANT, policies=[CAP], instruments=NO_BETA_ESG)
    edit(body)
    file = _write(tmp_path / "request.json", body)
    status, out, err = _run(capsys, "validate", file)
    _assert_bad_input(status, out, err, file, *needles)


@pytest.mark.parametrize(
    ("literal", "where", "field"),
    [
        ("NaN", ("portfolio_state", "cash"), "portfolio_state.cash"),
        (
            "Infinity",
            ("portfolio_state", "instruments", 2, "price"),
            "portfolio_state.instruments[2].price",
        ),
        (
            "-Infinity",
            ("portfolio_state", "positions", 0, "quantity"),
            "portfolio_state.positions[0].quantity",
        ),
        ("NaN", ("decision", "trades", 0, "quantity"), "decision.trades[0].quantity"),
    ],
    ids=["nan-cash", "inf-price", "-inf-quantity", "nan-trade"],
)
def test_non_finite_json_literal_is_rejected(
    literal: str,
    where: tuple[str | int, ...],
    field: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = _body(COMPLIANT, policies=[CAP])
    node: Any = body
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = "@@"
    text = json.dumps(body).replace('"@@"', literal)
    assert literal in text  # Python's json would happily parse this into a float.
    file = tmp_path / "request.json"
    file.write_text(text, encoding="utf-8")
    status, out, err = _run(capsys, "validate", file)
    _assert_bad_input(status, out, err, f"{file}: {field}: Input should be a finite number")


def test_invalid_json_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "broken.json"
    file.write_text('{"decision": {"decision_id": "d-1",', encoding="utf-8")
    status, out, err = _run(
        capsys, "validate", file, "--policies", _policy_file(tmp_path / "p.yaml", [CAP])
    )
    _assert_bad_input(status, out, err, file, "not valid JSON")


def test_json_that_is_not_a_request_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = _write(tmp_path / "list.json", [1, 2, 3])
    status, out, err = _run(capsys, "validate", file)
    _assert_bad_input(status, out, err, file, "(root)")


def test_unknown_request_field_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = _body(COMPLIANT, policies=[CAP])
    body["decision"]["trades"][0]["qty"] = 10
    file = _write(tmp_path / "r.json", body)
    status, out, err = _run(capsys, "validate", file)
    _assert_bad_input(
        status, out, err, f"{file}: decision.trades[0].qty: Extra inputs are not permitted"
    )


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent.json"
    status, out, err = _run(
        capsys, "validate", missing, "--policies", _policy_file(tmp_path / "p.yaml", [CAP])
    )
    _assert_bad_input(status, out, err, missing, "cannot read")


def test_bad_file_after_good_ones_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write(tmp_path / "good.json", _body(BREACHING, decision_id="good", policies=[CAP]))
    bad = tmp_path / "bad.json"
    bad.write_text("nope", encoding="utf-8")
    status, out, err = _run(capsys, "validate", good, bad)
    assert status == 2
    assert "Traceback" not in err and str(bad) in err and "not valid JSON" in err
    assert _responses(out)[0].decision_id == "good"


# --- help ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--help"], ["usage: pes", "validate"]),
        (
            ["validate", "--help"],
            ["usage: pes validate", "FILE", "--policies", "--pretty", "Exit status"],
        ),
    ],
    ids=["pes", "validate"],
)
def test_help_exits_0_and_prints_usage(
    argv: list[str], needles: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    for needle in needles:
        assert needle in out


@pytest.mark.parametrize(
    "argv",
    [[], ["validate"], ["check", "r.json"]],
    ids=["no-command", "no-file", "unknown-command"],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: pes" in err and "Traceback" not in err


# --- compile cache -----------------------------------------------------------------------


def _count_builds(monkeypatch: pytest.MonkeyPatch) -> list[Space]:
    """Record every compiled-problem build (cache miss) the engine makes."""
    builds: list[Space] = []
    original = engine.adjust.problems._build

    def counting(space: Space, layout: Layout, indices: Any) -> CompiledProblem:
        builds.append(space)
        return original(space, layout, indices)

    monkeypatch.setattr(engine.adjust.problems, "_build", counting)
    return builds


def test_files_in_one_run_share_the_compile_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = _count_builds(monkeypatch)
    policies = _policy_file(tmp_path / "policies.yaml", [CAP, TECH])
    # Same structure (policies, universe, traded symbols), different numbers.
    first = _write(tmp_path / "a.json", _body(BREACHING, decision_id="a"))
    second = _write(
        tmp_path / "b.json", _body([("AAA", "BUY", 250.0)], decision_id="b", prices={"AAA": 101.0})
    )
    status, out, _ = _run(capsys, "validate", first, second, "--policies", policies)
    assert status == 1
    responses = _responses(out)
    assert [r.decision_id for r in responses] == ["a", "b"]
    for response in responses:
        assert not response.is_compliant
        assert response.adjusted_decision is not None and response.adjusted_decision.is_compliant
    assert builds == ["scale_back"]


def test_structurally_different_files_compile_separately(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = _count_builds(monkeypatch)
    policies = _policy_file(tmp_path / "policies.yaml", [CAP])
    first = _write(tmp_path / "a.json", _body(BREACHING, decision_id="a"))
    second = _write(tmp_path / "b.json", _body([("CCC", "BUY", 100.0)], decision_id="b"))
    status, out, _ = _run(capsys, "validate", first, second, "--policies", policies)
    assert status == 1
    assert all(r.adjusted_decision is not None for r in _responses(out))
    assert builds == ["scale_back", "scale_back"]


# --- the real process ----------------------------------------------------------------------


def test_module_entry_point_end_to_end(tmp_path: Path) -> None:
    policies = _policy_file(tmp_path / "policies.yaml", [CAP, TECH, CASH])
    files = [
        _write(tmp_path / "ok.json", _body(COMPLIANT, decision_id="ok")),
        _write(tmp_path / "over.json", _body(BREACHING, decision_id="over")),
    ]
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.cli",
            "-v",
            "validate",
            *map(str, files),
            "--policies",
            str(policies),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    ok, over = _responses(completed.stdout)
    assert (ok.decision_id, ok.is_compliant) == ("ok", True)
    assert (over.decision_id, over.is_compliant) == ("over", False)
    assert over.adjusted_decision is not None and over.adjusted_decision.is_compliant
    # -v logs one progress line per file to stderr.
    assert "ok.json: compliant" in completed.stderr
    assert "over.json: NOT compliant" in completed.stderr


def test_a_multi_currency_request_is_validated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example euro fund: buying SONY without yen is adjusted, the FX trade dropped."""
    examples = REPO / "examples"
    body = json.loads((examples / "currencies" / "eu-balanced.json").read_text("utf-8"))
    body["decision"]["trades"] = [{"symbol": "SONY", "side": "BUY", "quantity": 1_000}]
    body["decision"]["fx_trades"] = []
    file = _write(tmp_path / "fx.json", body)
    status, out, _ = _run(
        capsys, "validate", file, "--policies", examples / "policies" / "multi-currency.yaml"
    )
    assert status == 1
    [response] = _responses(out)
    assert [(v.violation_type, v.subject) for v in response.violations] == [("cash.min", "JPY")]
    adjusted = response.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant
    assert [(t.symbol, t.quantity) for t in adjusted.trades] == [("SONY", 80.0)]
    assert response.analytics is not None and response.analytics.pre_trade.nav == 1_887_570.0
