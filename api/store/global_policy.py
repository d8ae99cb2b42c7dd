"""The global policy's versions: every change a new version with its actor, time and diff.

The current global policy is the highest version of `global_policy_versions`. A store
without one gets version 1 (change `initial`) from `defaults` (the `QT_*` environment) the
first time it is read or changed (no event: it is what the components' own `QT_*`
variables already say). A change writes its version and its `global_policy_changed` event
(in the outbox) in one transaction.

On PostgreSQL every write also sends `NOTIFY pes_global_policy` (`CHANNEL`) in its
transaction, so the notification is delivered exactly when the version is committed (never
for a rolled-back one). Its payload is JSON naming the schema and the version,
`{"schema": "public", "version": 5}`: the channel is shared by every schema of the
database, and a listener keeps only its own schema's (`api.global_notify`).

Writers are serialized: each reads the current version and writes the next one holding the
write lock (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory lock of the transaction,
keyed by the database and schema), so a merge patch always applies to the version it
follows and concurrent patches of different fields all land. The unique version is the
backstop: a writer that still finds its version taken gets `Conflict` (409), nothing
written; `expected` (an `If-Match`) refuses a change whose version is not the current one
with `PreconditionFailed` (412).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from api.store.db import schema_key
from api.store.diff import json_diff, merge_patch
from api.store.errors import Conflict, Invalid, NotFound, PreconditionFailed
from api.store.tables import event_outbox
from api.store.tables import global_policy_versions as table
from models import GlobalPolicy, defaults_from_environment
from models.global_policy import ENVIRONMENT_FIELDS

__all__ = [
    "CHANNEL",
    "EVENT_TYPE",
    "GlobalPolicyStore",
    "GlobalPolicyVersion",
    "Revision",
    "StoredGlobalPolicy",
    "checked_defaults",
    "content_of",
    "merged",
]

EVENT_TYPE = "global_policy_changed"
WRITE_LOCK = 0x5E5_0003
"""First key of the PostgreSQL advisory lock that serializes writers (the second is
`schema_key`)."""
CHANNEL = "pes_global_policy"
"""The PostgreSQL notification channel of committed versions (payload: schema, version)."""
INITIAL_ACTOR = "environment"
"""The actor recorded for version 1, taken from the `QT_*` environment."""

Change = Literal["initial", "update", "reset"]
Revision = Callable[[GlobalPolicy], GlobalPolicy]
"""A change: the current global policy in, the next one out (or an exception: no change)."""


@dataclass(frozen=True)
class StoredGlobalPolicy:
    """The global policy as stored: its content (with `last_updated`) and its version."""

    policy: GlobalPolicy
    version: int
    change: str
    updated_by: str

    @property
    def last_updated(self) -> datetime:
        """When this version was written."""
        assert self.policy.last_updated is not None
        return self.policy.last_updated


@dataclass(frozen=True)
class GlobalPolicyVersion:
    """One entry of the history: what changed, who changed it, when."""

    version: int
    change: str
    diff: list[dict[str, Any]]
    actor: str
    changed_at: datetime
    content: dict[str, Any]


def content_of(policy: GlobalPolicy) -> dict[str, Any]:
    """The stored JSON of a global policy: every field but `last_updated` (the row's time)."""
    return policy.model_dump(mode="json", exclude={"last_updated"})


SET_BY_STORE = "last_updated"


def merged(current: GlobalPolicy, patch: Mapping[str, Any]) -> GlobalPolicy:
    """`current` with a JSON merge patch applied, validated as a whole.

    A top-level null sets the field to null (a limit: no limit; any other field is refused
    by the model, naming it); below the top level RFC 7396 applies (maps merge key by key,
    a null removes a key; lists are replaced). Raises `Invalid` for `last_updated` (the
    store sets it) and pydantic's `ValidationError` naming every invalid field.
    """
    if SET_BY_STORE in patch:
        raise Invalid(SET_BY_STORE, "set by the store when a version is written; leave it out")
    content = content_of(current)
    for key, value in patch.items():
        content[key] = None if value is None else merge_patch(content.get(key), value)
    return GlobalPolicy.model_validate(content)


def checked_defaults(
    defaults: Callable[[], GlobalPolicy] = defaults_from_environment,
) -> GlobalPolicy:
    """`defaults()` (the `QT_*` environment); a bad value is `Invalid` naming its variable.

    `pes serve` calls it before it starts, so a bad variable stops it with one line
    (`QT_MAX_POSITIONS: Input should be greater than or equal to 1 (got '0')`) and exit
    status 2.
    """
    try:
        return defaults()
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        names = {f: v for v, f in ENVIRONMENT_FIELDS.items()}
        got = f" (got {error['input']!r})" if isinstance(error.get("input"), str) else ""
        raise Invalid(names.get(field, field or "QT_*"), error["msg"] + got) from exc


def _stored(row: sa.Row[Any]) -> StoredGlobalPolicy:
    policy = GlobalPolicy.model_validate({**row.content, "last_updated": row.changed_at})
    return StoredGlobalPolicy(policy, row.version, row.change, row.actor)


def event_of(
    stored: StoredGlobalPolicy, previous: int | None, diff: list[dict[str, Any]]
) -> dict[str, Any]:
    """The `global_policy_changed` event of a new version."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": EVENT_TYPE,
        "timestamp": stored.last_updated.isoformat(),
        "version": stored.version,
        "previous_version": previous,
        "change": stored.change,
        "diff": diff,
        "actor": stored.updated_by,
        "changed_at": stored.last_updated.isoformat(),
        "global_policy": stored.policy.model_dump(mode="json"),
    }


class GlobalPolicyStore:
    """Read and change the global policy; each change is an audited version and an event.

    Parameters
    ----------
    engine
        The database.
    defaults
        The global policy of an empty store (default: the `QT_*` environment variables).
    """

    def __init__(
        self, engine: Engine, defaults: Callable[[], GlobalPolicy] = defaults_from_environment
    ) -> None:
        self.engine = engine
        self.defaults = defaults

    def latest_version(self) -> int | None:
        """The current version number, or None for an empty store (one indexed query)."""
        with self.engine.connect() as conn:
            latest: int | None = conn.execute(sa.select(sa.func.max(table.c.version))).scalar()
        return latest

    def get(self, version: int | None = None) -> StoredGlobalPolicy:
        """Version `version` (NotFound if absent), or the current one (created if none)."""
        with self.engine.connect() as conn:
            row = self._row(conn, version)
        if row is not None:
            return _stored(row)
        if version is not None:
            raise NotFound(f"no version {version} of the global policy")
        return self.current()

    def current(self) -> StoredGlobalPolicy:
        """The current version; an empty store first gets version 1 from `defaults`."""
        with self.engine.connect() as conn:
            row = self._row(conn, None)
        if row is not None:
            return _stored(row)
        with self._transaction() as conn:
            return self._latest_or_initial(conn)

    def change(
        self,
        revision: Revision,
        *,
        actor: str,
        change: Change = "update",
        expected: Collection[int] | None = None,
    ) -> tuple[bool, StoredGlobalPolicy]:
        """Write `revision(current)` as the next version: (changed?, the current version).

        A revision that changes nothing writes nothing (False, the current version).
        `revision` may raise to refuse the change; nothing is written then.
        """
        try:
            with self._transaction() as conn:
                current = self._latest_or_initial(conn)
                if expected is not None and current.version not in expected:
                    raise PreconditionFailed(
                        f"the global policy is at version {current.version} (ETag "
                        f'"{current.version}"); If-Match names another: re-read it and retry',
                        current.version,
                    )
                new = revision(current.policy.model_copy(update={"last_updated": None}))
                content = content_of(new)
                diff = json_diff(content_of(current.policy), content)
                if not diff:
                    return False, current
                return True, self._write(conn, content, diff, current.version, change, actor)
        except IntegrityError as exc:
            raise Conflict(
                "the global policy was changed concurrently (its next version is taken); "
                "re-read it and send the change again"
            ) from exc

    def reset(
        self, *, actor: str, expected: Collection[int] | None = None
    ) -> tuple[bool, StoredGlobalPolicy]:
        """Back to `defaults` (the `QT_*` environment) as a new version (change `reset`)."""
        return self.change(
            lambda _: self.defaults(), actor=actor, change="reset", expected=expected
        )

    def versions(self, *, limit: int = 100, before: int | None = None) -> list[GlobalPolicyVersion]:
        """The history, newest first: up to `limit` versions below `before` (all if None)."""
        query = sa.select(table).order_by(table.c.version.desc()).limit(limit)
        if before is not None:
            query = query.where(table.c.version < before)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            GlobalPolicyVersion(r.version, r.change, r.diff, r.actor, r.changed_at, r.content)
            for r in rows
        ]

    def _defaults(self) -> GlobalPolicy:
        """`defaults()`; a bad `QT_*` value is `Invalid` naming its variable."""
        return checked_defaults(self.defaults)

    # --- rows -------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction holding the writers' lock from its first statement."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(WRITE_LOCK, schema_key())))
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @staticmethod
    def _row(conn: Connection, version: int | None) -> sa.Row[Any] | None:
        query = sa.select(table)
        if version is None:
            query = query.order_by(table.c.version.desc()).limit(1)
        else:
            query = query.where(table.c.version == version)
        return conn.execute(query).first()

    def _latest_or_initial(self, conn: Connection) -> StoredGlobalPolicy:
        row = self._row(conn, None)
        if row is not None:
            return _stored(row)
        content = content_of(self._defaults())
        diff = json_diff(None, content)
        return self._write(conn, content, diff, None, "initial", INITIAL_ACTOR)

    @staticmethod
    def _write(
        conn: Connection,
        content: dict[str, Any],
        diff: list[dict[str, Any]],
        previous: int | None,
        change: Change,
        actor: str,
    ) -> StoredGlobalPolicy:
        now = datetime.now(UTC)
        version = 1 if previous is None else previous + 1
        conn.execute(
            table.insert().values(
                version=version,
                change=change,
                content=content,
                diff=diff,
                actor=actor,
                changed_at=now,
            )
        )
        if conn.dialect.name == "postgresql":
            _notify(conn, version)
        policy = GlobalPolicy.model_validate({**content, "last_updated": now})
        stored = StoredGlobalPolicy(policy, version, change, actor)
        if change == "initial":
            return stored  # not a change: what every component's QT_* already say
        event = event_of(stored, previous, diff)
        conn.execute(
            event_outbox.insert().values(
                event_id=event["event_id"],
                event_type=EVENT_TYPE,
                payload=event,
                created_at=now,
                attempts=0,
            )
        )
        return stored


def _notify(conn: Connection, version: int) -> None:
    """`NOTIFY` the new version in the writer's transaction: delivered when it commits."""
    conn.execute(_NOTIFY, {"channel": CHANNEL, "version": version})


_NOTIFY = sa.text(
    "SELECT pg_notify(CAST(:channel AS text), json_build_object("
    "'schema', coalesce(current_schema(), ''), 'version', CAST(:version AS integer))::text)"
)
