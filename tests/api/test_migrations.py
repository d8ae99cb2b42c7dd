"""Migrations at start-up: several processes opening the same empty database at once.

Each process runs `Store.open(url)` (what `pes serve` does at start-up) as a real OS
process; on PostgreSQL they share the test's schema through `PGOPTIONS`. All must succeed,
exactly one reports that it created the schema, and the schema ends at the head revision
with every table.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from api.store.db import alembic_config, connect
from api.store.tables import metadata

REPO = Path(__file__).resolve().parents[2]
PROCESSES = 4
WAIT_S = 120.0
OPEN = (
    "import sys\n"
    "from api.store import Store\n"
    "store = Store.open(sys.argv[1])\n"
    "print('created' if store.created else 'found')\n"
)


def _open_at_once(url: str) -> list[subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PES_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN, url],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def test_processes_migrating_one_empty_database_at_once_all_succeed(database_url: str) -> None:
    results = _open_at_once(database_url)

    failures = [r.stderr.strip().splitlines()[-1:] for r in results if r.returncode != 0]
    assert failures == [], failures
    assert sorted(r.stdout.strip() for r in results) == ["created"] + ["found"] * (PROCESSES - 1)
    engine = connect(database_url)
    try:
        head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head
            tables = set(sa.inspect(conn).get_table_names())
        assert set(metadata.tables) <= tables
    finally:
        engine.dispose()
