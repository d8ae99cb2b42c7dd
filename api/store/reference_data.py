"""Registered universes, risk models and FX snapshots: immutable versions, the latest highest.

Every change is a new version (with the actor, the time and a summary of what changed by
symbol); a `put` of the content already latest is a no-op returning that version.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from api.store.errors import Conflict, NotFound
from api.store.tables import reference_data_versions as table
from models import FxSnapshot, RiskModelDefinition, Universe

__all__ = ["ReferenceDataStore", "ReferenceVersion", "StoredReference", "content_digest"]

Kind = Literal["universe", "risk_model", "fx_snapshot"]
D = TypeVar("D", Universe, RiskModelDefinition, FxSnapshot)

_SYMBOLS_LISTED = 50
"""At most this many symbols are named per change list of a version's summary."""


@dataclass(frozen=True)
class ReferenceVersion:
    """One stored version, without its content: who made it, when, and what changed."""

    id: str
    version: int
    digest: str
    changes: dict[str, Any]
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class StoredReference(Generic[D]):
    """One stored version with its content."""

    definition: D
    info: ReferenceVersion


def content_digest(definition: Universe | RiskModelDefinition | FxSnapshot) -> str:
    """SHA-256 of the definition's canonical JSON (key order and spelling do not matter)."""
    canonical = json.dumps(
        definition.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _universe_rows(content: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    rows = {inst["symbol"]: inst for inst in content["instruments"]}
    return rows, {"description": content.get("description")}


def _risk_rows(content: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    model = content["risk_model"]
    shared = {"description": content.get("description")}
    if model.get("covariance") is not None:
        cov = model["covariance"]
        shared["covariance"] = cov  # a full matrix: any change is a change of the whole
        return dict.fromkeys(cov["symbols"]), shared
    specific = model.get("specific_variance") or {}
    rows = {s: (b, specific.get(s)) for s, b in model["factor_loadings"].items()}
    shared["factor_covariance"] = model["factor_covariance"]
    return rows, shared


def _fx_rows(content: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    shared = {"description": content.get("description"), "base_currency": content["base_currency"]}
    return dict(content["rates"]), shared  # the "symbols" of a snapshot are its currencies


_ROWS: dict[Kind, Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]] = {
    "universe": _universe_rows,
    "risk_model": _risk_rows,
    "fx_snapshot": _fx_rows,
}
_NOUNS: dict[Kind, tuple[str, str]] = {
    "universe": ("universe", "universes"),
    "risk_model": ("risk model", "risk-models"),
    "fx_snapshot": ("FX snapshot", "fx-snapshots"),
}


def _changes(kind: Kind, old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Symbols added, removed and changed against the previous version, and other fields."""
    new_rows, new_shared = _ROWS[kind](new)
    if old is None:
        return {"symbols": len(new_rows), "added": len(new_rows), "removed": 0, "changed": 0}
    old_rows, old_shared = _ROWS[kind](old)
    added = sorted(set(new_rows) - set(old_rows))
    removed = sorted(set(old_rows) - set(new_rows))
    changed = sorted(s for s in set(new_rows) & set(old_rows) if new_rows[s] != old_rows[s])
    return {
        "symbols": len(new_rows),
        "added": len(added),
        "removed": len(removed),
        "changed": len(changed),
        "added_symbols": added[:_SYMBOLS_LISTED],
        "removed_symbols": removed[:_SYMBOLS_LISTED],
        "changed_symbols": changed[:_SYMBOLS_LISTED],
        "fields": sorted(k for k in new_shared if new_shared[k] != old_shared.get(k)),
    }


class ReferenceDataStore(Generic[D]):
    """Versions of one kind of reference data (universes, risk models or FX snapshots).

    Parameters
    ----------
    engine
        The database.
    kind
        "universe", "risk_model" or "fx_snapshot" (the `kind` column).
    model
        The definition's model class (`Universe`, `RiskModelDefinition` or `FxSnapshot`).
    """

    def __init__(self, engine: Engine, kind: Kind, model: type[D]) -> None:
        self.engine = engine
        self.kind: Kind = kind
        self.model: type[D] = model
        self.noun, self.collection = _NOUNS[kind]

    def put(self, definition: D, *, actor: str) -> tuple[str, StoredReference[D]]:
        """Store `definition` as a new version: ("created" | "replaced" | "unchanged", it).

        Unchanged content keeps the latest version. Two writers racing for the same new
        version: the second gets `Conflict` (retry it).
        """
        digest = content_digest(definition)
        content = definition.model_dump(mode="json")
        try:
            with self.engine.begin() as conn:
                latest = self._row(conn, definition.id, None)
                if latest is not None and latest.digest == digest:
                    return "unchanged", StoredReference(definition, self._info(latest))
                version = 1 if latest is None else latest.version + 1
                info = ReferenceVersion(
                    id=definition.id,
                    version=version,
                    digest=digest,
                    changes=_changes(
                        self.kind, None if latest is None else latest.content, content
                    ),
                    created_at=datetime.now(UTC),
                    created_by=actor,
                )
                conn.execute(
                    table.insert().values(
                        kind=self.kind,
                        ref_id=info.id,
                        version=info.version,
                        digest=info.digest,
                        content=content,
                        changes=info.changes,
                        actor=info.created_by,
                        created_at=info.created_at,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(
                f"{self.noun} {definition.id!r} was changed concurrently; send the request again"
            ) from exc
        return ("created" if latest is None else "replaced"), StoredReference(definition, info)

    def get(self, ref_id: str, version: int | None = None) -> StoredReference[D]:
        """Version `version` of `ref_id` (the latest when None), or NotFound."""
        with self.engine.connect() as conn:
            row = self._row(conn, ref_id, version)
        if row is None:
            raise NotFound(self.missing(ref_id, version))
        return self._stored(row)

    def latest_version(self, ref_id: str) -> int | None:
        """The latest version of `ref_id`, or None when there is none (one indexed query)."""
        query = sa.select(sa.func.max(table.c.version)).where(
            table.c.kind == self.kind, table.c.ref_id == ref_id
        )
        with self.engine.connect() as conn:
            latest: int | None = conn.execute(query).scalar()
        return latest

    def versions(self, ref_id: str) -> builtins.list[ReferenceVersion]:
        """Every version of `ref_id`, oldest first (without content), or NotFound."""
        query = (
            sa.select(*self._info_columns())
            .where(table.c.kind == self.kind, table.c.ref_id == ref_id)
            .order_by(table.c.version)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            raise NotFound(f"no {self.noun} {ref_id!r}")
        return [self._info(row) for row in rows]

    def list(self) -> builtins.list[ReferenceVersion]:
        """The latest version of every id, by id (without content)."""
        latest = (
            sa.select(table.c.ref_id, sa.func.max(table.c.version).label("version"))
            .where(table.c.kind == self.kind)
            .group_by(table.c.ref_id)
            .subquery()
        )
        query = (
            sa.select(*self._info_columns())
            .join(
                latest,
                sa.and_(table.c.ref_id == latest.c.ref_id, table.c.version == latest.c.version),
            )
            .where(table.c.kind == self.kind)
            .order_by(table.c.ref_id)
        )
        with self.engine.connect() as conn:
            return [self._info(row) for row in conn.execute(query)]

    def missing(self, ref_id: str, version: int | None) -> str:
        """The message for a reference to nothing stored."""
        if version is None:
            return f"no {self.noun} {ref_id!r}"
        return f"no version {version} of {self.noun} {ref_id!r}"

    # --- rows -------------------------------------------------------------------------------

    @staticmethod
    def _info_columns() -> builtins.list[sa.Column[Any]]:
        c = table.c
        return [c.ref_id, c.version, c.digest, c.changes, c.actor, c.created_at]

    def _row(self, conn: Connection, ref_id: str, version: int | None) -> sa.Row[Any] | None:
        query = sa.select(table).where(table.c.kind == self.kind, table.c.ref_id == ref_id)
        if version is None:
            query = query.order_by(table.c.version.desc()).limit(1)
        else:
            query = query.where(table.c.version == version)
        return conn.execute(query).first()

    @staticmethod
    def _info(row: sa.Row[Any]) -> ReferenceVersion:
        return ReferenceVersion(
            id=row.ref_id,
            version=row.version,
            digest=row.digest,
            changes=row.changes,
            created_at=row.created_at,
            created_by=row.actor,
        )

    def _stored(self, row: sa.Row[Any]) -> StoredReference[D]:
        return StoredReference(self.model.model_validate(row.content), self._info(row))
