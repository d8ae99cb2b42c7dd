"""`pes global show | set | reset`, `pes validate --database-url` applying the stored global
policy, reserved policy names in `pes policies apply`, and the README's quick start.

The session lifts the QT_* limits (tests/conftest.py); tests here that need the real
defaults clear those variables for themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.cli import main
from api.http.app import create_app
from api.settings import Settings
from tests.api.conftest import EXAMPLES, REQUESTS
from tests.serving import REPO

QT_LIMITS = ("QT_MAX_RISK_PER_TRADE", "QT_MAX_POSITIONS", "QT_CONFIDENCE_THRESHOLD")


@pytest.fixture
def real_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of a fresh machine: no QT_* variable set."""
    for name in (*QT_LIMITS, "QT_RISK_MODE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pes.db'}"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    try:
        return status, json.loads(out), err
    except json.JSONDecodeError:
        return status, out, err


def test_show_set_and_reset(
    url: str, capsys: pytest.CaptureFixture[str], real_defaults: None
) -> None:
    status, shown, _ = _run(capsys, "global", "show", "--database-url", url)
    assert status == 0 and shown["version"] == 1 and shown["max_positions"] == 5
    assert shown["updated_by"] == "environment"
    status, got, _ = _run(
        capsys, "global", "set", "risk_mode=DEFENSIVE", "max_positions=null",
        'allowed_symbols=["AAPL", "MSFT"]', "model_versions={\"lstm\": \"7\"}",
        "--actor", "alice", "--database-url", url,
    )  # fmt: skip
    assert status == 0 and got["changed"] and got["version"] == 2 and got["updated_by"] == "alice"
    assert got["risk_mode"] == "DEFENSIVE" and got["max_positions"] is None
    assert got["allowed_symbols"] == ["AAPL", "MSFT"] and got["model_versions"] == {"lstm": "7"}
    status, got, _ = _run(capsys, "global", "set", "risk_mode=DEFENSIVE", "--database-url", url)
    assert status == 0 and not got["changed"] and got["version"] == 2
    status, got, _ = _run(capsys, "global", "reset", "--database-url", url)
    assert status == 0 and got["version"] == 3 and got["max_positions"] == 5
    assert got["risk_mode"] == "NORMAL" and got["allowed_symbols"] == []


def test_set_from_a_file_and_conditionally(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, got, _ = _run(
        capsys,
        "global",
        "set",
        "--file",
        str(EXAMPLES / "global-policy.json"),
        "--database-url",
        url,
    )
    assert status == 0 and got["version"] == 2 and got["require_confidence"] is False
    patch = tmp_path / "defensive.yaml"
    patch.write_text("risk_mode: DEFENSIVE\nmax_positions: 12\n", encoding="utf-8")
    status, _out, err = _run(
        capsys, "global", "set", "--file", str(patch), "--if-version", "1", "--database-url", url
    )
    assert status == 1 and "version 2" in err
    status, got, _ = _run(
        capsys, "global", "set", "--file", str(patch), "--if-version", "2", "--database-url", url
    )
    assert status == 0 and (got["version"], got["max_positions"]) == (3, 12)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["max_positions=0"], "max_positions: "),
        (["risk_mode=PANIC"], "risk_mode: "),
        (["max_risk_per_trade=2", "bogus=1"], "bogus: "),
        (['model_versions={"m": 3}'], "model_versions.m: "),
        (["last_updated=2026-01-01"], "last_updated: "),
        (["max_positions"], "expected KEY=VALUE"),
        ([], "nothing to set"),
    ],
)
def test_bad_input_exits_2_naming_the_field(
    url: str, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    status, _out, err = _run(capsys, "global", "set", *argv, "--database-url", url)
    assert status == 2 and says in err, err
    status, shown, _ = _run(capsys, "global", "show", "--database-url", url)
    assert shown["version"] == 1  # nothing stored


def test_every_action_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for action in ("show", "set", "reset"):
        with pytest.raises(SystemExit) as exit_:
            main(["global", action, "--help"])
        assert exit_.value.code == 0
        assert "--database-url" in capsys.readouterr().out


def test_pes_validate_with_a_database_applies_its_global_policy(
    url: str, capsys: pytest.CaptureFixture[str], real_defaults: None
) -> None:
    request = str(REQUESTS / "small-rebalance.json")
    policies = str(EXAMPLES / "policies")
    status, offline, _ = _run(capsys, "validate", request, "--policies", policies)
    assert status == 0 and offline["global_policy_version"] is None  # no database: none
    status, stored, _ = _run(
        capsys, "validate", request, "--policies", policies, "--database-url", url
    )
    assert status == 1 and stored["global_policy_version"] == 1
    assert "global-policy.confidence" in {v["policy_name"] for v in stored["violations"]}
    _run(
        capsys,
        "global",
        "set",
        "--file",
        str(EXAMPLES / "global-policy.json"),
        "--database-url",
        url,
    )
    status, permissive, _ = _run(
        capsys, "validate", request, "--policies", policies, "--database-url", url
    )
    assert status == 0 and permissive["global_policy_version"] == 2


def test_policies_apply_refuses_a_reserved_name(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "policy_name: global-policy.max_positions\npolicy_type: POSITION_LIMIT\n"
        "rules: {constraints: [{kind: weight_bounds, max: 0.1}]}\n",
        encoding="utf-8",
    )
    status, _out, err = _run(capsys, "policies", "apply", str(path), "--database-url", url)
    assert status == 2 and "policy_name" in err and "reserved" in err


def test_the_quick_start_answers_as_the_readme_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    real_defaults: None,
) -> None:  # fmt: skip
    """README: `pes policies apply examples/policies && pes global set --file
    examples/global-policy.json && pes serve` on a fresh machine (no QT_* set): the service
    answers the example request as `pes validate` does offline (the README's response)."""
    monkeypatch.chdir(tmp_path)  # pes.db in the working directory, as on a fresh machine
    assert main(["policies", "apply", str(EXAMPLES / "policies")]) == 0
    assert main(["global", "set", "--file", str(EXAMPLES / "global-policy.json")]) == 0
    request = REQUESTS / "aapl-overweight.json"
    capsys.readouterr()
    assert main(["validate", str(request), "--policies", str(EXAMPLES / "policies")]) == 1
    offline = json.loads(capsys.readouterr().out)
    with TestClient(create_app(Settings(events="none"))) as client:
        served = client.post("/api/v1/validate", json=json.loads(request.read_text())).json()
    assert served["global_policy_version"] == 2 and served["risk_mode"]["mode"] == "NORMAL"
    for key in ("is_compliant", "compliance_score", "violations", "recommendations"):
        assert served[key] == offline[key], key
    assert served["adjusted_decision"]["trades"] == offline["adjusted_decision"]["trades"]


def test_a_bad_qt_variable_exits_2_naming_it(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QT_MAX_POSITIONS", "0")
    status, _out, err = _run(capsys, "global", "show", "--database-url", url)
    assert status == 2 and "QT_MAX_POSITIONS: " in err, err


BAD_QT = [
    ("QT_RISK_MODE", "WILD", "Input should be 'AGGRESSIVE', 'NORMAL' or 'DEFENSIVE' (got 'WILD')"),
    ("QT_MAX_POSITIONS", "0", "Input should be greater than or equal to 1 (got '0')"),
    (
        "QT_MAX_POSITIONS",
        "abc",
        "Input should be a valid integer, unable to parse string as an integer (got 'abc')",
    ),
    ("QT_MAX_RISK_PER_TRADE", "-1", "Input should be greater than 0 (got '-1')"),
    (
        "QT_CONFIDENCE_THRESHOLD",
        "high",
        "Input should be a valid number, unable to parse string as a number (got 'high')",
    ),
]


def _pes(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *argv],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(("variable", "value", "message"), BAD_QT)
def test_pes_serve_with_a_bad_qt_variable_exits_2_with_one_line(
    variable: str, value: str, message: str, tmp_path: Path
) -> None:
    """A process, as an operator starts it: one line naming the variable, no traceback,
    nothing opened (the database file is never created)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PES_")}
    env[variable] = value
    database = tmp_path / "pes.db"
    done = _pes(env, "serve", "--port", "0", "--database-url", f"sqlite:///{database}")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"pes serve: {variable}: {message}"], done.stderr
    assert done.stdout == ""
    assert not database.exists()


def test_pes_global_with_a_bad_qt_variable_exits_2_with_one_line(tmp_path: Path) -> None:
    """Every command that reads the variables (here on an empty store) says it the same way."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PES_")}
    env["QT_RISK_MODE"] = "WILD"
    url = f"sqlite:///{tmp_path / 'pes.db'}"
    for argv in (("global", "show"), ("global", "reset")):
        done = _pes(env, *argv, "--database-url", url)
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [f"pes global: QT_RISK_MODE: {BAD_QT[0][2]}"], (
            done.stderr
        )


def test_the_documented_global_policy_test_file_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/policy-tests.md, "The global policy": its file, saved beside the shipped tests."""
    doc = (EXAMPLES.parent / "docs" / "policy-tests.md").read_text(encoding="utf-8")
    block = doc.split("### The global policy", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    path = tmp_path / "examples" / "tests" / "doc-global.tests.yaml"
    path.write_text(block, encoding="utf-8")
    assert main(["test", str(path)]) == 0, capsys.readouterr().out
