"""The decision log: each stored validation's request and the exact policy versions applied.

A log entry belongs to one row of `validations` and is written in its transaction
(`ValidationStore.record`). The request is kept as named parts (`LoggedRequest.parts`:
the decision, the portfolio state, its instruments, its risk data, the context, the
options, the portfolio's lineage and the versions of every stored policy the engine was
given), each a content-addressed blob (`api.store.blobs`), so a universe or a state sent
many times is stored once. The entry itself keeps the digests, the version of each policy
of the effective set, the global policy's version and the reference data versions used.

Retention: `purge(before)` deletes the entries logged before a time, then the blobs no
remaining entry references; the validations, their violations and events stay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from api.store import blobs
from api.store.tables import decision_log, decision_log_blobs, request_blobs, validations

__all__ = ["DecisionLogStore", "LogEntry", "LogFilter", "LoggedRequest", "Purged"]


@dataclass(frozen=True)
class LoggedRequest:
    """What the log keeps of one validation besides its answer.

    `parts` maps a part's name to its JSON value; `policy_versions` names the version of
    each stored policy of the effective set; `global_policy_version` is the global policy's
    (None: none applied); `reference_data` the registered versions used (JSON, or None).
    """

    parts: Mapping[str, Any]
    policy_versions: Mapping[str, int]
    global_policy_version: int | None
    reference_data: dict[str, Any] | None = None


@dataclass(frozen=True)
class LogEntry:
    """One logged validation: the stored answer and the request that produced it."""

    validation_id: int
    decision_id: str
    portfolio_id: str
    logged_at: datetime
    actor: str
    response: dict[str, Any]
    parts: dict[str, Any]
    policy_versions: dict[str, int]
    global_policy_version: int | None
    reference_data: dict[str, Any] | None


@dataclass(frozen=True)
class LogFilter:
    """Which logged validations: every given filter must hold (lists: any of)."""

    since: datetime | None = None
    until: datetime | None = None
    portfolio_ids: Sequence[str] = ()
    decision_ids: Sequence[str] = ()
    validation_ids: Sequence[int] = ()


@dataclass(frozen=True)
class Purged:
    """What a purge removed (or, dry, would remove)."""

    entries: int
    blobs: int
    bytes: int = 0
    dry_run: bool = False
    details: dict[str, int] = field(default_factory=dict)


def _conditions(where: LogFilter) -> list[sa.ColumnElement[bool]]:
    out: list[sa.ColumnElement[bool]] = []
    if where.since is not None:
        out.append(decision_log.c.logged_at >= where.since)
    if where.until is not None:
        out.append(decision_log.c.logged_at < where.until)
    if where.portfolio_ids:
        out.append(validations.c.portfolio_id.in_(list(where.portfolio_ids)))
    if where.decision_ids:
        out.append(validations.c.decision_id.in_(list(where.decision_ids)))
    if where.validation_ids:
        out.append(decision_log.c.validation_id.in_(list(where.validation_ids)))
    return out


_JOINED = decision_log.join(validations, validations.c.id == decision_log.c.validation_id)


class DecisionLogStore:
    """Write (inside a validation's transaction), read, export and purge the decision log."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def write(conn: Connection, validation_id: int, logged: LoggedRequest, now: datetime) -> None:
        """Log `logged` for the validation `validation_id`, in `conn`'s transaction."""
        parts = [blobs.Blob(name, value) for name, value in logged.parts.items()]
        blobs.put(conn, parts, now)
        conn.execute(
            decision_log.insert().values(
                validation_id=validation_id,
                logged_at=now,
                parts={b.part: b.digest for b in parts},
                policy_versions=dict(logged.policy_versions),
                global_policy_version=logged.global_policy_version,
                reference_data=logged.reference_data,
            )
        )
        conn.execute(
            decision_log_blobs.insert(),
            [
                {"validation_id": validation_id, "digest": d}
                for d in sorted({b.digest for b in parts})
            ],
        )

    def count(self, where: LogFilter) -> int:
        """How many logged validations match `where`."""
        query = sa.select(sa.func.count()).select_from(_JOINED).where(*_conditions(where))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def entries(
        self, where: LogFilter, *, limit: int | None = None, after: int | None = None
    ) -> list[LogEntry]:
        """Matching entries in log order (by validation id), after the id `after` if given."""
        query = (
            sa.select(
                decision_log,
                validations.c.decision_id,
                validations.c.portfolio_id,
                validations.c.actor,
                validations.c.response,
            )
            .select_from(_JOINED)
            .where(*_conditions(where))
            .order_by(decision_log.c.validation_id)
        )
        if after is not None:
            query = query.where(decision_log.c.validation_id > after)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            values = blobs.load(conn, (d for r in rows for d in r.parts.values()))
        # A purge between the two reads may have taken an entry and its blobs: skip it.
        rows = [r for r in rows if all(d in values for d in r.parts.values())]
        return [
            LogEntry(
                validation_id=r.validation_id,
                decision_id=r.decision_id,
                portfolio_id=r.portfolio_id,
                logged_at=r.logged_at,
                actor=r.actor,
                response=r.response,
                parts={name: values[d] for name, d in r.parts.items()},
                policy_versions=dict(r.policy_versions),
                global_policy_version=r.global_policy_version,
                reference_data=r.reference_data,
            )
            for r in rows
        ]

    def purge(self, before: datetime, *, dry_run: bool = False) -> Purged:
        """Delete the entries logged before `before`, then the blobs nothing references.

        A blob is deleted only when no remaining entry lists it and it was last used before
        `before` (so one a validation is logging right now is kept).
        """
        old = sa.select(decision_log.c.validation_id).where(decision_log.c.logged_at < before)
        referenced = sa.exists().where(decision_log_blobs.c.digest == request_blobs.c.digest)
        with self.engine.begin() as conn:
            if dry_run:
                entries = conn.execute(
                    sa.select(sa.func.count()).select_from(old.subquery())
                ).scalar_one()
                kept = sa.exists().where(
                    decision_log_blobs.c.digest == request_blobs.c.digest,
                    decision_log_blobs.c.validation_id.not_in(old),
                )
                row = conn.execute(
                    sa.select(
                        sa.func.count(), sa.func.coalesce(sa.func.sum(request_blobs.c.size), 0)
                    ).where(request_blobs.c.last_used_at < before, ~kept)
                ).one()
                return Purged(int(entries), int(row[0]), int(row[1]), dry_run=True)
            conn.execute(
                decision_log_blobs.delete().where(decision_log_blobs.c.validation_id.in_(old))
            )
            entries = conn.execute(
                decision_log.delete().where(decision_log.c.logged_at < before)
            ).rowcount
            doomed = sa.and_(request_blobs.c.last_used_at < before, ~referenced)
            size = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(request_blobs.c.size), 0)).where(doomed)
            ).scalar_one()
            removed = conn.execute(request_blobs.delete().where(doomed)).rowcount
        return Purged(int(entries), int(removed), int(size))

    def sizes(self) -> dict[str, int]:
        """Entries, blobs and their sizes (canonical JSON and compressed), for the docs' claims."""
        with self.engine.connect() as conn:
            entries = conn.execute(
                sa.select(sa.func.count()).select_from(decision_log)
            ).scalar_one()
            row = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(request_blobs.c.size), 0),
                    sa.func.coalesce(sa.func.sum(sa.func.length(request_blobs.c.content)), 0),
                )
            ).one()
        return {
            "entries": int(entries),
            "blobs": int(row[0]),
            "json_bytes": int(row[1]),
            "stored_bytes": int(row[2]),
        }
