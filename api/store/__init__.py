"""Persistence: SQLAlchemy tables, Alembic migrations and the stores built on them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from api.store.db import connect, migrate
from api.store.errors import Conflict, NotFound, StoreError, Unavailable
from api.store.outbox import OutboxEvent, OutboxStore
from api.store.policies import PolicyStore, PolicyVersion, StoredPolicy
from api.store.validations import StoredViolation, ValidationStore, ViolationFilter

__all__ = [
    "Conflict",
    "NotFound",
    "OutboxEvent",
    "OutboxStore",
    "PolicyStore",
    "PolicyVersion",
    "Store",
    "StoreError",
    "StoredPolicy",
    "StoredViolation",
    "Unavailable",
    "ValidationStore",
    "ViolationFilter",
    "connect",
    "migrate",
]


@dataclass
class Store:
    """All stores over one database."""

    engine: Engine
    policies: PolicyStore
    validations: ValidationStore
    outbox: OutboxStore

    @classmethod
    def open(cls, url: str, *, migrate_schema: bool = True) -> Store:
        """Connect to `url` and (by default) apply pending migrations."""
        engine = connect(url)
        if migrate_schema:
            migrate(engine)
        return cls(engine, PolicyStore(engine), ValidationStore(engine), OutboxStore(engine))
