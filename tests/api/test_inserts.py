"""`inserted_ids`: the ids of rows inserted in one statement, in the rows' order.

On both databases (a schema of its own on PostgreSQL), across SQLite's batches of
parameters, with gaps in the ids, and with writers on several threads at once: every id
returned must be the row that was sent at its position.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from api.store import Store
from api.store.inserts import inserted_ids
from tests.concurrency import together

metadata = sa.MetaData()
rows_table = sa.Table(
    "insert_order_probe",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("label", sa.String(40), nullable=False),
)


@pytest.fixture
def engine(store: Store) -> Iterator[sa.Engine]:
    metadata.create_all(store.engine)
    yield store.engine


def _labels(engine: sa.Engine, ids: list[int]) -> list[str]:
    with engine.connect() as conn:
        found = {r.id: r.label for r in conn.execute(sa.select(rows_table))}
    return [found[i] for i in ids]


def test_ids_come_back_in_the_rows_order_across_batches_and_gaps(engine: sa.Engine) -> None:
    first = [{"label": f"a{i}"} for i in range(1500)]  # more than one batch of parameters
    with engine.begin() as conn:
        ids = inserted_ids(conn, rows_table, first)
    assert _labels(engine, ids) == [r["label"] for r in first]
    with engine.begin() as conn:  # gaps: the largest id is gone, and some in the middle
        conn.execute(rows_table.delete().where(rows_table.c.id.in_([ids[-1], *ids[100:200]])))
        again = [{"label": f"b{i}"} for i in range(30)]
        more = inserted_ids(conn, rows_table, again)
    assert len(set(more)) == 30 and not set(more) & set(ids[:100])
    assert _labels(engine, more) == [r["label"] for r in again]
    with engine.begin() as conn:
        assert inserted_ids(conn, rows_table, []) == []


def test_writers_at_once_each_get_their_own_rows(engine: sa.Engine) -> None:
    def write(k: int) -> tuple[list[int], list[str]]:
        sent = [f"w{k}-{i}" for i in range(50)]
        with engine.begin() as conn:
            return inserted_ids(conn, rows_table, [{"label": s} for s in sent]), sent

    for ids, sent in together(4, write):
        assert _labels(engine, ids) == sent


def test_sqlite_inserts_the_rows_in_one_statement(tmp_path: Path) -> None:
    opened = Store.open(f"sqlite:///{tmp_path / 'one.db'}")
    engine = opened.engine
    metadata.create_all(engine)
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.begin() as conn:
            inserted_ids(conn, rows_table, [{"label": str(i)} for i in range(10)])
    finally:
        event.remove(engine, "before_cursor_execute", count)
        engine.dispose()
    assert [s.split()[0] for s in statements] == ["INSERT"]
