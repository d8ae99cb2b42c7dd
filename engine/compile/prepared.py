"""The front stages, once: resolve -> weights -> compile, shared by validate, capacity, export.

`prepare` checks a request's inline policies, resolves the effective set against the
portfolio's lineage and the request's context, gives the request its default benchmark,
computes the snapshot (V, NAV, w0, ŵ) and compiles the layout through the engine's layout
cache, timing each stage. Its `Prepared` is what every later stage reads: the checker and
the adjuster (validate), the capacity search, the constraint export.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from engine.compile.language import check_policies
from engine.compile.layout import Layout, LayoutCache
from engine.deadline import NO_DEADLINE, Deadline
from engine.errors import NoApplicablePolicies
from engine.resolve.global_policy import GlobalControls, applied_risk_mode, control_policies
from engine.resolve.hierarchy import Lineage, with_default_benchmark
from engine.resolve.references import ReferenceKey
from engine.resolve.resolve import resolve_policies
from engine.timing import StageTimer
from engine.weights.portfolio import Snapshot, snapshot_of
from models import (
    AppliedRiskMode,
    EnforcementLevel,
    PolicyContext,
    PolicyDefinition,
    PolicyValidationRequest,
    PortfolioNode,
)

__all__ = ["Prepared", "prepare"]


@dataclass
class Prepared:
    """A request's effective policies, snapshot and compiled layout, ready to evaluate.

    Attributes
    ----------
    request
        The request as the later stages read it: with the lineage's default benchmark.
    policies
        The effective policies (plain, by name), every level.
    context
        How the request's context shaped them (the response's `context_resolution`).
    snapshot
        The snapshot of the request's universe (plus `include`).
    timer
        The stage timer, started before the resolve stage; later stages add theirs.
    layouts
        The layout cache the layouts come from (the engine's).
    levels
        The enforcement levels compiled (None: every level).
    reference
        The stored versions the request's reference data came from, for the layout key.
    risk_mode
        The risk mode the request's conditions read, and where it came from.
    controls
        The global policy applied (None: none).
    """

    request: PolicyValidationRequest
    policies: list[PolicyDefinition]
    context: list[PolicyContext]
    snapshot: Snapshot
    timer: StageTimer
    layouts: LayoutCache
    levels: frozenset[EnforcementLevel] | None = None
    reference: ReferenceKey | None = None
    risk_mode: AppliedRiskMode | None = None
    controls: GlobalControls | None = None
    _layout: Layout | None = field(default=None, repr=False)

    @property
    def compiled(self) -> list[PolicyDefinition]:
        """The effective policies of the compiled levels, in order."""
        if self.levels is None:
            return self.policies
        return [p for p in self.policies if p.enforcement_level in self.levels]

    @property
    def layout(self) -> Layout:
        """The layout of `compiled` over `snapshot` (compiled on first use, in the timer)."""
        if self._layout is None:
            with self.timer.stage("compile"):
                self._layout = self.layouts.get(
                    self.compiled, self.request, self.snapshot, self.reference
                )
        return self._layout

    def layout_with(self, include: Sequence[str]) -> Layout:
        """The layout over the request's universe plus `include` (a snapshot of its own)."""
        with self.timer.stage("weights"):
            universe = self.layouts.universes.arrays(
                self.reference, self.request.portfolio_state.instruments
            )
            snap = snapshot_of(self.request, include=include, universe=universe)
        with self.timer.stage("compile"):
            return self.layouts.get(self.compiled, self.request, snap, self.reference)


def prepare(
    layouts: LayoutCache,
    request: PolicyValidationRequest,
    policies: Sequence[PolicyDefinition] = (),
    *,
    lineage: Sequence[PortfolioNode] = (),
    require_applicable: bool = False,
    deadline: Deadline = NO_DEADLINE,
    include: Sequence[str] = (),
    levels: Collection[EnforcementLevel] | None = None,
    compile: bool = True,
    reference: ReferenceKey | None = None,
    controls: GlobalControls | None = None,
    gates: bool = True,
) -> Prepared:
    """Resolve, snapshot and compile `request` (see `PolicyEngine.prepare`).

    `include` adds symbols to the universe (errors name them as `universe[k]`); `levels`
    keeps the compiled layout to those enforcement levels; `compile=False` leaves the
    layout to the first use of `Prepared.layout` (a caller that compiles other universes).
    `deadline` is checked before every stage. `reference` names the stored versions the
    request's reference data came from (`Resolution.key`), so that the layout cache keys
    by them instead of by the instruments' content. `controls` is the global policy
    (`engine.resolve.global_policy`): its risk mode is applied before the policies are
    resolved and its policies join the effective set (its decision gates only with
    `gates`).
    """
    timer = StageTimer()
    deadline.check("resolve")
    with timer.stage("resolve"):
        if request.policies is not None:  # stored policies were checked when stored
            check_policies(request.policies, prefix="policies")
        chain = Lineage.of(request.decision.portfolio_id, lineage)
        request, risk_mode = applied_risk_mode(request, controls)
        resolution = resolve_policies(request, policies, chain)
        effective = resolution.policies + control_policies(controls, request, gates=gates)
        if require_applicable:  # the global policy's own do not make a portfolio covered
            _require_applicable(resolution.policies, request, stored=len(policies))
        request = with_default_benchmark(request, chain)
    deadline.check("weights")
    with timer.stage("weights"):
        universe = layouts.universes.arrays(reference, request.portfolio_state.instruments)
        snap = snapshot_of(request, include=include, universe=universe)
    prepared = Prepared(
        request=request,
        policies=effective,
        context=resolution.context,
        snapshot=snap,
        timer=timer,
        layouts=layouts,
        levels=None if levels is None else frozenset(levels),
        reference=reference,
        risk_mode=risk_mode,
        controls=controls,
    )
    if compile:
        deadline.check("compile")
        _ = prepared.layout
    return prepared


_CHECKING_LEVELS = frozenset({EnforcementLevel.STRICT, EnforcementLevel.ADVISORY})
"""Levels whose breaches a response reports as such; monitor-only policies approve anyway."""


def _require_applicable(
    effective: Sequence[PolicyDefinition], request: PolicyValidationRequest, *, stored: int
) -> None:
    """Refuse a request on which no strict or advisory policy would be checked."""
    if any(p.enforcement_level in _CHECKING_LEVELS for p in effective):
        return
    portfolio = request.decision.portfolio_id
    monitors = f", {len(effective)} monitor-only" if effective else ""
    raise NoApplicablePolicies(
        "decision.portfolio_id",
        f"no enabled strict or advisory policy applies to portfolio {portfolio!r} "
        f"({stored} policies considered{monitors}): nothing would be checked, so the decision "
        "is not approved; scope a policy to this portfolio (or one of its ancestors)",
    )
