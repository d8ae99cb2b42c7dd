"""The engine's front door: validate (and adjust) one decision against a policy set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.adjust.adjuster import Adjuster, AttemptResult
from engine.adjust.conflicts import find_conflicts
from engine.adjust.fx import fx_variants
from engine.adjust.problems import ProblemCache
from engine.capacity.analyzer import CapacityAnalyzer
from engine.check.checker import check
from engine.check.figures import analytics_of
from engine.check.scoring import compliance_score
from engine.check.sensitivity import sensitivity_of
from engine.compile.layout import Layout, LayoutCache
from engine.compile.prepared import Prepared, prepare
from engine.deadline import NO_DEADLINE, Deadline
from engine.errors import DeadlineExceeded
from engine.export.constraints import export_constraints
from engine.report import (
    binding_constraints,
    recommendations,
    rule_encodings,
    trades_of,
    violations_of,
)
from engine.resolve.global_policy import GlobalControls
from engine.resolve.references import ReferenceKey
from models import (
    AdjustedDecision,
    AdjustmentMethod,
    Infeasibility,
    PolicyDefinition,
    PolicyValidationRequest,
    PolicyValidationResponse,
    PortfolioNode,
    SolverAttempt,
    ValidationMode,
)
from models.capacity import CapacityRequest, CapacityResponse
from models.export import ConstraintSet, ConstraintSetRequest
from solvers import SolverChain, default_chain

__all__ = ["CacheStats", "PolicyEngine"]


@dataclass(frozen=True)
class CacheStats:
    """Compiled-problem cache counters."""

    entries: int
    hits: int
    misses: int
    layout_hits: int = 0
    layout_misses: int = 0


class PolicyEngine:
    """Checks decisions against policies and finds the closest compliant decision.

    One engine serves many requests: row layouts and compiled adjustment problems are cached
    by structure, so a request whose policy set and universe were seen before only sets new
    values. An engine is not thread-safe (its caches hold one request's values at a time):
    use one per thread, or a lock, as the HTTP service does.

    Parameters
    ----------
    chain
        The solver fallback chain (default: OSQP, Clarabel, ECOS for QPs; Clarabel, ECOS
        for cones). Tests pass failing solvers here.
    cache_size
        How many compiled problems to keep.
    """

    def __init__(self, *, chain: SolverChain | None = None, cache_size: int = 64) -> None:
        self.chain = chain or default_chain()
        self.cache = ProblemCache(cache_size)
        self.layouts = LayoutCache(cache_size)
        self.adjuster = Adjuster(self.chain, self.cache)
        self.capacity_analyzer = CapacityAnalyzer(self.chain, self.layouts)

    def cache_stats(self) -> CacheStats:
        """Entries, hits and misses of the compiled-problem cache."""
        return CacheStats(
            len(self.cache),
            self.cache.hits,
            self.cache.misses,
            self.layouts.hits,
            self.layouts.misses,
        )

    def prepare(
        self,
        request: PolicyValidationRequest,
        policies: Sequence[PolicyDefinition] = (),
        *,
        lineage: Sequence[PortfolioNode] = (),
        require_applicable: bool = False,
        deadline: Deadline = NO_DEADLINE,
        reference: ReferenceKey | None = None,
        controls: GlobalControls | None = None,
    ) -> Prepared:
        """Run the front stages once: resolve, weights and compile (engine.compile.prepared).

        The `Prepared` holds the effective policies, how the context shaped them, the
        request with its default benchmark, the snapshot, the layout (from this engine's
        layout cache) and the stage timer; `validate` evaluates it, and `capacity` and
        `export` build theirs the same way. Arguments and errors are as for `validate`.
        """
        return prepare(
            self.layouts,
            request,
            policies,
            lineage=lineage,
            require_applicable=require_applicable,
            deadline=deadline,
            reference=reference,
            controls=controls,
        )

    def export(
        self,
        request: ConstraintSetRequest,
        policies: Sequence[PolicyDefinition] = (),
        *,
        lineage: Sequence[PortfolioNode] = (),
        reference: ReferenceKey | None = None,
        controls: GlobalControls | None = None,
    ) -> ConstraintSet:
        """The constraint set of `request` for an optimizer (engine.export.constraints).

        As `export_constraints`, with the layout from this engine's layout cache.
        """
        return export_constraints(
            request,
            policies,
            lineage=lineage,
            layouts=self.layouts,
            reference=reference,
            controls=controls,
        )

    def capacity(
        self,
        request: CapacityRequest,
        policies: Sequence[PolicyDefinition] = (),
        *,
        lineage: Sequence[PortfolioNode] = (),
        deadline: Deadline = NO_DEADLINE,
        reference: ReferenceKey | None = None,
        controls: GlobalControls | None = None,
    ) -> CapacityResponse:
        """How much more of each requested symbol can be bought or sold (engine.capacity.analyzer).

        `policies` are the stored policies; a request carrying inline `policies` uses those
        instead. `lineage` is as for `validate`: the same effective set (inheritance,
        overrides, default benchmark) bounds the answer. Raises `engine.errors.InputError`
        for input that cannot be evaluated, and `DeadlineExceeded` when `deadline` passes
        before every symbol is sized.
        """
        return self.capacity_analyzer.run(
            request,
            policies,
            lineage=lineage,
            deadline=deadline,
            reference=reference,
            controls=controls,
        )

    def validate(
        self,
        request: PolicyValidationRequest,
        policies: Sequence[PolicyDefinition] = (),
        *,
        lineage: Sequence[PortfolioNode] = (),
        require_applicable: bool = False,
        deadline: Deadline = NO_DEADLINE,
        reference: ReferenceKey | None = None,
        controls: GlobalControls | None = None,
    ) -> PolicyValidationResponse:
        """Check `request.decision` against the effective policies (and adjust it).

        If the decision does not comply and `mode` is adjust, the response carries the closest
        compliant decision.

        `policies` are the stored policies; a request carrying inline `policies` uses those
        instead. `lineage` is the decision's portfolio and its ancestors in the hierarchy,
        nearest first (empty: not registered); it adds inherited policies, applies
        overrides and supplies a default benchmark when the request has none. Raises
        `engine.errors.InputError` for input that cannot be evaluated.

        With `require_applicable`, a request whose effective set holds no strict or advisory
        policy raises `NoApplicablePolicies` instead of being approved with nothing checked
        (the service asks for this for stored policies; an inline set is the caller's own).

        `deadline` (engine.deadline) is checked before every stage and bounds every solve.
        Raises `DeadlineExceeded` when it passes before the check has a verdict, and
        `RequestCancelled` when the request is abandoned at any point; when it passes during
        the adjustment, the answer is the check's (not compliant) with no adjusted decision
        and `adjustment_error` saying the adjustment timed out.

        `reference` (`engine.resolve.references.Resolution.key`) names the stored versions
        the request's reference data was resolved from: the layout cache then keys by them
        instead of by every instrument's content. Pass only the key of the resolution that
        produced this request.

        `controls` is the global policy (`engine.resolve.global_policy`): its risk mode,
        decision gates and limits apply; the response names the mode and the version.
        """
        prepared = self.prepare(
            request,
            policies,
            lineage=lineage,
            require_applicable=require_applicable,
            deadline=deadline,
            reference=reference,
            controls=controls,
        )
        request, snap, layout, timer = (
            prepared.request,
            prepared.snapshot,
            prepared.layout,
            prepared.timer,
        )
        deadline.check("check")
        with timer.stage("check"):
            result = check(layout, snap.w_hat, cure_passive=request.cure_passive)
        outcome: AttemptResult | None = None
        infeasible: Infeasibility | None = None
        solved, verified, fx_kept = layout, layout, True
        if not result.is_compliant and request.mode == ValidationMode.ADJUST:
            with timer.stage("adjust"):
                if request.decision.fx_trades:
                    outcome, infeasible, solved, fx_kept = self._adjust_fx(
                        prepared, layout, deadline
                    )
                    verified = layout if fx_kept else solved
                else:
                    outcome, infeasible = self._adjust_in_time(layout, request, deadline)
        adjustment = outcome.adjustment if outcome is not None else None
        adjusted = None
        if adjustment is not None:
            with timer.stage("verify"):
                verdict = check(verified, adjustment.w, cure_passive=request.cure_passive)
            notes = list(adjustment.notes)
            if request.decision.fx_trades and not fx_kept:
                notes.append(
                    "FX trades cancelled: no adjustment of the security trades complies with "
                    "them as proposed"
                )
            adjusted = AdjustedDecision(
                method=adjustment.method,
                trades=trades_of(snap, adjustment.t),
                fx_trades=list(request.decision.fx_trades) if fx_kept else [],
                is_compliant=verdict.is_compliant,
                distance=adjustment.distance,
                solver=adjustment.solver,
                binding=binding_constraints(solved.for_solver(), adjustment),
                solver_attempts=[
                    SolverAttempt(
                        solver=a.solver,
                        status=a.status.value,
                        seconds=round(a.seconds, 6),
                        message=a.message,
                    )
                    for a in adjustment.attempts
                ],
                notes=notes,
                encodings=rule_encodings(layout),
            )
        with timer.stage("report"):
            cure = request.cure_passive
            violations = violations_of(result, snap, adjustment, cure_passive=cure)
            advice = recommendations(violations, snap, adjustment, cure_passive=cure)
            if infeasible is not None:
                advice.append(infeasible.message)
            failed = outcome is not None and outcome.status == "failed"
            error = outcome.message if failed and outcome is not None else None
            if error:
                advice.append(f"Adjustment failed: {error}")
            score = compliance_score(violations)
            sensitivity = sensitivity_of(result)
            figures = None
            if request.analytics:
                adjusted_w = adjustment.w if adjustment is not None else None
                figures = analytics_of(layout, request, adjusted_w)
        return PolicyValidationResponse(
            decision_id=request.decision.decision_id,
            is_compliant=result.is_compliant,
            compliance_score=score,
            violations=violations,
            recommendations=advice,
            policies_checked=[p.policy_name for p in prepared.policies],
            adjusted_decision=adjusted,
            infeasible=infeasible,
            adjustment_error=error,
            sensitivity=sensitivity,
            context_resolution=prepared.context,
            risk_mode=prepared.risk_mode,
            analytics=figures,
            global_policy_version=None if prepared.controls is None else prepared.controls.version,
            timings_ms=timer.finish(),
        )

    def _adjust_fx(
        self, prepared: Prepared, layout: Layout, deadline: Deadline
    ) -> tuple[AttemptResult, Infeasibility | None, Layout, bool]:
        """Adjust a decision with FX trades (engine.adjust.fx): kept if possible, else cancelled.

        Returns the outcome, the infeasibility, the layout solved and whether the FX trades
        stay in the adjusted decision.
        """
        request = prepared.request
        tried: tuple[AttemptResult, Infeasibility | None, Layout, bool] | None = None
        for variant in fx_variants(request, prepared.policies, prepared.snapshot):
            outcome, infeasible = self._adjust_in_time(variant.layout, variant.request, deadline)
            tried = (outcome, infeasible, variant.layout, variant.keeps_fx)
            adjustment = outcome.adjustment
            if adjustment is None:
                continue
            if not variant.keeps_fx:
                return tried
            verdict = check(layout, adjustment.w, cure_passive=request.cure_passive)
            if verdict.is_compliant:
                return tried
        assert tried is not None
        return tried

    def _adjust_in_time(
        self, layout: Layout, request: PolicyValidationRequest, deadline: Deadline
    ) -> tuple[AttemptResult, Infeasibility | None]:
        """`_adjust`, or a failed adjustment that says it timed out (the verdict stands)."""
        try:
            return self._adjust(layout, request, deadline)
        except DeadlineExceeded as exc:
            # Fail closed: the check already found the decision not compliant; only the
            # search for a compliant version is cut short.
            message = (
                f"the adjustment timed out after {exc.elapsed:.3g} s (request deadline "
                f"{exc.limit:g} s, reached before {exc.stage})"
            )
            if self.adjuster.cancelling_complies(layout, cure_passive=request.cure_passive):
                message += "; cancelling every trade would comply"
            return AttemptResult("failed", message=message), None

    def _adjust(
        self, layout: Layout, request: PolicyValidationRequest, deadline: Deadline
    ) -> tuple[AttemptResult, Infeasibility | None]:
        methods = (
            [AdjustmentMethod.SCALE_BACK, AdjustmentMethod.PROJECT]
            if request.adjustment == AdjustmentMethod.AUTO
            else [request.adjustment]
        )
        outcomes: list[AttemptResult] = []
        for method in methods:
            outcome = self.adjuster.attempt(
                layout, method, cure_passive=request.cure_passive, deadline=deadline
            )
            if outcome.status == "adjusted":
                return outcome, None
            outcomes.append(outcome)
        failed = [o for o in outcomes if o.status == "failed"]
        if failed:
            # No method produced a verified optimum (solvers, or lots, defeated it). Fail
            # closed: no adjusted decision, and say why.
            message = "; ".join(
                f"{m.value}: {o.message or o.status}"
                for m, o in zip(methods, outcomes, strict=True)
            )
            if self.adjuster.cancelling_complies(layout, cure_passive=request.cure_passive):
                message += "; cancelling every trade would comply"
            attempts = [a for o in outcomes for a in o.attempts]
            return AttemptResult("failed", attempts=attempts, message=message), None
        outcome = outcomes[-1]
        last = methods[-1]
        conflicting = find_conflicts(
            layout.for_solver(),
            space="scale_back" if last == AdjustmentMethod.SCALE_BACK else "project",
            cure_passive=request.cure_passive,
            cache=self.cache,
            chain=self.chain,
            deadline=deadline,
        )
        if last == AdjustmentMethod.SCALE_BACK:
            message = (
                f"No scaling back of the proposed trades satisfies {', '.join(conflicting)} "
                "together; adjustment 'project' may trade other held symbols"
            )
        else:
            message = (
                f"Policies {', '.join(conflicting)} conflict: no portfolio over the held "
                "and traded symbols satisfies them together; relax one of them"
            )
        restricted = sorted({e.policy_name for e in rule_encodings(layout)})
        if restricted:
            # A restriction is a subset of its rule: its infeasibility proves no conflict.
            message += (
                f" (found with convex restrictions of {', '.join(restricted)}, which are "
                "stricter than the rules themselves)"
            )
        return outcome, Infeasibility(conflicting_policies=conflicting, message=message)
