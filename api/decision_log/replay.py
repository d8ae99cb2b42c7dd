"""Replay: logged decisions run again under a candidate policy set.

A replay reads the matching log entries (at most `max_decisions`; more is refused, naming
the filters, before anything runs), rebuilds each request (`api.decision_log.parts`) and
validates it with the candidate's policies, the portfolio's logged lineage and the global
policy the candidate names, then compares the answer with the logged one
(`api.decision_log.compare`). Nothing is stored and no event is sent: a replay is a read.
Under the `applied` candidate each decision gets the exact policy versions and global
policy version it was validated with, so the answers are the logged ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError
from sqlalchemy.exc import DataError, SQLAlchemyError

from api.decision_log.compare import compared, failed
from api.decision_log.parts import replay_inputs
from api.references import reported, resolved
from api.store import Invalid, LogEntry, LogFilter, NotFound, Store, Unavailable
from api.store.policies import reserved
from engine import Deadline, DeadlineExceeded, InputError
from engine.resolve.global_policy import GlobalControls
from engine.resolve.references import ReferenceNotFound, ReferenceSource
from models import PolicyDefinition, PolicyValidationRequest, PolicyValidationResponse
from models.hierarchy import PortfolioNode
from models.replay import (
    ReplayCandidate,
    ReplayChange,
    ReplayedDecision,
    ReplayRequest,
    ReplayResponse,
    ReplaySummary,
)

if TYPE_CHECKING:
    from engine import PolicyEngine

__all__ = ["Replayer", "Validate", "engine_validator"]

Validate = Callable[
    [
        PolicyValidationRequest,
        Sequence[PolicyDefinition],
        Sequence[PortfolioNode],
        GlobalControls | None,
    ],
    PolicyValidationResponse,
]
"""One validation as the service runs it: request, stored policies, lineage, global policy."""


def engine_validator(
    engine: PolicyEngine,
    references: ReferenceSource,
    *,
    deadline_s: float,
    require_applicable: bool,
    lock: AbstractContextManager[object] | None = None,
) -> Validate:
    """A `Validate` over `engine`: reference data resolved first, then the engine under `lock`.

    Each validation has `deadline_s` seconds, as a live one has; `require_applicable`
    refuses a decision on which no strict or advisory policy applies, as the service does.
    """
    guard: AbstractContextManager[object] = lock if lock is not None else nullcontext()

    def validate(
        request: PolicyValidationRequest,
        policies: Sequence[PolicyDefinition],
        lineage: Sequence[PortfolioNode],
        controls: GlobalControls | None,
    ) -> PolicyValidationResponse:
        deadline = Deadline(deadline_s)
        try:
            plain, resolution = resolved(request, references)
        except DataError:
            raise
        except (SQLAlchemyError, ValidationError) as exc:
            raise Unavailable(f"reference data cannot be loaded: {exc.__class__.__name__}") from exc
        with resolution.located(), guard:
            response = engine.validate(
                plain,
                policies,
                lineage=lineage,
                require_applicable=require_applicable,
                deadline=deadline,
                reference=resolution.key,
                controls=controls,
            )
        return reported(response, resolution)

    return validate


@dataclass
class Replayer:
    """Replays logged decisions from `store` with `validate`, at most `max_decisions` a run."""

    store: Store
    validate: Validate
    max_decisions: int

    def run(self, request: ReplayRequest) -> ReplayResponse:
        """Replay every logged decision `request` selects; see the module's docstring."""
        where = LogFilter(
            since=request.since,
            until=request.until,
            portfolio_ids=tuple(request.portfolio_ids),
            decision_ids=tuple(request.decision_ids),
            validation_ids=tuple(request.validation_ids),
        )
        if where.since is not None and where.until is not None and where.since >= where.until:
            raise Invalid("until", "must be later than since")
        try:
            candidate = _Candidate(self.store, request.candidate)
            matching = self.store.decision_log.count(where)
            if matching > self.max_decisions:
                raise Invalid(
                    "filters",
                    f"{matching} logged decisions match; a replay runs at most "
                    f"{self.max_decisions} (PES_REPLAY_MAX_DECISIONS): narrow since/until, "
                    "portfolio_ids, decision_ids or validation_ids",
                )
            entries = self.store.decision_log.entries(where)
        except (DataError, Invalid, NotFound):
            raise
        except (SQLAlchemyError, ValidationError) as exc:
            raise Unavailable(f"the decision log cannot be read: {exc.__class__.__name__}") from exc
        decisions = [
            self._one(entry, candidate, include=request.include_responses) for entry in entries
        ]
        counts = Counter(d.change for d in decisions)
        summary = ReplaySummary(
            replayed=len(decisions),
            changed=len(decisions) - counts[ReplayChange.UNCHANGED],
            by_change={c: counts[c] for c in ReplayChange},
        )
        return ReplayResponse(summary=summary, decisions=decisions)

    def _one(self, entry: LogEntry, candidate: _Candidate, *, include: bool) -> ReplayedDecision:
        try:
            inputs = replay_inputs(entry.parts, entry.reference_data)
            policies = candidate.policies(inputs.policy_set)
            controls = candidate.controls(entry.global_policy_version)
            response = self.validate(inputs.request, policies, inputs.lineage, controls)
        except (InputError, Invalid, NotFound, ReferenceNotFound, ValidationError) as exc:
            return failed(entry, f"{exc.__class__.__name__}: {exc}")
        except DeadlineExceeded as exc:
            return failed(entry, f"deadline exceeded: {exc}")
        return compared(entry, response.model_dump(mode="json"), include_response=include)


class _Candidate:
    """The candidate's policy sets and global policies, each read from the store once."""

    def __init__(self, store: Store, candidate: ReplayCandidate) -> None:
        self.store = store
        self.candidate = candidate
        self._at: dict[tuple[str, int], PolicyDefinition] = {}
        self._global: dict[int, GlobalControls] = {}
        inline: dict[str, PolicyDefinition] = {}
        for k, policy in enumerate(candidate.policies):
            if policy.policy_name in inline:
                raise Invalid(
                    f"candidate.policies[{k}].policy_name",
                    f"{policy.policy_name!r} appears twice",
                )
            try:
                reserved(policy)
            except Invalid as exc:
                raise Invalid(f"candidate.policies[{k}].policy_name", exc.message) from None
            inline[policy.policy_name] = policy
        self.inline = inline
        self.pinned = self._definitions(dict(candidate.versions), "candidate.versions")
        self.base: dict[str, PolicyDefinition] | None = None
        if candidate.base == "stored":
            listed = (
                [p.definition for p in store.policies.list()]
                if candidate.as_of is None
                else store.policies.as_of(candidate.as_of)
            )
            self.base = {p.policy_name: p for p in listed}
        elif candidate.base == "none":
            self.base = {}
        elif candidate.as_of is not None:
            raise Invalid("candidate.as_of", "only with base 'stored'")
        self.fixed_global = None
        if candidate.global_policy == "current":
            current = store.global_policy.current()
            self.fixed_global = GlobalControls(current.policy, current.version)
        elif isinstance(candidate.global_policy, int):
            self.fixed_global = self._global_at(candidate.global_policy, "candidate.global_policy")

    def _definitions(self, versions: dict[str, int], where: str) -> dict[str, PolicyDefinition]:
        missing = {n: v for n, v in versions.items() if (n, v) not in self._at}
        if missing:
            try:
                found = self.store.policies.at_versions(missing)
            except NotFound as exc:
                raise Invalid(where, str(exc).strip("'\"")) from None
            for name, definition in found.items():
                self._at[(name, missing[name])] = definition
        return {n: self._at[(n, v)] for n, v in versions.items()}

    def policies(self, logged: dict[str, int]) -> list[PolicyDefinition]:
        """The candidate's set for a decision validated with the stored versions `logged`."""
        base = self.base
        if base is None:
            base = self._definitions(logged, "policy_set")
        merged = {**base, **self.pinned, **self.inline}
        return [merged[n] for n in sorted(merged)]

    def controls(self, logged: int | None) -> GlobalControls | None:
        """The global policy for a decision validated with version `logged` (None: none)."""
        if self.candidate.global_policy != "applied":
            return self.fixed_global
        return None if logged is None else self._global_at(logged, "global_policy_version")

    def _global_at(self, version: int, where: str) -> GlobalControls:
        if version not in self._global:
            try:
                stored = self.store.global_policy.get(version)
            except NotFound as exc:
                raise Invalid(where, str(exc).strip("'\"")) from None
            self._global[version] = GlobalControls(stored.policy, stored.version)
        return self._global[version]
