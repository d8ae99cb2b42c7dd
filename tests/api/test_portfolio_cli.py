"""`pes portfolios apply | list`, driven in-process through `api.cli.main` on SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from api.cli import main
from api.store import Store
from tests.api.conftest import EXAMPLES

TREE = EXAMPLES / "portfolios" / "acme.yaml"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pes.db'}"


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _paths(db: str) -> dict[str, list[str]]:
    store = Store.open(db)
    try:
        return {
            s.node.portfolio_id: [
                n.portfolio_id for n in store.portfolios.lineage(s.node.portfolio_id)
            ]
            for s in store.portfolios.list()
        }
    finally:
        store.engine.dispose()


def test_apply_puts_parents_first_and_a_second_apply_changes_nothing(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, "portfolios", "apply", TREE, "--database-url", db)
    assert status == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(r["portfolio_id"], r["action"]) for r in lines] == [
        ("acme", "created"),
        ("equity-fund", "created"),
        ("global-equity", "created"),
        ("us-equity", "created"),
    ]
    assert _paths(db)["us-equity"] == ["us-equity", "equity-fund", "acme"]
    status, out, err = _run(capsys, "portfolios", "apply", TREE, "--database-url", db)
    assert status == 0
    assert "0 portfolios were created, 0 replaced, 4 unchanged" in err
    assert {json.loads(line)["action"] for line in out.splitlines()} == {"unchanged"}

    status, out, _ = _run(capsys, "portfolios", "list", "--database-url", db)
    assert status == 0
    assert out.splitlines() == [
        "acme\t-\tAcme Asset Management\tr1\t-",
        "equity-fund\tacme\tEquity Fund\tr1\t-",
        "global-equity\tequity-fund\tGlobal Equity\tr1\t-",
        "us-equity\tequity-fund\tUS Equity\tr1\tUS large caps",
    ]


def test_an_unknown_parent_applies_nothing_and_exits_2(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = [
        {"portfolio_id": "acme", "name": "Acme"},
        {"portfolio_id": "pf-1", "name": "P1", "parent_id": "ghost"},
    ]
    path = tmp_path / "tree.yaml"
    path.write_text(yaml.safe_dump(nodes), encoding="utf-8")
    status, out, err = _run(capsys, "portfolios", "apply", path, "--database-url", db)
    assert status == 2 and out == ""
    assert "nothing applied: parent_id: no portfolio 'ghost'" in err
    assert _paths(db) == {}


def test_a_cycle_in_the_files_exits_2(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yaml").write_text("portfolio_id: a\nname: A\nparent_id: b\n", encoding="utf-8")
    (tmp_path / "b.json").write_text('{"portfolio_id": "b", "name": "B", "parent_id": "a"}')
    status, _, err = _run(capsys, "portfolios", "apply", tmp_path, "--database-url", db)
    assert status == 2
    assert "make a cycle: a → b → a" in err


def test_an_invalid_node_names_the_file_and_field(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- portfolio_id: 'has space'\n  name: x\n", encoding="utf-8")
    status, _, err = _run(capsys, "portfolios", "apply", path, "--database-url", db)
    assert status == 2
    assert f"{path}[0]: portfolio_id:" in err


@pytest.mark.parametrize(
    "argv",
    [["portfolios", "--help"], ["portfolios", "apply", "--help"], ["portfolios", "list", "--help"]],
)
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert "usage: pes portfolios" in capsys.readouterr().out
