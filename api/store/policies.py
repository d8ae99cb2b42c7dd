"""Policy storage: every change is a new version with actor, time and diff."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from api.store.diff import json_diff
from api.store.errors import Conflict, Invalid, NotFound, PreconditionFailed
from api.store.overrides import check_overrides
from api.store.portfolios import PortfolioStore
from api.store.tables import policy_versions, portfolio_policies
from engine.resolve.global_policy import GLOBAL_POLICY_PREFIX
from engine.resolve.hierarchy import Lineage, resolve
from models import PolicyDefinition
from models.policy import STORED

__all__ = ["PolicyStore", "PolicyVersion", "Revision", "StoredPolicy", "reserved"]

Revision = Callable[[PolicyDefinition], PolicyDefinition]
"""A change of a policy: the current definition in, the next one out (or an exception)."""


@dataclass(frozen=True)
class StoredPolicy:
    """A policy as stored: its definition, current version and last change."""

    definition: PolicyDefinition
    version: int
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class PolicyVersion:
    """One entry of a policy's history."""

    policy_name: str
    version: int
    change: str
    definition: dict[str, Any]
    diff: list[dict[str, Any]]
    actor: str
    changed_at: datetime


def _dump(policy: PolicyDefinition) -> dict[str, Any]:
    return policy.model_dump(mode="json")


def _stored(row: sa.Row[Any], parsed: PolicyDefinition | None = None) -> StoredPolicy:
    return StoredPolicy(
        definition=parsed or PolicyDefinition.model_validate(row.definition, context=STORED),
        version=row.version,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def reserved(policy: PolicyDefinition) -> None:
    """Refuse (Invalid) a name the global policy's synthesized policies use."""
    if policy.policy_name.startswith(GLOBAL_POLICY_PREFIX):
        raise Invalid(
            "policy_name",
            f"{policy.policy_name!r}: names starting with {GLOBAL_POLICY_PREFIX!r} are reserved "
            "for the global policy's controls (docs/global-policy.md); choose another name",
        )


_PARSED_LIMIT = 4096
"""Policy names whose parsed definition `PolicyStore.list` keeps; past it, it starts again."""

_LISTED = (
    *(column for column in portfolio_policies.c if column.name != "definition"),
    sa.cast(portfolio_policies.c.definition, sa.Text).label("definition_text"),
)
"""What a listing reads: the definition as its stored text, parsed only when it changed."""


class PolicyStore:
    """Create, replace, disable and read policies; each change is an audited version."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Every validation lists the stored policies; decoding their JSON and parsing it
        # through pydantic each time cost ~0.5 ms for 20. The last parse of each name is
        # kept with the stored text it came from and reused only while that text is equal
        # (a string comparison), so even a row edited outside this store is parsed afresh.
        self._parsed: dict[str, tuple[str, PolicyDefinition]] = {}

    def _listed(self, row: sa.Row[Any]) -> StoredPolicy:
        text: str = row.definition_text
        memo = self._parsed.get(row.policy_name)
        if memo is not None and memo[0] == text:
            parsed = memo[1]
        else:
            parsed = PolicyDefinition.model_validate(json.loads(text), context=STORED)
            if len(self._parsed) >= _PARSED_LIMIT:
                self._parsed.clear()
            self._parsed[row.policy_name] = (text, parsed)
        return _stored(row, parsed)

    def list(
        self,
        *,
        portfolio_id: str | None = None,
        policy_type: str | None = None,
        enabled: bool | None = None,
    ) -> list[StoredPolicy]:
        """Stored policies by name, optionally filtered.

        `portfolio_id` keeps that portfolio's effective set: inherited policies and
        overrides applied (`engine.resolve.hierarchy`).
        """
        query = sa.select(*_LISTED).order_by(portfolio_policies.c.policy_name)
        if policy_type is not None and portfolio_id is None:
            query = query.where(portfolio_policies.c.policy_type == policy_type)
        if enabled is not None and portfolio_id is None:
            query = query.where(portfolio_policies.c.enabled == enabled)
        with self.engine.connect() as conn:
            policies = [self._listed(row) for row in conn.execute(query)]
        if portfolio_id is None:
            return policies
        # Overrides relate policies of any type: resolve on the whole set, then filter.
        chain = Lineage.of(portfolio_id, PortfolioStore(self.engine).lineage(portfolio_id))
        effective = resolve([p.definition for p in policies], chain).policies()
        names = {p.policy_name for p in effective}
        return [
            p
            for p in policies
            if p.definition.policy_name in names
            and (policy_type is None or p.definition.policy_type.value == policy_type)
            and (enabled is None or p.definition.enabled == enabled)
        ]

    def get(self, name: str) -> StoredPolicy:
        """The policy named `name`, or NotFound."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(portfolio_policies).where(portfolio_policies.c.policy_name == name)
            ).first()
        if row is None:
            raise NotFound(f"no policy named {name!r}")
        return _stored(row)

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction that reads, decides and writes under the write lock.

        A read-merge-write in separate transactions loses a concurrent change, so every
        write reads the current row in the transaction that writes it. PostgreSQL locks
        that row (`SELECT ... FOR UPDATE` in `_current`). SQLite has one lock per database
        and pysqlite starts a transaction only at the first write, so the read would run
        outside it and, in WAL mode, the later upgrade to a writer fails at once with
        "database is locked" when another writer came in between (the busy timeout never
        applies to that upgrade); `BEGIN IMMEDIATE` takes the write lock first, waiting
        for it up to the busy timeout.
        """
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def create(self, policy: PolicyDefinition, *, actor: str) -> StoredPolicy:
        """Store a new policy (version 1); Conflict if the name is taken."""
        taken = Conflict(f"a policy named {policy.policy_name!r} already exists")
        try:
            with self._transaction() as conn:
                if self._current(conn, policy.policy_name) is not None:
                    raise taken
                return self._write(conn, policy, None, change="create", actor=actor)
        except IntegrityError:
            # PostgreSQL cannot lock a row that does not exist yet: of two concurrent creates
            # of one name, the second fails on the unique key once the first commits.
            if not self._exists(policy.policy_name):
                raise
            raise taken from None

    def revise(
        self,
        name: str,
        revision: Revision,
        *,
        actor: str,
        change: str,
        expected: Collection[int] | None = None,
    ) -> StoredPolicy:
        """Write `revision(current definition)` as the next version of policy `name`.

        The current definition is read, revised and written in one transaction that holds
        the row's write lock, so a concurrent change is never lost: it is either seen by
        `revision` or made after this one. `expected` (the versions an `If-Match` names)
        refuses the change with PreconditionFailed when the stored version is another.
        `revision` may raise to refuse the change; nothing is written then.
        """
        with self._transaction() as conn:
            current = self._current(conn, name)
            if current is None:
                raise NotFound(f"no policy named {name!r}")
            if expected is not None and current.version not in expected:
                raise PreconditionFailed(
                    f"policy {name!r} is at version {current.version} (ETag "
                    f'"{current.version}"); If-Match names another: re-read it and retry',
                    current.version,
                )
            policy = revision(_stored(current).definition)
            if policy.policy_name != name:
                raise Conflict(
                    f"policy_name {policy.policy_name!r} in the body differs from {name!r} in "
                    "the path"
                )
            return self._write(conn, policy, current, change=change, actor=actor)

    def replace(
        self,
        name: str,
        policy: PolicyDefinition,
        *,
        actor: str,
        change: str = "replace",
        expected: Collection[int] | None = None,
    ) -> StoredPolicy:
        """Replace policy `name` with `policy` (a new version); see `revise`."""
        return self.revise(name, lambda _: policy, actor=actor, change=change, expected=expected)

    def upsert(self, policy: PolicyDefinition, *, actor: str) -> tuple[str, StoredPolicy]:
        """Create or replace; unchanged definitions are left alone.

        Returns ("created" | "replaced" | "unchanged", the stored policy).
        """
        try:
            return self._upsert(policy, actor=actor)
        except IntegrityError:
            # A concurrent create of the name won (see `create`); now that the row exists,
            # the second try replaces it under its lock.
            if not self._exists(policy.policy_name):
                raise
            return self._upsert(policy, actor=actor)

    def _upsert(self, policy: PolicyDefinition, *, actor: str) -> tuple[str, StoredPolicy]:
        with self._transaction() as conn:
            current = self._current(conn, policy.policy_name)
            if current is None:
                return "created", self._write(conn, policy, None, change="create", actor=actor)
            if current.definition == _dump(policy):
                return "unchanged", _stored(current)
            return "replaced", self._write(conn, policy, current, change="replace", actor=actor)

    def _exists(self, name: str) -> bool:
        with self.engine.connect() as conn:
            query = sa.select(portfolio_policies.c.policy_name).where(
                portfolio_policies.c.policy_name == name
            )
            return conn.execute(query).first() is not None

    def versions(self, name: str) -> Sequence[PolicyVersion]:
        """Every version of policy `name`, oldest first; NotFound if it never existed."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(policy_versions)
                .where(policy_versions.c.policy_name == name)
                .order_by(policy_versions.c.version)
            ).all()
        if not rows:
            raise NotFound(f"no policy named {name!r}")
        return [
            PolicyVersion(
                r.policy_name, r.version, r.change, r.definition, r.diff, r.actor, r.changed_at
            )
            for r in rows
        ]

    def at_versions(self, versions: Mapping[str, int]) -> dict[str, PolicyDefinition]:
        """The definitions of the named policies at the given versions (history kept).

        NotFound names the first (policy, version) the history lacks.
        """
        wanted = {(n, v) for n, v in versions.items()}
        if not wanted:
            return {}
        t = policy_versions
        found: dict[str, PolicyDefinition] = {}
        pairs = sorted(wanted)
        with self.engine.connect() as conn:
            for start in range(0, len(pairs), 200):
                chunk = pairs[start : start + 200]
                rows = conn.execute(
                    sa.select(t.c.policy_name, t.c.version, t.c.definition).where(
                        sa.or_(*(sa.and_(t.c.policy_name == n, t.c.version == v) for n, v in chunk))
                    )
                ).all()
                for r in rows:
                    found[r.policy_name] = PolicyDefinition.model_validate(
                        r.definition, context=STORED
                    )
        for name, version in pairs:
            if name not in found:
                raise NotFound(f"no version {version} of policy {name!r}")
        return found

    def as_of(self, when: datetime) -> Sequence[PolicyDefinition]:
        """Every policy as it stood at `when`: each name's last version written by then."""
        t = policy_versions
        latest = (
            sa.select(t.c.policy_name, sa.func.max(t.c.version).label("version"))
            .where(t.c.changed_at <= when)
            .group_by(t.c.policy_name)
            .subquery()
        )
        query = (
            sa.select(t.c.definition)
            .join(
                latest,
                sa.and_(t.c.policy_name == latest.c.policy_name, t.c.version == latest.c.version),
            )
            .order_by(t.c.policy_name)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).scalars().all()
        return [PolicyDefinition.model_validate(d, context=STORED) for d in rows]

    @staticmethod
    def _current(conn: Connection, name: str) -> sa.Row[Any] | None:
        query = sa.select(portfolio_policies).where(portfolio_policies.c.policy_name == name)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        return conn.execute(query).first()

    @staticmethod
    def _write(
        conn: Connection,
        policy: PolicyDefinition,
        current: sa.Row[Any] | None,
        *,
        change: str,
        actor: str,
    ) -> StoredPolicy:
        reserved(policy)
        check_overrides(conn, policy)
        now = datetime.now(UTC)
        definition = _dump(policy)
        version = 1 if current is None else current.version + 1
        values = {
            "policy_type": policy.policy_type.value,
            "enforcement_level": policy.enforcement_level.value,
            "enabled": policy.enabled,
            "definition": definition,
            "version": version,
            "updated_at": now,
            "updated_by": actor,
        }
        if current is None:
            conn.execute(
                portfolio_policies.insert().values(
                    policy_name=policy.policy_name, created_at=now, **values
                )
            )
        else:
            conn.execute(
                portfolio_policies.update()
                .where(portfolio_policies.c.policy_name == policy.policy_name)
                .values(**values)
            )
        conn.execute(
            policy_versions.insert().values(
                policy_name=policy.policy_name,
                version=version,
                change=change,
                definition=definition,
                diff=json_diff(None if current is None else current.definition, definition),
                actor=actor,
                changed_at=now,
            )
        )
        return StoredPolicy(policy, version, now, actor)
