"""`live_violation_keys` (migration 0010): each portfolio's live keys and how many live
violations each has, kept by triggers on `policy_violations`, equal at every step to the
count of the live violations by key, whoever changed them; on both databases, under
concurrent writers (threads and processes), and from the migration's backfill."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy.pool import NullPool

from api.store import Conflict, Store, ViolationFilter
from api.store.db import alembic_config
from api.store.monitor import BatchEffect, Clearing, MonitorStore, Opening
from api.store.tables import (
    live_violation_keys,
    policy_violations,
    violation_transitions,
)
from api.store.violation_records import LIVE
from models import EscalationRule
from tests.api.old_rows import old_validation
from tests.api.test_violation_lifecycle import (
    ACTIVE,
    CAP,
    CURING,
    HEAVY,
    LIGHT,
    PASSIVE,
    _record,
    _validated,
)
from tests.builders import policy
from tests.concurrency import together

FLOOR = policy("floor", {"kind": "cash", "min": 0.5}, policy_type="INVESTMENT_MANDATE")
BOTH = [CAP, FLOOR]  # LIGHT + ACTIVE breaches both: cap on AAA, the floor (no subject)
TWO_NAMES = {"AAA": 200.0, "BBB": 200.0, "CCC": 300.0, "DDD": 100.0}
BOTH_OVER = [("AAA", "BUY", 200.0), ("BBB", "BUY", 200.0)]  # cap on AAA and on BBB, active

Keys = dict[tuple[str, str, str, str], int]


def _table(engine: sa.Engine) -> Keys:
    k = live_violation_keys
    with engine.connect() as conn:
        rows = conn.execute(sa.select(k))
        return {
            (r.portfolio_id, r.policy_name, r.violation_type, r.subject_key): r.live_count
            for r in rows
        }


def _counted(engine: sa.Engine) -> Keys:
    """The live violations counted by key, as the table should hold them."""
    t = policy_violations
    subject = sa.func.coalesce(t.c.subject, "")
    key = (t.c.portfolio_id, t.c.policy_name, t.c.violation_type, subject)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(*key, sa.func.count()).where(t.c.status.in_(LIVE)).group_by(*key)
        )
        return {(r[0], r[1], r[2], r[3]): int(r[4]) for r in rows}


def _exact(store: Store) -> Keys:
    keys = _table(store.engine)
    assert keys == _counted(store.engine)
    assert all(n > 0 for n in keys.values())  # a key without live violations has no row
    return keys


def _live_ids(store: Store, portfolio: str = "p-1", policy_name: str | None = None) -> list[int]:
    items, _ = store.violations.page(
        ViolationFilter(portfolio_id=portfolio, policy_name=policy_name, status=LIVE, limit=1000)
    )
    return sorted(v.id for v in items)


def _monitor(store: Store, effect: BatchEffect) -> tuple[dict[Any, tuple[int, str]], list[int]]:
    return MonitorStore(store.engine, "keys-test").commit(effect, counts={}, lag=0, portfolios=1)


def test_the_keys_equal_the_live_violations_counted_by_key_after_every_change(
    store: Store,
) -> None:
    cap_aaa, floor = ("p-1", "cap", "weight_bounds.max", "AAA"), ("p-1", "floor", "cash.min", "")
    for n in range(3):  # active breaches: one violation per decision, two keys
        _record(store, _validated(f"a-{n}", LIGHT, ACTIVE, BOTH))
    assert _exact(store) == {cap_aaa: 3, floor: 3}
    for n in range(3):  # a passive breach, counted again on its one violation
        _record(store, _validated(f"p-{n}", HEAVY, PASSIVE, [CAP]), "p-2")
    assert _exact(store)[("p-2", "cap", "weight_bounds.max", "AAA")] == 1

    first, second, third = _live_ids(store, policy_name="cap")
    store.violations.acknowledge(first, actor="erin", reason=None)  # live to live
    store.escalations.escalate(
        second, EscalationRule(name="r", level=1), actor="rules", reason="r", now=datetime.now(UTC)
    )
    assert _exact(store)[cap_aaa] == 3
    store.violations.resolve(first, actor="erin", reason="done")
    assert _exact(store)[cap_aaa] == 2
    store.violations.reopen(first, actor="erin", reason="back")
    assert _exact(store)[cap_aaa] == 3
    outcome = store.violations.bulk([second, third], "resolved", actor="erin", reason="bulk")
    assert len(outcome.changed) == 2 and _exact(store)[cap_aaa] == 1

    # A validation finds the cap compliant and the floor breached: the cap's key is cured
    # (its row goes), the floor's counts one more.
    _record(store, _validated("c-1", LIGHT, [("BBB", "BUY", 1.0)], BOTH))
    keys = _exact(store)
    assert cap_aaa not in keys and keys[floor] == 4
    _record(store, _validated("c-2", HEAVY, CURING, [CAP]), "p-2")
    assert ("p-2", "cap", "weight_bounds.max", "AAA") not in _exact(store)

    # The monitor's own violations: opened where no live one has the key, then cleared.
    breach = _validated("m", HEAVY, PASSIVE, [CAP]).violations[0]
    opening = Opening("p-3", "u-1", breach.model_dump(mode="json"))
    live, _ = _monitor(store, BatchEffect(openings=[opening]))
    [(monitor_id, source)] = live.values()
    assert source == "opened" and _exact(store)[("p-3", "cap", "weight_bounds.max", "AAA")] == 1
    _, cured = _monitor(store, BatchEffect(clearings=[Clearing("p-3", "u-2", monitor_id)]))
    assert cured == [monitor_id] and ("p-3", "cap", "weight_bounds.max", "AAA") not in _exact(store)

    # No path of the service deletes a violation or changes its key; the triggers count them
    # anyway (a repair by hand, a purge to come).
    t = policy_violations
    a, b, *_ = _live_ids(store, policy_name="floor")
    with store.engine.begin() as conn:
        conn.execute(t.update().where(t.c.id == a).values(subject=""))  # the same key
        conn.execute(t.update().where(t.c.id == b).values(subject="XYZ", portfolio_id="p-9"))
    keys = _exact(store)
    assert keys[floor] == 3 and keys[("p-9", "floor", "cash.min", "XYZ")] == 1
    with store.engine.begin() as conn:
        conn.execute(
            violation_transitions.delete().where(violation_transitions.c.violation_id == b)
        )
        conn.execute(t.delete().where(t.c.id == b))
        closed = sa.select(t.c.id).where(t.c.status == "cured").scalar_subquery()
        conn.execute(
            violation_transitions.delete().where(violation_transitions.c.violation_id.in_(closed))
        )
        conn.execute(t.delete().where(t.c.id.in_(closed)))
    assert ("p-9", "floor", "cash.min", "XYZ") not in _exact(store)


def test_a_validation_cures_only_the_keys_it_found_compliant_within_a_policy(
    store: Store,
) -> None:
    for n in range(3):  # the cap breached on AAA and on BBB by each decision
        _record(store, _validated(f"d-{n}", TWO_NAMES, BOTH_OVER, [CAP]))
    assert _exact(store) == {
        ("p-1", "cap", "weight_bounds.max", "AAA"): 3,
        ("p-1", "cap", "weight_bounds.max", "BBB"): 3,
    }
    _record(store, _validated("d-3", TWO_NAMES, BOTH_OVER[:1], [CAP]))  # AAA only
    assert _exact(store) == {("p-1", "cap", "weight_bounds.max", "AAA"): 4}
    cured, _ = store.violations.page(ViolationFilter(status=("cured",)))
    assert sorted(v.violation["subject"] for v in cured) == ["BBB"] * 3


# --- concurrency ---------------------------------------------------------------------------

ROUNDS = 6


def _validate_rounds(store: Store, worker: int) -> None:
    """Validations of one portfolio that open, count again and cure, in turn."""
    for n in range(ROUNDS):
        shape = (n + worker) % 3
        if shape == 0:
            response = _validated(f"w{worker}-{n}", LIGHT, ACTIVE, BOTH)
        elif shape == 1:
            response = _validated(f"w{worker}-{n}", HEAVY, PASSIVE, BOTH)
        else:
            response = _validated(f"w{worker}-{n}", LIGHT, [("BBB", "BUY", 1.0)], BOTH)
        _record(store, response)


def _review_rounds(store: Store, worker: int) -> None:
    """Acknowledge, resolve and reopen the portfolio's violations, one at a time."""
    for n in range(ROUNDS * 2):
        items, _ = store.violations.page(ViolationFilter(portfolio_id="p-1", limit=50))
        for v in items[worker % 2 :: 3]:
            action = ("acknowledge", "resolve", "reopen")[(n + v.id) % 3]
            try:
                getattr(store.violations, action)(v.id, actor=f"r{worker}", reason="r")
            except Conflict:
                pass  # another worker moved it first


def _work(store: Store, worker: int) -> None:
    (_validate_rounds if worker % 2 == 0 else _review_rounds)(store, worker)


def test_concurrent_validations_and_reviews_keep_the_keys_exact(store: Store) -> None:
    _record(store, _validated("seed", LIGHT, ACTIVE, BOTH))
    together(6, lambda k: _work(store, k))
    keys = _exact(store)
    assert keys  # the validations left some breach live
    _, total = store.violations.page(ViolationFilter(portfolio_id="p-1"))
    assert total > ROUNDS


def _work_in_process(database_url: str, worker: int, start: Any) -> None:
    """A worker process with a store of its own on the shared database."""
    store = Store.open(database_url)
    try:
        start.wait(timeout=300)
        _work(store, worker)
    finally:
        store.engine.dispose()


def test_concurrent_processes_keep_the_keys_exact(store: Store, database_url: str) -> None:
    _record(store, _validated("seed", LIGHT, ACTIVE, BOTH))  # schema migrated
    workers = 4
    context = multiprocessing.get_context("spawn")  # no fork of a threaded test process
    with context.Manager() as manager, ProcessPoolExecutor(workers, mp_context=context) as pool:
        start = manager.Barrier(workers)
        jobs = [pool.submit(_work_in_process, database_url, k, start) for k in range(workers)]
        for job in jobs:
            job.result(timeout=600)
    assert _exact(store)


# --- the migration's backfill --------------------------------------------------------------


def _violation(
    validation_id: int, portfolio: str, name: str, subject: str | None, status: str
) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "validation_id": validation_id,
        "decision_id": "dec-old",
        "portfolio_id": portfolio,
        "policy_name": name,
        "policy_type": "POSITION_LIMIT",
        "violation_type": "weight_bounds.max",
        "severity": "HIGH",
        "breach": "active",
        "enforcement_level": "strict",
        "subject": subject,
        "observed": 0.4,
        "limit_value": 0.35,
        "pre_trade": 0.3,
        "description": "over",
        "created_at": now,
        "resolved": status in ("resolved", "cured"),
        "status": status,
    }


def test_the_migration_counts_the_live_violations_already_stored(database_url: str) -> None:
    engine = sa.create_engine(database_url, poolclass=NullPool)
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0009")
    rows = [
        ("pf-1", "cap", "AAA", "open"),
        ("pf-1", "cap", "AAA", "acknowledged"),
        ("pf-1", "cap", "AAA", "cured"),
        ("pf-1", "cap", "BBB", "resolved"),  # no live violation: no key
        ("pf-1", "floor", None, "open"),
        ("pf-1", "floor", "", "open"),  # the same key as no subject
        ("pf-2", "cap", "AAA", "open"),
    ]
    with engine.begin() as conn:
        validation_id = old_validation(conn)
        conn.execute(policy_violations.insert(), [_violation(validation_id, *r) for r in rows])
    engine.dispose()

    store = Store.open(database_url)  # migrates to the head
    try:
        assert _exact(store) == {
            ("pf-1", "cap", "weight_bounds.max", "AAA"): 2,
            ("pf-1", "floor", "weight_bounds.max", ""): 2,
            ("pf-2", "cap", "weight_bounds.max", "AAA"): 1,
        }
        (aaa,) = _live_ids(store, "pf-2")
        store.violations.resolve(aaa, actor="erin", reason="done")  # the triggers carry on
        assert ("pf-2", "cap", "weight_bounds.max", "AAA") not in _exact(store)
    finally:
        store.engine.dispose()

    # And it reverts: no table, no trigger left behind (a violation still changes status).
    engine = sa.create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
    with engine.begin() as conn:
        assert "live_violation_keys" not in sa.inspect(conn).get_table_names()
        t = policy_violations
        conn.execute(t.update().where(t.c.status == "open").values(status="resolved"))
        conn.execute(t.insert(), [_violation(validation_id, "pf-3", "cap", "CCC", "open")])
    engine.dispose()
