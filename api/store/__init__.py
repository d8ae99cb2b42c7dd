"""Persistence: SQLAlchemy tables, Alembic migrations and the stores built on them.

Owns the connection and its bounds, serialized migrations (`db`), the tables (`tables`),
one store per resource (policies with their versions, portfolios, reference data,
validations, violations with their lifecycle, trends and escalation, the event outbox, the
global policy's versions, the decision log over content-addressed blobs, the monitor's
processed updates, state and status) and the store's
exception tree (`errors`).
Exposes `Store` (every store over one engine) and the stores' public types. Shared by the
HTTP service and the command line; may import `engine` (hierarchy resolution) and
`models`, never `api.http` or `api.cli`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from api.store.db import DatabaseTimeouts, connect, migrate
from api.store.decision_log import DecisionLogStore, LogEntry, LogFilter, LoggedRequest, Purged
from api.store.errors import (
    Conflict,
    Invalid,
    NotFound,
    PreconditionFailed,
    StoreError,
    Unavailable,
    UnknownPortfolio,
)
from api.store.escalations import Delivery, EscalationStore, StoredRules
from api.store.global_policy import GlobalPolicyStore, GlobalPolicyVersion, StoredGlobalPolicy
from api.store.monitor_status import STALE_AFTER_S, MonitorStatus, read_monitor_status
from api.store.outbox import OutboxEvent, OutboxStore
from api.store.policies import PolicyStore, PolicyVersion, StoredPolicy
from api.store.portfolios import PortfolioStore, StoredPortfolio
from api.store.reference_data import ReferenceDataStore, ReferenceVersion, StoredReference
from api.store.validations import ValidationStore
from api.store.violation_trends import DailyCounts, ResolutionTimes, ViolationTrends
from api.store.violations import (
    BulkOutcome,
    StoredViolation,
    Transition,
    ViolationFilter,
    ViolationStatus,
    ViolationStore,
)
from models import (
    FxSnapshot,
    GlobalPolicy,
    RiskModelDefinition,
    Universe,
    defaults_from_environment,
)

__all__ = [
    "BulkOutcome",
    "Conflict",
    "DailyCounts",
    "DatabaseTimeouts",
    "DecisionLogStore",
    "Delivery",
    "EscalationStore",
    "GlobalPolicyStore",
    "GlobalPolicyVersion",
    "Invalid",
    "LogEntry",
    "LogFilter",
    "LoggedRequest",
    "MonitorStatus",
    "STALE_AFTER_S",
    "NotFound",
    "OutboxEvent",
    "OutboxStore",
    "PolicyStore",
    "PolicyVersion",
    "PortfolioStore",
    "PreconditionFailed",
    "Purged",
    "ReferenceDataStore",
    "ReferenceVersion",
    "ResolutionTimes",
    "Store",
    "StoreError",
    "StoredGlobalPolicy",
    "StoredPolicy",
    "StoredPortfolio",
    "StoredReference",
    "StoredRules",
    "StoredViolation",
    "Transition",
    "Unavailable",
    "UnknownPortfolio",
    "ValidationStore",
    "ViolationFilter",
    "ViolationStatus",
    "ViolationStore",
    "ViolationTrends",
    "connect",
    "migrate",
    "read_monitor_status",
]


@dataclass
class Store:
    """All stores over one database; `created` is True when opening it created the schema."""

    engine: Engine
    policies: PolicyStore
    validations: ValidationStore
    outbox: OutboxStore
    portfolios: PortfolioStore
    universes: ReferenceDataStore[Universe]
    risk_models: ReferenceDataStore[RiskModelDefinition]
    fx_snapshots: ReferenceDataStore[FxSnapshot]
    global_policy: GlobalPolicyStore
    violations: ViolationStore
    trends: ViolationTrends
    escalations: EscalationStore
    created: bool = False
    decision_log: DecisionLogStore = field(init=False)

    def __post_init__(self) -> None:
        self.decision_log = DecisionLogStore(self.engine)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        migrate_schema: bool = True,
        timeouts: DatabaseTimeouts | None = None,
        global_defaults: Callable[[], GlobalPolicy] = defaults_from_environment,
    ) -> Store:
        """Connect to `url` and (by default) apply pending migrations.

        Several processes may open the same empty database at once: migrations are
        serialized, one process creates the schema and the others find it ready.
        `global_defaults` is the global policy of a store without one (default: the `QT_*`
        environment variables, read when it is first needed).
        """
        engine = connect(url, timeouts)
        created = migrate(engine) if migrate_schema else False
        return cls(
            engine,
            PolicyStore(engine),
            ValidationStore(engine),
            OutboxStore(engine),
            PortfolioStore(engine),
            ReferenceDataStore(engine, "universe", Universe),
            ReferenceDataStore(engine, "risk_model", RiskModelDefinition),
            ReferenceDataStore(engine, "fx_snapshot", FxSnapshot),
            GlobalPolicyStore(engine, global_defaults),
            ViolationStore(engine),
            ViolationTrends(engine),
            EscalationStore(engine),
            created,
        )
