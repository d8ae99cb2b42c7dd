"""The monitor's storage: processed updates, the monitored state, breaches, its status.

`pes monitor` (api/monitor) applies portfolio-state updates in micro-batches. Everything
one batch changes commits in one transaction (`MonitorStore.commit`): the ids of its
updates (`monitor_updates`, the idempotency record: an update whose id is there is a
duplicate), the latest positions and prices, the violations it opens and cures with their
history rows and their `policy_breach_detected` / `policy_breach_cleared` events in the
outbox, and the monitor's status row. The broker's messages are acknowledged only after
that commit, so a crash anywhere loses nothing and applies nothing twice.

A monitor violation has `source = "monitor"`, no validation, and the decision id
`monitor:<update id>` of the update that found it. It opens only when no live (open or
acknowledged) violation of its key (portfolio, policy, rule, subject) exists, whoever
opened that one; a check that finds a key compliant cures its live violation, whoever
opened it (as a later validation does).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from api.store.bulk import bind, orjson_text, write_rows
from api.store.db import write_turn
from api.store.inserts import inserted_ids
from api.store.monitor_rows import ACTOR, breach_event, violation_row
from api.store.monitor_status import COUNTERS
from api.store.tables import (
    event_outbox,
    monitor_positions,
    monitor_prices,
    monitor_status,
    monitor_updates,
    policy_violations,
    violation_transitions,
)
from api.store.violation_keys import lock_portfolios
from api.store.violations import LIVE, ViolationStatus

__all__ = [
    "BREACH_CLEARED",
    "BREACH_DETECTED",
    "BatchEffect",
    "BreachKey",
    "Clearing",
    "MonitorStore",
    "Opening",
]

BREACH_DETECTED = "policy_breach_detected"
BREACH_CLEARED = "policy_breach_cleared"

BreachKey = tuple[str, str, str]
"""(policy name, violation type, subject or "") within one portfolio."""


@dataclass(frozen=True)
class Opening:
    """A breach the monitor found that has no live violation (as far as it knows)."""

    portfolio_id: str
    update_id: str
    violation: dict[str, Any]
    """The violation as the report gives it (policy_name, violation_type, subject, ...)."""


@dataclass(frozen=True)
class Clearing:
    """A violation the monitor opened whose breach is gone."""

    portfolio_id: str
    update_id: str
    violation_id: int


@dataclass
class BatchEffect:
    """Everything one micro-batch changes, committed together."""

    updates: list[tuple[str, str, str | None, int]] = field(default_factory=list)
    """(update_id, kind, portfolio_id, stream sequence) of each update applied."""
    positions: dict[str, tuple[str, int, float, dict[str, float]]] = field(default_factory=dict)
    """portfolio_id -> (update_id, sequence, cash, {symbol: quantity})."""
    prices: dict[str, tuple[float, str, int]] = field(default_factory=dict)
    """symbol -> (price, update_id, sequence)."""
    openings: list[Opening] = field(default_factory=list)
    clearings: list[Clearing] = field(default_factory=list)


def _key(v: Any) -> BreachKey:
    """The breach key of a violation (a dict, or a row with its columns)."""
    get = v.get if isinstance(v, dict) else v._mapping.get
    return str(get("policy_name")), str(get("violation_type")), str(get("subject") or "")


class MonitorStore:
    """The monitor's reads at start-up and its one write per micro-batch."""

    def __init__(self, engine: Engine, consumer: str) -> None:
        self.engine = engine
        self.consumer = consumer
        self.totals = dict.fromkeys(COUNTERS, 0)
        self.started_at = datetime.now(UTC)

    # -- start-up ---------------------------------------------------------------------------

    def load(
        self,
    ) -> tuple[dict[str, tuple[int, float, dict[str, float]]], dict[str, tuple[float, int]]]:
        """The stored positions and prices, and this consumer's counters so far.

        Positions: portfolio -> (sequence, cash, quantities); prices: symbol -> (price,
        sequence).
        """
        with self.engine.connect() as conn:
            positions = {
                r.portfolio_id: (int(r.stream_seq), float(r.cash), dict(r.positions))
                for r in conn.execute(sa.select(monitor_positions))
            }
            prices = {
                r.symbol: (float(r.price), int(r.stream_seq))
                for r in conn.execute(sa.select(monitor_prices))
            }
            row = conn.execute(
                sa.select(monitor_status).where(monitor_status.c.consumer == self.consumer)
            ).first()
        if row is not None:
            self.totals = {name: int(getattr(row, name)) for name in COUNTERS}
        return positions, prices

    def live(self) -> dict[str, dict[BreachKey, tuple[int, str]]]:
        """Live violations by portfolio and key: (id, source)."""
        t = policy_violations
        found: dict[str, dict[BreachKey, tuple[int, str]]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    t.c.id,
                    t.c.portfolio_id,
                    t.c.policy_name,
                    t.c.violation_type,
                    t.c.subject,
                    t.c.source,
                )
                .where(t.c.status.in_(LIVE))
                .order_by(t.c.id)
            )
            for r in rows:
                found.setdefault(r.portfolio_id, {}).setdefault(_key(r), (r.id, r.source))
        return found

    def processed(self, update_ids: Iterable[str]) -> set[str]:
        """The ids among `update_ids` already applied."""
        ids = list(dict.fromkeys(update_ids))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                found.update(
                    conn.execute(
                        sa.select(monitor_updates.c.update_id).where(
                            monitor_updates.c.update_id.in_(chunk)
                        )
                    ).scalars()
                )
        return found

    def prune_updates(self, older_than: datetime, limit: int = 50_000) -> int:
        """Forget at most `limit` update ids processed before `older_than`; how many went.

        The ids are the idempotency record: JetStream redelivers only what was not
        acknowledged (within the ack wait) and drops a producer's repeated message id within
        its duplicate window, so an id older than both is never seen again. Bounded per call
        so that one transaction never holds the database for long.
        """
        t = monitor_updates
        oldest = (
            sa.select(t.c.update_id)
            .where(t.c.processed_at < older_than)
            .order_by(t.c.processed_at)
            .limit(limit)
        )
        with write_turn(self.engine), self.engine.begin() as conn:
            gone = conn.execute(t.delete().where(t.c.update_id.in_(oldest.scalar_subquery())))
        return int(gone.rowcount)

    def processed_count(self) -> int:
        """How many updates were applied, in all."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(monitor_updates)).scalar_one()
            )

    # -- one micro-batch ------------------------------------------------------------------

    def commit(
        self,
        effect: BatchEffect,
        *,
        counts: dict[str, int],
        lag: int,
        portfolios: int,
    ) -> tuple[dict[tuple[str, BreachKey], tuple[int, str]], list[int]]:
        """Apply one micro-batch in one transaction.

        Returns the live violation of each opening's key ((portfolio, key) -> (id, source):
        the one opened now, or the live one found first) and the ids cured. `counts` adds to
        the status counters (`consumed`, `duplicates`, `rejected`, `checks`); openings and
        cures made count themselves.
        """
        now = datetime.now(UTC)
        live: dict[tuple[str, BreachKey], tuple[int, str]] = {}
        cured: list[int] = []
        with write_turn(self.engine), self.engine.begin() as conn:
            stamp = bind(conn, monitor_updates.c.processed_at)(now)
            # SQLite keeps JSON as text: orjson writes it about twenty times faster than the
            # standard library (PostgreSQL's JSONB goes through its driver's adapter).
            as_json = (
                orjson_text
                if conn.dialect.name == "sqlite"
                else bind(conn, monitor_positions.c.positions)
            )
            write_rows(
                conn,
                monitor_updates,
                [(u, kind, pid, seq, stamp) for u, kind, pid, seq in effect.updates],
            )
            write_rows(
                conn,
                monitor_positions,
                [
                    (pid, u, seq, cash, as_json(quantities), stamp)
                    for pid, (u, seq, cash, quantities) in effect.positions.items()
                ],
                key="portfolio_id",
            )
            write_rows(
                conn,
                monitor_prices,
                [(s, price, u, seq, stamp) for s, (price, u, seq) in effect.prices.items()],
                key="symbol",
            )
            # The violation locks of every portfolio it opens or cures in, before either
            # (api/store/violation_keys.lock_portfolios).
            touched = [o.portfolio_id for o in effect.openings]
            lock_portfolios(conn, touched + [c.portfolio_id for c in effect.clearings])
            live = self._open(conn, effect.openings, now)
            cured = self._cure(conn, effect.clearings, now)
            opened = sum(1 for _, source in live.values() if source == "opened")
            for name in ("consumed", "duplicates", "rejected", "checks"):
                self.totals[name] += counts.get(name, 0)
            self.totals["breaches_opened"] += opened
            self.totals["breaches_cleared"] += len(cured)
            self._status(conn, now, lag, portfolios, last_update=bool(effect.updates))
        return live, cured

    def heartbeat(self, *, lag: int, portfolios: int, state: str = "running") -> None:
        """Write the status row (every second while running, and at a clean stop)."""
        with write_turn(self.engine), self.engine.begin() as conn:
            self._status(conn, datetime.now(UTC), lag, portfolios, state=state)

    # -- internals --------------------------------------------------------------------------

    def _status(
        self,
        conn: Connection,
        now: datetime,
        lag: int,
        portfolios: int,
        *,
        state: str = "running",
        last_update: bool = False,
    ) -> None:
        row: dict[str, Any] = {
            "consumer": self.consumer,
            "started_at": self.started_at,
            "heartbeat_at": now,
            "lag": lag,
            "portfolios": portfolios,
            "state": state,
            **self.totals,
        }
        insert: Any = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(
            monitor_status
        )
        updated = {k: insert.excluded[k] for k in row if k != "consumer"}
        if last_update:
            row["last_update_at"] = now
            updated["last_update_at"] = insert.excluded["last_update_at"]
        conn.execute(
            insert.values(**row).on_conflict_do_update(index_elements=["consumer"], set_=updated)
        )

    def _open(
        self, conn: Connection, openings: list[Opening], now: datetime
    ) -> dict[tuple[str, BreachKey], tuple[int, str]]:
        """Open each breach without a live violation of its key; (id, "opened" | source).

        In bulk: one read of the live violations of every portfolio concerned, one insert
        of the new violations, one of their history rows, one of their events.
        """
        t = policy_violations
        result: dict[tuple[str, BreachKey], tuple[int, str]] = {}
        if not openings:
            return result
        portfolios = sorted({o.portfolio_id for o in openings})
        existing: dict[tuple[str, BreachKey], tuple[int, str]] = {}
        for start in range(0, len(portfolios), 500):
            for r in conn.execute(
                sa.select(
                    t.c.id,
                    t.c.portfolio_id,
                    t.c.policy_name,
                    t.c.violation_type,
                    t.c.subject,
                    t.c.source,
                )
                .where(t.c.portfolio_id.in_(portfolios[start : start + 500]), t.c.status.in_(LIVE))
                .order_by(t.c.id)
            ):
                existing.setdefault((r.portfolio_id, _key(r)), (r.id, r.source))
        fresh: dict[tuple[str, BreachKey], Opening] = {}
        for o in openings:
            key = (o.portfolio_id, _key(o.violation))
            if key in existing:
                result[key] = existing[key]
            else:
                fresh.setdefault(key, o)
        if not fresh:
            return result
        chosen = list(fresh.values())
        ids = inserted_ids(
            conn, t, [violation_row(o.violation, o.update_id, o.portfolio_id, now) for o in chosen]
        )
        opened = list(zip(ids, chosen, strict=True))
        conn.execute(
            violation_transitions.insert(),
            [
                {
                    "violation_id": violation_id,
                    "action": "opened",
                    "from_status": None,
                    "to_status": ViolationStatus.OPEN.value,
                    "escalation_level": 0,
                    "actor": ACTOR,
                    "reason": f"update {o.update_id} found the holdings in breach",
                    "decision_id": f"monitor:{o.update_id}",
                    "at": now,
                }
                for violation_id, o in opened
            ],
        )
        conn.execute(
            event_outbox.insert(),
            [
                breach_event(
                    BREACH_DETECTED, o.portfolio_id, o.update_id, i, o.violation, "open", now
                )
                for i, o in opened
            ],
        )
        for violation_id, o in opened:
            result[(o.portfolio_id, _key(o.violation))] = (int(violation_id), "opened")
        return result

    def _cure(self, conn: Connection, clearings: list[Clearing], now: datetime) -> list[int]:
        """Mark cured those still live (someone may have closed one); the ids cured."""
        t = policy_violations
        if not clearings:
            return []
        by_id = {c.violation_id: c for c in clearings}
        live = {
            r.id: r
            for r in conn.execute(
                sa.select(t)
                .where(t.c.id.in_(sorted(by_id)), t.c.status.in_(LIVE))
                .with_for_update()
            )
        }
        if not live:
            return []
        # One statement for all (an executemany): a round may cure hundreds.
        conn.execute(
            t.update()
            .where(t.c.id == sa.bindparam("cured_id"))
            .values(
                status=ViolationStatus.CURED.value,
                resolved=True,
                resolved_at=now,
                resolved_by=ACTOR,
                resolution_note=sa.bindparam("note"),
            ),
            [
                {
                    "cured_id": violation_id,
                    "note": f"update {by_id[violation_id].update_id} found the holdings compliant",
                }
                for violation_id in sorted(live)
            ],
        )
        conn.execute(
            violation_transitions.insert(),
            [
                {
                    "violation_id": violation_id,
                    "action": "cured",
                    "from_status": r.status,
                    "to_status": ViolationStatus.CURED.value,
                    "escalation_level": r.escalation_level,
                    "actor": ACTOR,
                    "reason": f"update {by_id[violation_id].update_id} found the holdings "
                    "compliant",
                    "decision_id": f"monitor:{by_id[violation_id].update_id}",
                    "at": now,
                }
                for violation_id, r in sorted(live.items())
            ],
        )
        conn.execute(
            event_outbox.insert(),
            [
                breach_event(
                    BREACH_CLEARED,
                    r.portfolio_id,
                    by_id[violation_id].update_id,
                    violation_id,
                    {**r._mapping, "limit": r.limit_value},
                    "cured",
                    now,
                )
                for violation_id, r in sorted(live.items())
            ],
        )
        return sorted(live)
