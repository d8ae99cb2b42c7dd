"""`pes policies apply | list | export`: policy as code, driven in-process through
`api.cli.main` on a SQLite file per test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.cli import main
from api.store import Store
from tests.api.conftest import CORE_POLICIES, core_policies

NAMES = sorted(p["policy_name"] for p in core_policies())


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pes.db'}"


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _versions(db: str, name: str) -> list[Any]:
    store = Store.open(db)
    try:
        return list(store.policies.versions(name))
    finally:
        store.engine.dispose()


def _stored(db: str) -> dict[str, dict[str, Any]]:
    store = Store.open(db)
    try:
        return {
            p.definition.policy_name: p.definition.model_dump(mode="json")
            for p in store.policies.list()
        }
    finally:
        store.engine.dispose()


def _write_yaml(path: Path, policies: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump(policies, sort_keys=False), encoding="utf-8")
    return path


def _widened(tmp_path: Path) -> Path:
    """core.yaml with the single-name cap at 12% instead of 10%."""
    policies = core_policies()
    cap = next(p for p in policies if p["policy_name"] == "single-name-cap")
    cap["rules"]["constraints"][0]["max"] = 0.12
    return _write_yaml(tmp_path / "core-widened.yaml", policies)


def test_apply_creates_version_1_of_each_policy(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(
        capsys, "policies", "apply", CORE_POLICIES, "--database-url", db, "--actor", "ci"
    )
    assert status == 0, err
    assert sorted((r["policy_name"], r["action"], r["version"]) for r in _lines(out)) == [
        (name, "created", 1) for name in NAMES
    ]
    assert f"{len(NAMES)} policies were created, 0 replaced, 0 unchanged" in err
    assert sorted(_stored(db)) == NAMES
    for name in NAMES:
        (version,) = _versions(db, name)
        assert (version.version, version.change, version.actor) == (1, "create", "ci")


def test_second_apply_reports_unchanged(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "policies", "apply", CORE_POLICIES, "--database-url", db)[0] == 0
    status, out, err = _run(capsys, "policies", "apply", CORE_POLICIES, "--database-url", db)
    assert status == 0
    assert {(r["action"], r["version"]) for r in _lines(out)} == {("unchanged", 1)}
    assert f"0 policies were created, 0 replaced, {len(NAMES)} unchanged" in err
    assert all(len(_versions(db, name)) == 1 for name in NAMES)


def test_modified_file_replaces_with_a_diff(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "policies", "apply", CORE_POLICIES, "--database-url", db)[0] == 0
    status, out, err = _run(
        capsys, "policies", "apply", _widened(tmp_path), "--database-url", db, "--actor", "bob"
    )
    assert status == 0, err
    actions = {r["policy_name"]: (r["action"], r["version"]) for r in _lines(out)}
    assert actions.pop("single-name-cap") == ("replaced", 2)
    assert set(actions.values()) == {("unchanged", 1)}
    assert "0 policies were created, 1 replaced, 3 unchanged" in err
    latest = _versions(db, "single-name-cap")[-1]
    assert (latest.version, latest.change, latest.actor) == (2, "replace", "bob")
    assert latest.diff == [{"path": "rules.constraints[0].max", "old": 0.1, "new": 0.12}]
    assert _stored(db)["single-name-cap"]["rules"]["constraints"][0]["max"] == 0.12


def test_dry_run_prints_the_diff_and_changes_nothing(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(
        capsys, "policies", "apply", CORE_POLICIES, "--dry-run", "--database-url", db
    )
    assert status == 0
    assert {(r["action"], json.dumps(r["diff"])) for r in _lines(out)} == {("create", "[]")}
    assert f"{len(NAMES)} policies would be created" in err
    assert _stored(db) == {}

    assert _run(capsys, "policies", "apply", CORE_POLICIES, "--database-url", db)[0] == 0
    before = _stored(db)
    status, out, err = _run(
        capsys, "policies", "apply", _widened(tmp_path), "--dry-run", "--database-url", db
    )
    assert status == 0
    plan = {r["policy_name"]: r for r in _lines(out)}
    assert plan["single-name-cap"]["action"] == "replace"
    assert plan["single-name-cap"]["diff"] == [
        {"path": "rules.constraints[0].max", "old": 0.1, "new": 0.12}
    ]
    assert {plan[n]["action"] for n in NAMES if n != "single-name-cap"} == {"unchanged"}
    assert "0 policies would be created, 1 replaced, 3 unchanged" in err
    assert _stored(db) == before
    assert len(_versions(db, "single-name-cap")) == 1


def test_list_prints_one_line_per_policy(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "policies", "list", "--database-url", db)
    assert (status, out) == (0, "")
    assert _run(capsys, "policies", "apply", CORE_POLICIES, "--database-url", db)[0] == 0
    status, out, _ = _run(capsys, "policies", "list", "--database-url", db)
    assert status == 0
    rows = [line.split("\t") for line in out.splitlines()]
    assert [r[0] for r in rows] == NAMES
    by_name = {r[0]: r[1:] for r in rows}
    assert by_name["beta-band"] == ["v1", "RISK_LIMIT", "advisory", "enabled"]
    assert by_name["single-name-cap"] == ["v1", "POSITION_LIMIT", "strict", "enabled"]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_round_trips_through_apply_as_unchanged(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    assert _run(capsys, "policies", "apply", CORE_POLICIES, "--database-url", db)[0] == 0
    status, out, _ = _run(capsys, "policies", "export", "--format", fmt, "--database-url", db)
    assert status == 0
    exported = json.loads(out) if fmt == "json" else yaml.safe_load(out)
    assert sorted(p["policy_name"] for p in exported) == NAMES
    file = tmp_path / f"exported.{fmt}"
    file.write_text(out, encoding="utf-8")

    status, out, err = _run(capsys, "policies", "apply", file, "--database-url", db)
    assert status == 0, err
    assert {r["action"] for r in _lines(out)} == {"unchanged"}
    # ... and into an empty database it recreates the same definitions.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert _run(capsys, "policies", "apply", file, "--database-url", other)[0] == 0
    assert _stored(other) == _stored(db)


def test_export_defaults_to_yaml(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "policies", "apply", CORE_POLICIES, "--database-url", db)[0] == 0
    status, out, _ = _run(capsys, "policies", "export", "--database-url", db)
    assert status == 0
    assert yaml.safe_load(out)[0]["policy_name"] == NAMES[0]


def _bad_files(tmp_path: Path) -> list[tuple[str, Path, list[str]]]:
    unknown_kind = tmp_path / "unknown-kind.yaml"
    unknown_kind.write_text(
        "- policy_name: odd\n  policy_type: RISK_LIMIT\n"
        "  rules:\n    constraints:\n      - kind: astrology\n        max: 1\n",
        encoding="utf-8",
    )
    bad_yaml = tmp_path / "broken.yaml"
    bad_yaml.write_text("- policy_name: [unclosed\n", encoding="utf-8")
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"policy_name": ', encoding="utf-8")
    bad_enum = tmp_path / "bad-enum.yaml"
    bad_enum.write_text(
        yaml.safe_dump([dict(core_policies()[0], policy_type="NOPE")]), encoding="utf-8"
    )
    bad_condition = _write_yaml(
        tmp_path / "bad-condition.yaml",
        [dict(core_policies()[0], when="risk_mode == 'DEFENSIVE' and")],
    )
    bad_contextual = tmp_path / "bad-contextual.yaml"
    bad_contextual.write_text(
        "- policy_name: lev\n  policy_type: RISK_LIMIT\n  rules:\n    constraints:\n"
        "      - kind: gross_exposure\n        max: {by: risk_mode, values: {NORMAL: -1}}\n",
        encoding="utf-8",
    )
    duplicates = tmp_path / "dups"
    duplicates.mkdir()
    _write_yaml(duplicates / "a.yaml", core_policies()[:1])
    _write_yaml(duplicates / "b.yaml", core_policies()[:1])
    return [
        ("unknown-kind", unknown_kind, ["unknown-kind.yaml[0]", "rules.constraints[0]"]),
        ("invalid-yaml", bad_yaml, ["broken.yaml", "not valid YAML"]),
        ("invalid-json", bad_json, ["broken.json", "not valid JSON"]),
        ("bad-enum", bad_enum, ["bad-enum.yaml[0]", "policy_type"]),
        (
            "bad-condition",
            bad_condition,
            ["bad-condition.yaml[0]: when", "line 1, column 29", "ends too early"],
        ),
        (
            "bad-contextual-limit",
            bad_contextual,
            ["rules.constraints[0].gross_exposure.max.values.NORMAL", "greater than or equal"],
        ),
        ("duplicate-names", duplicates, ["single-name-cap", "also defined in"]),
        ("missing", tmp_path / "absent.yaml", ["absent.yaml", "no such file"]),
    ]


def test_bad_policy_file_exits_2_without_a_traceback(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for case, path, needles in _bad_files(tmp_path):
        for dry in ([], ["--dry-run"]):
            status, out, err = _run(capsys, "policies", "apply", path, *dry, "--database-url", db)
            assert status == 2, (case, out, err)
            assert "Traceback" not in err, case
            assert err.startswith("pes policies apply: "), (case, err)
            for needle in needles:
                assert needle in err, (case, needle, err)
    assert _stored(db) == {}


def test_unreachable_database_exits_with_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = f"sqlite:///{tmp_path / 'no-such-directory' / 'pes.db'}"
    for argv in (
        ["policies", "apply", str(CORE_POLICIES), "--database-url", nowhere],
        ["policies", "list", "--database-url", nowhere],
        ["policies", "export", "--database-url", nowhere],
    ):
        try:
            status = main(argv)
        except Exception as exc:  # the bug this guards against
            pytest.fail(f"pes {' '.join(argv[:2])} raised {exc.__class__.__name__}: {exc}")
        err = capsys.readouterr().err
        assert status != 0, argv
        assert "Traceback" not in err
        assert err.strip(), argv


def test_conditional_policies_apply_and_export_round_trip(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conditional = CORE_POLICIES.parent / "conditional.yaml"
    status, out, err = _run(capsys, "policies", "apply", conditional, "--database-url", db)
    assert status == 0, err
    assert {r["action"] for r in _lines(out)} == {"created"}
    stored = _stored(db)
    assert stored["stressed-sector-cap"]["when"].startswith('risk_mode == "DEFENSIVE"')
    cap = stored["risk-mode-name-cap"]["rules"]["constraints"][0]["max"]
    assert cap == {
        "by": "risk_mode",
        "values": {"AGGRESSIVE": 0.12, "NORMAL": 0.10, "DEFENSIVE": 0.06},
        "default": 0.10,
    }
    status, out, _ = _run(capsys, "policies", "export", "--database-url", db)
    file = tmp_path / "exported.yaml"
    file.write_text(out, encoding="utf-8")
    status, out, err = _run(capsys, "policies", "apply", file, "--database-url", db)
    assert status == 0, err
    assert {r["action"] for r in _lines(out)} == {"unchanged"}
