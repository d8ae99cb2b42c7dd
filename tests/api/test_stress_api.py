"""POST /api/v1/stress through the real app, and `pes stress`: answers and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from api.cli import main
from api.http.examples import STRESS_EXAMPLE, STRESS_STATE_EXAMPLE
from models.stress import StressResponse
from tests.builders import policy

SYMBOLS = ["AAA", "BBB", "CCC"]
R = [[-0.10, 0.02, 0.00], [0.05, -0.04, 0.01], [-0.02, -0.02, -0.02], [0.03, 0.01, -0.06]]
W = {"AAA": 0.5, "BBB": 0.3, "CCC": 0.2}
MODEL = {
    "factor_loadings": {"AAA": [1.0, 0.2], "BBB": [0.8, -0.1], "CCC": [1.2, 0.5]},
    "factor_covariance": [[0.04, 0.01], [0.01, 0.02]],
    "specific_variance": {"AAA": 0.02, "BBB": 0.03, "CCC": 0.05},
}
CVAR = policy("tail", {"kind": "cvar", "confidence": 0.75, "max": 0.04}, policy_type="RISK_LIMIT")


def _body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "portfolios": [{"portfolio_id": "p1", "weights": W}],
        "historical": {"symbols": SYMBOLS, "returns": R},
        "levels": [0.75],
        "policies": [CVAR],
        "backend": "numpy",
    }
    body.update(fields)
    return body


def test_stress_answers_per_portfolio_and_firm(client: TestClient) -> None:
    r = client.post("/api/v1/stress", json=_body(worst=1))
    assert r.status_code == 200, r.text
    answer = StressResponse.model_validate(r.json())
    p1 = answer.portfolios[0]
    assert p1.risk[0].var == pytest.approx(0.02) and p1.risk[0].cvar == pytest.approx(0.044)
    assert [(w.label, w.loss) for w in p1.worst] == [("hist-0", pytest.approx(0.044))]
    (rule,) = p1.rules
    assert rule.breached and rule.observed == pytest.approx(0.044) and rule.limit == 0.04
    assert answer.firm.risk[0].cvar == pytest.approx(0.044)  # one portfolio: the firm is it
    assert answer.policies_checked == ["tail"]


def test_stress_uses_the_stored_policies(client: TestClient) -> None:
    assert client.post("/api/v1/policies", json=CVAR).status_code == 201
    body = _body()
    del body["policies"]
    r = client.post("/api/v1/stress", json=body)
    assert r.status_code == 200, r.text
    assert [x["policy_name"] for x in r.json()["portfolios"][0]["rules"]] == ["tail"]


@pytest.mark.parametrize("example", [STRESS_EXAMPLE, STRESS_STATE_EXAMPLE])
def test_the_documented_examples_run(client: TestClient, example: dict[str, Any]) -> None:
    r = client.post("/api/v1/stress", json={**example, "backend": "numpy"})
    assert r.status_code == 200, r.text
    assert r.json()["scenarios"] >= 10_000


def _fields(r: Any) -> set[str]:
    assert r.status_code == 422, r.text
    return {d["field"] for d in r.json()["detail"]}


def test_bad_input_is_422_naming_the_field(client: TestClient) -> None:
    post = lambda **f: client.post("/api/v1/stress", json=_body(**f))  # noqa: E731
    assert "levels[0]" in _fields(post(levels=[1.5]))
    assert "historical" in _fields(post(historical={"symbols": SYMBOLS, "returns": [[0.1]]}))
    assert _fields(post(historical={"symbols": ["AAA"], "returns": [[0.1]]})) == {
        "historical.symbols"
    }
    assert "monte_carlo.scenarios" in _fields(post(monte_carlo={"scenarios": 10**6}))
    assert _fields(post(historical=None, monte_carlo={"scenarios": 100})) == {"monte_carlo"}
    shock = [{"name": "x", "factors": {"nope": 0.1}}]
    assert _fields(post(historical=None, risk_model=MODEL, factor_shocks=shock)) == {
        "factor_shocks[0].factors.nope"
    }
    many = {f"S{j}": 0.0001 for j in range(5000)}
    model = {"factor_loadings": {s: [1.0] for s in many}, "factor_covariance": [[0.04]]}
    big = post(
        historical=None,
        portfolios=[{"portfolio_id": "p", "weights": many}],
        risk_model=model,
        monte_carlo={"scenarios": 5000},
    )
    assert _fields(big) == {"monte_carlo.scenarios"}
    assert "portfolios" in _fields(post(portfolios=[]))


# --- pes stress ----------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _files(tmp_path: Path) -> tuple[Path, Path]:
    request = tmp_path / "book.yaml"
    body = {"portfolios": [{"portfolio_id": "p1", "weights": W}], "risk_model": MODEL}
    request.write_text(yaml.safe_dump(body), encoding="utf-8")
    csv = tmp_path / "history.csv"
    lines = ["date," + ",".join(SYMBOLS)] + [
        f"2020-03-{16 + s}," + ",".join(str(x) for x in row) for s, row in enumerate(R)
    ]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return request, csv


def test_cli_historical_shock_and_monte_carlo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request, csv = _files(tmp_path)
    policies = tmp_path / "policies.json"
    policies.write_text(json.dumps([CVAR]), encoding="utf-8")
    args = ["stress", request, "--scenarios", csv, "--levels", "0.75", "--backend", "numpy"]
    status, out, err = _run(capsys, *args, "--policies", policies, "--worst", "1")
    assert status == 1, err  # the strict cvar rule is breached
    answer = StressResponse.model_validate_json(out)
    assert answer.portfolios[0].risk[0].cvar == pytest.approx(0.044)
    assert answer.portfolios[0].worst[0].label == "2020-03-16"
    status, out, err = _run(
        capsys,
        *args,
        "--shock",
        "factor_0=-0.2",
        "--monte-carlo",
        "500",
        "--seed",
        "3",
        "--format",
        "text",
    )
    assert status == 0, err
    assert "505 scenarios (4 historical, 1 factor_shock, 500 monte_carlo) on numpy" in out
    assert "firm-wide" in out and "VaR" in out and "factor_0=-0.2" in out
    again = _run(
        capsys,
        *args,
        "--shock",
        "factor_0=-0.2",
        "--monte-carlo",
        "500",
        "--seed",
        "3",
        "--format",
        "text",
    )
    assert again[1] == out  # seeded


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--levels", "0.95,abc"], "--levels"),
        (["--levels", "1.2"], "--levels"),
        (["--shock", "market"], "--shock"),
        (["--shock", "momentum=0.1"], "factor_shocks[0].factors.momentum"),
        (["--monte-carlo", "0"], "monte_carlo.scenarios"),
        (["--scenarios", "missing.csv"], "--scenarios"),
        (["--policies", "missing.yaml"], "--policies"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    request, _ = _files(tmp_path)
    status, out, err = _run(capsys, "stress", request, "--backend", "numpy", *extra)
    assert status == 2 and out == ""
    assert needle in err and err.startswith("pes stress:")


def test_cli_historical_missing_a_held_name_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request, _ = _files(tmp_path)
    csv = tmp_path / "short.csv"
    csv.write_text("date,AAA\n2020-01-02,0.01\n", encoding="utf-8")
    status, _, err = _run(capsys, "stress", request, "--scenarios", csv)
    assert status == 2 and "historical.symbols" in err and "BBB" in err


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["stress", "--help"])
    assert info.value.code == 0
    assert "--monte-carlo" in capsys.readouterr().out


def test_the_readme_and_docs_commands_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `pes stress` commands shown in README.md and docs/stress.md work as shown."""
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    for doc in ("README.md", "docs/stress.md"):
        text = (root / doc).read_text(encoding="utf-8")
        start = text.index("pes stress examples/")
        command = text[start : text.index("```", start)].replace("\\\n", " ")
        argv = command.split()[1:]
        assert "--policies" in argv and "--monte-carlo" in argv
        status, out, err = _run(capsys, *argv, "--backend", "numpy")
        assert status == 1, err  # the example book breaches its sector stress
        assert "firm-wide" in out and "BREACH sector-stress stress.max_loss [tech-selloff]" in out


# --- registered reference data ---------------------------------------------------------------


def test_a_registered_risk_model_and_universe_by_id(client: TestClient) -> None:
    model_body = {"id": "three", "risk_model": MODEL}
    assert client.put("/api/v1/risk-models/three", json=model_body).status_code == 201
    universe = {"id": "abc", "instruments": [{"symbol": s, "price": 10.0} for s in SYMBOLS]}
    assert client.put("/api/v1/universes/abc", json=universe).status_code == 201
    state = {
        "portfolio_id": "p2",
        "cash": 500.0,
        "positions": [{"symbol": "AAA", "quantity": 50}],
        "universe": {"id": "abc"},
    }
    body = _body(
        portfolios=[
            {"portfolio_id": "p1", "weights": W},
            {"portfolio_id": "p2", "portfolio_state": state},
        ],
        risk_model={"id": "three", "version": 1},
        monte_carlo={"scenarios": 200, "seed": 1},
        policies=[],
    )
    r = client.post("/api/v1/stress", json=body)
    assert r.status_code == 200, r.text
    answer = StressResponse.model_validate(r.json())
    assert answer.sources["monte_carlo"] == 200 and answer.portfolios[1].nav == 1000.0
    unknown = client.post("/api/v1/stress", json={**body, "risk_model": {"id": "nope"}})
    assert _fields(unknown) == {"risk_model.id"}
    state_unknown = {**state, "universe": {"id": "nope"}}
    body["portfolios"][1]["portfolio_state"] = state_unknown
    assert _fields(client.post("/api/v1/stress", json=body)) == {
        "portfolios[1].portfolio_state.universe.id"
    }


def test_cli_looks_up_a_registered_risk_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tmp_path / "book.json"
    body = {"portfolios": [{"portfolio_id": "p1", "weights": W}], "risk_model": {"id": "three"}}
    request.write_text(json.dumps(body), encoding="utf-8")
    args = ["stress", request, "--monte-carlo", "100", "--backend", "numpy"]
    status, _, err = _run(capsys, *args)
    assert status == 2 and "risk_model.id" in err and "--database-url" in err
    url = f"sqlite:///{tmp_path / 'pes.db'}"
    models = tmp_path / "models.json"
    models.write_text(json.dumps([{"id": "three", "risk_model": MODEL}]), encoding="utf-8")
    assert main(["risk-models", "apply", str(models), "--database-url", url]) == 0
    capsys.readouterr()
    status, out, err = _run(capsys, *args, "--database-url", url)
    assert status == 0, err
    assert StressResponse.model_validate_json(out).scenarios == 100
