"""`write_turn`: one process's SQLite writers take turns; PostgreSQL's are left alone."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from api.store.db import connect, write_turn

HOLD_S = 0.2


def _second_writer_waits(engine: sa.Engine) -> tuple[bool, bool]:
    """(entered while the first held its turn, entered once it was released)."""
    holding, release = threading.Event(), threading.Event()
    trying, entered = threading.Event(), threading.Event()

    def first() -> None:
        with write_turn(engine):
            holding.set()
            release.wait(10)

    def second() -> None:
        holding.wait(10)
        trying.set()
        with write_turn(engine):
            entered.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    trying.wait(10)
    early = entered.wait(HOLD_S)
    release.set()
    for t in threads:
        t.join(10)
    return early, entered.is_set()


def test_sqlite_writers_of_one_process_wait_for_each_others_turn(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'turns.db'}")
    try:
        assert _second_writer_waits(engine) == (False, True)
        # A turn is per engine and reusable: the same engine serves the next writer at once.
        with write_turn(engine):
            pass
    finally:
        engine.dispose()


def test_other_databases_take_no_turn() -> None:
    # The turn is a SQLite matter (one writer per file); PostgreSQL locks rows, not files.
    engine = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert _second_writer_waits(engine) == (True, True)
    engine.dispose()
