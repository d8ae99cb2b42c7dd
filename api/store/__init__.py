"""Persistence: SQLAlchemy tables, Alembic migrations and the stores built on them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from api.store.db import connect, migrate
from api.store.errors import (
    Conflict,
    Invalid,
    NotFound,
    PreconditionFailed,
    StoreError,
    Unavailable,
    UnknownPortfolio,
)
from api.store.outbox import OutboxEvent, OutboxStore
from api.store.policies import PolicyStore, PolicyVersion, StoredPolicy
from api.store.portfolios import PortfolioStore, StoredPortfolio
from api.store.reference_data import ReferenceDataStore, ReferenceVersion, StoredReference
from api.store.validations import StoredViolation, ValidationStore, ViolationFilter
from models import RiskModelDefinition, Universe

__all__ = [
    "Conflict",
    "Invalid",
    "NotFound",
    "OutboxEvent",
    "OutboxStore",
    "PolicyStore",
    "PolicyVersion",
    "PortfolioStore",
    "PreconditionFailed",
    "ReferenceDataStore",
    "ReferenceVersion",
    "Store",
    "StoreError",
    "StoredPolicy",
    "StoredPortfolio",
    "StoredReference",
    "StoredViolation",
    "Unavailable",
    "UnknownPortfolio",
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
    portfolios: PortfolioStore
    universes: ReferenceDataStore[Universe]
    risk_models: ReferenceDataStore[RiskModelDefinition]

    @classmethod
    def open(cls, url: str, *, migrate_schema: bool = True) -> Store:
        """Connect to `url` and (by default) apply pending migrations."""
        engine = connect(url)
        if migrate_schema:
            migrate(engine)
        return cls(
            engine,
            PolicyStore(engine),
            ValidationStore(engine),
            OutboxStore(engine),
            PortfolioStore(engine),
            ReferenceDataStore(engine, "universe", Universe),
            ReferenceDataStore(engine, "risk_model", RiskModelDefinition),
        )
