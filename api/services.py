"""What the routes share: settings, store, engine, relay and metrics."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from api.events import OutboxRelay
from api.metrics import Metrics
from api.settings import Settings
from api.store import Store
from engine import PolicyEngine
from models import (
    PolicyDefinition,
    PolicyValidationRequest,
    PolicyValidationResponse,
    PortfolioNode,
)
from models.capacity import CapacityRequest, CapacityResponse

__all__ = ["Services"]


@dataclass
class Services:
    """The service's long-lived parts, created at start-up."""

    settings: Settings
    store: Store
    engine: PolicyEngine
    metrics: Metrics
    relay: OutboxRelay | None = None
    # Compiled problems hold parameter values between fill and solve, so one request at a
    # time uses the engine; scale out with more worker processes.
    engine_lock: threading.Lock = field(default_factory=threading.Lock)

    def validate(
        self,
        request: PolicyValidationRequest,
        policies: Sequence[PolicyDefinition],
        lineage: Sequence[PortfolioNode] = (),
    ) -> PolicyValidationResponse:
        """Run the engine under its lock; `lineage` is the portfolio's chain of ancestors."""
        with self.engine_lock:
            return self.engine.validate(request, policies, lineage=lineage)

    def capacity(
        self,
        request: CapacityRequest,
        policies: Sequence[PolicyDefinition],
        lineage: Sequence[PortfolioNode] = (),
    ) -> CapacityResponse:
        """Run the engine's capacity analysis under its lock."""
        with self.engine_lock:
            return self.engine.capacity(request, policies, lineage=lineage)
