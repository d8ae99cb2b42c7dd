"""What the routes share: settings, store, engine, relay, metrics and the global policy."""

from __future__ import annotations

import difflib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import DataError, SQLAlchemyError

from api.events import OutboxRelay
from api.global_controls import GlobalPolicyCache
from api.global_notify import GlobalPolicyListener
from api.heap import Heap
from api.http.metrics import Metrics
from api.references import ReferenceCache, StoreReferences, reported, resolved
from api.settings import Settings
from api.store import Store, Unavailable, UnknownPortfolio
from engine import Deadline, PolicyEngine
from engine.resolve.global_policy import GlobalControls
from engine.resolve.references import Resolution
from models import (
    PolicyDefinition,
    PolicyValidationRequest,
    PolicyValidationResponse,
    PortfolioNode,
)
from models.capacity import CapacityRequest, CapacityResponse
from models.export import ConstraintSet, ConstraintSetRequest

__all__ = ["Services"]

_Request = TypeVar("_Request", PolicyValidationRequest, CapacityRequest, ConstraintSetRequest)


@dataclass
class Services:
    """The service's long-lived parts, created at start-up."""

    settings: Settings
    store: Store
    engine: PolicyEngine
    metrics: Metrics
    relay: OutboxRelay | None = None
    references: StoreReferences | None = None
    global_policy: GlobalPolicyCache | None = None
    global_listener: GlobalPolicyListener | None = None
    # Compiled problems hold parameter values between fill and solve, so one request at a
    # time uses the engine; scale out with more worker processes.
    engine_lock: threading.Lock = field(default_factory=threading.Lock)
    heap: Heap = field(init=False)

    def __post_init__(self) -> None:
        if self.references is None:
            cache = ReferenceCache(self.settings.reference_cache_size)
            self.references = StoreReferences(self.store, cache)
        if self.global_policy is None:
            self.global_policy = GlobalPolicyCache(
                self.store.global_policy, self.settings.global_policy_refresh_s
            )
        self.heap = Heap(
            self.cache_misses,
            enabled=self.settings.gc_freeze,
            reclaim_after=self.cache_capacity(),
            reclaim_mb=self.settings.gc_reclaim_mb,
        )

    def listening(self) -> bool | None:
        """Whether this worker hears global-policy changes now (None: it only polls)."""
        return None if self.global_listener is None else self.global_listener.listening

    def cache_capacity(self) -> int:
        """Entries the caches counted by `cache_misses` hold together, at most."""
        assert self.references is not None
        engine = self.engine
        return (
            engine.cache.max_entries
            + engine.layouts.max_entries
            + self.references.cache.max_entries
        )

    def cache_misses(self) -> int:
        """Misses of every cache that keeps objects for the process's life, summed."""
        stats = self.engine.cache_stats()
        assert self.references is not None
        return stats.misses + stats.layout_misses + self.references.cache.misses

    def resolved(self, request: _Request) -> tuple[_Request, Resolution]:
        """`request` with its registered universe / risk model and price overrides merged in.

        With the resolution (`api.references.resolved`); unknown ids or versions raise
        `InputError` naming the field (422), a database failure `Unavailable` (503).
        """
        assert self.references is not None
        try:
            return resolved(request, self.references)
        except DataError:
            raise  # the database refused a value of the request: 422, not an outage
        except (SQLAlchemyError, ValidationError) as exc:  # fail closed, never "compliant"
            reason = exc.__class__.__name__
            raise Unavailable(f"reference data cannot be loaded: {reason}") from exc

    def controls(self) -> GlobalControls:
        """The global policy every validation, capacity question and export applies.

        This worker's copy, refreshed from the store at most `global_policy_refresh_s` ago
        (`api.global_controls`); a database failure is 503, never a check without it.
        """
        assert self.global_policy is not None
        return self.global_policy.controls()

    def lineage(
        self,
        portfolio_id: str,
        *,
        field: str = "decision.portfolio_id",
        registered: bool = False,
    ) -> list[PortfolioNode]:
        """The portfolio's chain of ancestors, nearest first; a database failure is 503.

        Empty for a portfolio that is not registered. With `registered`, an id the tree does
        not hold is refused (`UnknownPortfolio`, naming `field`, with the closest registered
        ids) whenever a tree is registered at all: with stored policies, an unknown id would
        silently drop the policies scoped to that portfolio and its ancestors.
        """
        try:
            chain = self.store.portfolios.lineage(portfolio_id)
            known = self.store.portfolios.ids() if registered and not chain else []
        except DataError:
            raise  # the database refused a value of the request: 422, not an outage
        except (SQLAlchemyError, ValidationError) as exc:  # fail closed, never "compliant"
            reason = exc.__class__.__name__
            raise Unavailable(f"the portfolio hierarchy cannot be loaded: {reason}") from exc
        if known:
            closest = difflib.get_close_matches(portfolio_id, known, n=3, cutoff=0.6)
            raise UnknownPortfolio(field, portfolio_id, closest)
        return chain

    def validate(
        self,
        request: PolicyValidationRequest,
        policies: Sequence[PolicyDefinition],
        lineage: Sequence[PortfolioNode] = (),
        *,
        require_applicable: bool = False,
        deadline: Deadline | None = None,
    ) -> PolicyValidationResponse:
        """Run the engine under its lock; `lineage` is the portfolio's chain of ancestors.

        Registered reference data is resolved first (outside the lock); the response says
        which versions were used, and errors inside a universe's instruments name them there.
        `require_applicable` refuses a request on which no strict or advisory policy applies
        (`engine.errors.NoApplicablePolicies`). `deadline` bounds the request, the wait for
        the lock included (default: the settings' `request_deadline_s` from now).
        """
        if deadline is None:
            deadline = Deadline(self.settings.request_deadline_s)
        plain, resolution = self.resolved(request)
        controls = self.controls()
        with resolution.located(), self.engine_lock:
            response = self.engine.validate(
                plain,
                policies,
                lineage=lineage,
                require_applicable=require_applicable,
                deadline=deadline,
                reference=resolution.key,
                controls=controls,
            )
        return reported(response, resolution)

    def capacity(
        self,
        request: CapacityRequest,
        policies: Sequence[PolicyDefinition],
        lineage: Sequence[PortfolioNode] = (),
    ) -> CapacityResponse:
        """Run the engine's capacity analysis under its lock (reference data resolved first).

        Bounded by the settings' `request_deadline_s` from now (late: 503).
        """
        deadline = Deadline(self.settings.request_deadline_s)
        plain, resolution = self.resolved(request)
        controls = self.controls()
        with resolution.located(), self.engine_lock:
            return self.engine.capacity(
                plain,
                policies,
                lineage=lineage,
                deadline=deadline,
                reference=resolution.key,
                controls=controls,
            )

    def export(
        self,
        request: ConstraintSetRequest,
        policies: Sequence[PolicyDefinition],
        lineage: Sequence[PortfolioNode] = (),
    ) -> ConstraintSet:
        """The constraint set for an optimizer, under the engine's lock (reference data first).

        The export compiles through the engine's layout cache, which holds one request's
        values at a time: hence the lock, as for validate and capacity.
        """
        plain, resolution = self.resolved(request)
        controls = self.controls()
        with resolution.located(), self.engine_lock:
            return self.engine.export(
                plain, policies, lineage=lineage, reference=resolution.key, controls=controls
            )
