"""Every writer of violations takes its portfolios' violation lock first (PostgreSQL).

A validation opening one key's violation and curing another's, a review action and the
monitor could otherwise wait on each other in a cycle over the violations' rows and their
`live_violation_keys` rows (migration 0010). Here a transaction holds a portfolio's lock
and each writer of that portfolio must wait for it, while a writer of another portfolio
goes on; then validations and reversed bulk actions race on two keys without an error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from api.store import Store, ViolationFilter
from api.store.monitor import BatchEffect, Clearing, MonitorStore, Opening
from api.store.violation_keys import lock_portfolios
from api.store.violation_records import LIVE
from models import PolicyValidationResponse
from tests.api.test_live_violation_keys import BOTH, BOTH_OVER, TWO_NAMES, _exact
from tests.api.test_violation_lifecycle import ACTIVE, CAP, HEAVY, LIGHT, PASSIVE, _validated
from tests.concurrency import together

WAIT_S = 0.5
"""How long a writer is given to finish while the lock is held: it must not."""


ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
"""SQLite has one writer at a time: there is no lock order to keep."""


def _record(store: Store, decision: str, portfolio: str = "p-1") -> None:
    response = _validated(decision, LIGHT, ACTIVE, [CAP])
    store.validations.record(
        response, portfolio_id=portfolio, request_hash=f"h-{decision}", actor="bot"
    )


def _live(store: Store, portfolio: str = "p-1") -> list[int]:
    items, _ = store.violations.page(
        ViolationFilter(portfolio_id=portfolio, status=LIVE, limit=1000)
    )
    return sorted(v.id for v in items)


def _waits_for_the_lock(store: Store, portfolio: str, write: Callable[[], object]) -> bool:
    """Hold `portfolio`'s lock, run `write` in a thread: True when it waited for the lock."""
    done = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            write()
        except BaseException as exc:  # reported by the test, not lost in the thread
            failed.append(exc)
        finally:
            done.set()

    with store.engine.begin() as holder:
        lock_portfolios(holder, [portfolio])
        thread = threading.Thread(target=run)
        thread.start()
        waited = not done.wait(WAIT_S)
    thread.join(30)
    assert done.is_set() and not failed, failed
    return waited


@ON_POSTGRESQL
def test_every_writer_of_a_portfolios_violations_waits_for_its_lock(store: Store) -> None:
    _record(store, "d-0")
    _record(store, "other-0", portfolio="p-2")
    first, second = _live(store), _live(store, "p-2")
    writers: dict[str, Callable[[], object]] = {
        "validation": lambda: _record(store, "d-1"),
        "acknowledge": lambda: store.violations.acknowledge(first[0], actor="a", reason=None),
        "resolve": lambda: store.violations.resolve(first[0], actor="a", reason="r"),
        "reopen": lambda: store.violations.reopen(first[0], actor="a", reason="r"),
        "bulk": lambda: store.violations.bulk(_live(store), "resolved", actor="a", reason="r"),
    }
    for name, write in writers.items():
        assert _waits_for_the_lock(store, "p-1", write), name

    monitor = MonitorStore(store.engine, "locks-test")
    breach = _validated("m", HEAVY, PASSIVE, [CAP]).violations[0].model_dump(mode="json")

    def commit(effect: BatchEffect) -> tuple[object, list[int]]:
        return monitor.commit(effect, counts={}, lag=0, portfolios=1)

    opening = BatchEffect(openings=[Opening("p-1", "u-1", breach)])
    assert _waits_for_the_lock(store, "p-1", lambda: commit(opening)), "monitor opens"
    (opened,) = set(_live(store)) - set(first)
    clearing = BatchEffect(clearings=[Clearing("p-1", "u-2", opened)])
    assert _waits_for_the_lock(store, "p-1", lambda: commit(clearing)), "monitor cures"

    # A writer of another portfolio does not wait for p-1's lock.
    other = lambda: store.violations.acknowledge(second[0], actor="a", reason=None)  # noqa: E731
    assert not _waits_for_the_lock(store, "p-1", other)


@ON_POSTGRESQL
def test_validations_and_reversed_bulk_actions_on_two_keys_never_deadlock(
    store: Store,
) -> None:
    # Each round: live violations of two keys (the cap on AAA and on BBB); a validation
    # opens AAA's again while curing BBB's, as two bulk actions resolve them in opposite
    # orders. Without the portfolio lock first, their key rows could be taken in a cycle.
    for round_ in range(6):
        for n in range(2):
            response = _validated(f"r{round_}-{n}", TWO_NAMES, BOTH_OVER, BOTH)
            store.validations.record(
                response, portfolio_id="p-1", request_hash=f"h-r{round_}-{n}", actor="bot"
            )
        ids = _live(store)
        cure_bbb = _validated(f"c{round_}", TWO_NAMES, [("AAA", "BUY", 200.0)], BOTH)

        def validate(round_: int = round_, response: PolicyValidationResponse = cure_bbb) -> None:
            store.validations.record(
                response, portfolio_id="p-1", request_hash=f"h-c{round_}", actor="bot"
            )

        def forward(ids: list[int] = ids) -> None:
            store.violations.bulk(ids, "resolved", actor="a", reason="forward")

        def backward(ids: list[int] = ids) -> None:
            store.violations.bulk(ids[::-1], "acknowledged", actor="b", reason="backward")

        writers: tuple[Callable[[], None], ...] = (validate, forward, backward)

        def write(k: int, writers: tuple[Callable[[], None], ...] = writers) -> None:
            writers[k]()

        together(len(writers), write)  # a deadlock would raise here
        _exact(store)  # and the live keys still count the live violations
