"""`pes universes` / `pes risk-models` and `pes validate --database-url` on a SQLite file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.cli import main
from tests.builders import instrument, policy, request

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
RISK: dict[str, Any] = {
    "factor_loadings": {s: [1.0 - 0.1 * k] for k, s in enumerate(SYMBOLS)},
    "factor_covariance": [[0.04]],
    "specific_variance": dict.fromkeys(SYMBOLS, 0.02),
}
VOL = policy("vol", {"kind": "volatility", "max": 0.1}, policy_type="RISK_LIMIT")
CAP = policy("cap", {"kind": "weight_bounds", "max": 0.3})


def _write(path: Path, data: Any) -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _inline() -> dict[str, Any]:
    req = request({"AAA": 200, "BBB": 100}, [("AAA", "BUY", 150)], cash=50_000.0, risk_model=RISK)
    body: dict[str, Any] = req.model_dump(mode="json", exclude_none=True)
    body["policies"] = [CAP, VOL]
    return body


def _by_reference() -> dict[str, Any]:
    body = _inline()
    del body["portfolio_state"]["instruments"]
    body["portfolio_state"].update(universe={"id": "four"}, risk_model={"id": "one", "version": 1})
    return body


@pytest.fixture
def database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A SQLite database holding the universe `four` (v1) and the risk model `one` (v1)."""
    url = f"sqlite:///{tmp_path / 'pes.db'}"
    universe = {"id": "four", "instruments": [instrument(s) for s in SYMBOLS]}
    _write(tmp_path / "universe.yaml", universe)
    _write(tmp_path / "models.json", [{"id": "one", "risk_model": RISK}])
    assert main(["universes", "apply", str(tmp_path / "universe.yaml"), "--database-url", url]) == 0
    assert main(["risk-models", "apply", str(tmp_path / "models.json"), "--database-url", url]) == 0
    capsys.readouterr()
    return url


def test_apply_prints_each_action_and_keeps_unchanged_versions(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["universes", "apply", str(tmp_path / "universe.yaml"), "--database-url", database])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {
        "id": "four",
        "action": "unchanged",
        "version": 1,
    }
    changed = {"id": "four", "instruments": [instrument(s, 90.0) for s in SYMBOLS]}
    _write(tmp_path / "universe.yaml", changed)
    assert (
        main(["universes", "apply", str(tmp_path / "universe.yaml"), "--database-url", database])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["version"] == 2
    assert main(["universes", "list", "--database-url", database]) == 0
    assert capsys.readouterr().out.startswith("four\tv2\t4 symbols\t")


def test_an_invalid_file_applies_nothing_and_exits_2(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _write(tmp_path / "bad.json", {"id": "x", "risk_model": {"factor_covariance": [[1.0]]}})
    assert main(["risk-models", "apply", str(bad), "--database-url", database]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "risk_model" in err
    assert main(["risk-models", "list", "--database-url", database]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["one"]


def test_validate_resolves_references_like_the_inline_request(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    inline = _write(tmp_path / "inline.json", _inline())
    by_ref = _write(tmp_path / "ref.json", _by_reference())
    assert main(["validate", str(inline)]) == 1
    expected = json.loads(capsys.readouterr().out)
    assert main(["validate", str(by_ref), "--database-url", database]) == 1
    got = json.loads(capsys.readouterr().out)
    assert got["violations"] == expected["violations"]
    assert {v["policy_name"] for v in got["violations"]} == {"cap", "vol"}
    assert got["reference_data"] == {
        "universe": {"id": "four", "version": 1},
        "risk_model": {"id": "one", "version": 1},
    }


def test_validate_without_a_database_names_the_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    by_ref = _write(tmp_path / "ref.json", _by_reference())
    assert main(["validate", str(by_ref)]) == 2
    err = capsys.readouterr().err
    assert "portfolio_state.universe.id" in err and "--database-url" in err
    # Price overrides alone need no database: the same answer as the repriced instrument.
    priced = _inline()
    priced["portfolio_state"]["prices"] = {"AAA": 80.0}
    repriced = _inline()
    repriced["portfolio_state"]["instruments"][0]["price"] = 80.0
    assert main(["validate", str(_write(tmp_path / "priced.json", priced))]) == 1
    got = json.loads(capsys.readouterr().out)
    assert main(["validate", str(_write(tmp_path / "repriced.json", repriced))]) == 1
    assert got["violations"] == json.loads(capsys.readouterr().out)["violations"]
    assert got["reference_data"] is None


def test_validate_names_an_unknown_version(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = _by_reference()
    body["portfolio_state"]["risk_model"]["version"] = 4
    path = _write(tmp_path / "ref.json", body)
    assert main(["validate", str(path), "--database-url", database]) == 2
    assert "portfolio_state.risk_model.version" in capsys.readouterr().err


def test_fx_snapshots_apply_list_and_refuse_a_bad_file(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = {"id": "eod", "base_currency": "USD", "rates": {"EUR": 1.08, "JPY": 0.0066}}
    path = _write(tmp_path / "fx.yaml", snapshot)
    assert main(["fx-snapshots", "apply", str(path), "--database-url", database]) == 0
    assert json.loads(capsys.readouterr().out) == {"id": "eod", "action": "created", "version": 1}
    assert main(["fx-snapshots", "apply", str(path), "--database-url", database]) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "unchanged"

    bad = _write(tmp_path / "bad.json", {"id": "x", "base_currency": "USD", "rates": {"EUR": -1}})
    assert main(["fx-snapshots", "apply", str(bad), "--database-url", database]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "rates" in err
    assert main(["fx-snapshots", "list", "--database-url", database]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["eod"]
