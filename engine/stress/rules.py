"""The policies' stress, VaR and CVaR rules, evaluated as the engine evaluates them.

Only those constraints are kept (a policy without one is left out); the rest are the
business of /validate. The kept policies are resolved for each portfolio (scope, `when`)
and compiled once per portfolio id by the batch checker (`engine.batch.BatchChecker`),
with the request's scenarios as the state's `scenarios` and its risk model: a `cvar` rule's
value is then the CVaR of the same losses as the loss distribution's, a `stress` rule's the
loss under the policy's own shocks, and a `var` rule's the engine's parametric VaR (SPEC
section 4), reported beside the scenario VaR at the rule's confidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.batch import BatchChecker
from engine.batch.backend import BackendName
from engine.errors import InputError, NoApplicablePolicies
from engine.resolve.resolve import resolve_policies
from engine.stress.measures import var_of_losses
from engine.tolerances import TOLERANCE
from models import (
    Instrument,
    PolicyDefinition,
    PolicyValidationRequest,
    RiskModel,
    ScenarioSet,
    ValueAtRisk,
)
from models.contextual import concrete
from models.stress import RuleResult
from models.typing import FloatArray

__all__ = ["SCENARIO_KINDS", "evaluate_rules", "scenario_policies"]

SCENARIO_KINDS = frozenset({"stress", "var", "cvar"})


def scenario_policies(policies: Sequence[PolicyDefinition]) -> list[PolicyDefinition]:
    """The enabled policies, each with only its stress, var and cvar constraints."""
    kept: list[PolicyDefinition] = []
    for policy in policies:
        constraints = [c for c in policy.rules.constraints if c.kind in SCENARIO_KINDS]
        if policy.enabled and constraints:
            rules = policy.rules.model_copy(update={"constraints": constraints})
            kept.append(policy.model_copy(update={"rules": rules}))
    return kept


def _field(name: str) -> str:
    """A state's field, as the stress request names it."""
    return {
        "portfolio_state.risk_model": "risk_model",
        "portfolio_state.scenarios": "scenarios",
    }.get(name, name.removeprefix("portfolio_state."))


def _applying(
    policies: Sequence[PolicyDefinition], portfolio_id: str, context: Mapping[str, Any]
) -> list[PolicyDefinition]:
    """The policies that apply to `portfolio_id` under `context` (scope, `when`, limits)."""
    request = PolicyValidationRequest.model_validate(
        {
            "decision": {"decision_id": "stress", "portfolio_id": portfolio_id, "trades": []},
            "portfolio_state": {"portfolio_id": portfolio_id, "cash": 1.0, "positions": []},
            "context": dict(context),
            "mode": "validate",
        }
    )
    return resolve_policies(request, policies).policies


def _var_levels(checker: BatchChecker) -> dict[str, list[float]]:
    """Each applying policy's var confidences (resolved against the context), in order."""
    return {
        policy.policy_name: [
            concrete(c.confidence) for c in policy.rules.constraints if isinstance(c, ValueAtRisk)
        ]
        for policy in checker.policies
    }


def evaluate_rules(
    policies: Sequence[PolicyDefinition],
    instruments: Sequence[Instrument],
    weights: FloatArray,
    portfolio_ids: Sequence[str],
    *,
    returns: FloatArray,
    losses: FloatArray,
    risk_model: RiskModel | None,
    context: Mapping[str, Any],
    backend: BackendName,
) -> list[list[RuleResult]]:
    """Per portfolio (row of `weights`, over `instruments` in symbol order), its rows.

    `returns` (S, n) are the scenarios, `losses` (S, P) the portfolios' losses under them
    (for the scenario VaR beside each var rule). Raises `InputError` naming the field when
    a rule lacks data (a var rule without a risk model).
    """
    kept = scenario_policies(policies)
    results: list[list[RuleResult]] = [[] for _ in portfolio_ids]
    if not kept:
        return results
    symbols = sorted(i.symbol for i in instruments)
    # One compilation per distinct set of applying policies (most portfolios share one).
    groups: dict[tuple[str, ...], tuple[list[PolicyDefinition], list[int]]] = {}
    for p, pid in enumerate(portfolio_ids):
        applying = _applying(kept, pid, context)
        key = tuple(policy.model_dump_json() for policy in applying)
        groups.setdefault(key, (applying, []))[1].append(p)
    levels = {policy.policy_name: policy.enforcement_level.value for policy in kept}
    listed: list[list[float]] | None = None
    for applying, members in groups.values():
        if not applying:
            continue
        needs_scenarios = any(
            c.kind == "cvar" for policy in applying for c in policy.rules.constraints
        )
        scenarios = None
        if needs_scenarios:
            if listed is None:
                listed = returns.tolist()
            # Validated already (finite, one column per symbol): constructed, not re-validated.
            scenarios = ScenarioSet.model_construct(symbols=symbols, returns=listed)
        try:
            checker = BatchChecker(
                applying,
                instruments,
                risk_model=risk_model,
                scenarios=scenarios,
                portfolio_id=portfolio_ids[members[0]],
                context=context,
                backend=backend,
            )
        except NoApplicablePolicies:  # pragma: no cover - resolved to a non-empty set above
            continue
        except InputError as exc:
            raise InputError(_field(exc.field), exc.message) from exc
        values = checker.values(weights[members])
        limits = checker.limits
        sign = np.array([1.0 if s == "le" else -1.0 for s in checker.senses])
        breached = (values - limits) * sign > TOLERANCE
        var_levels = _var_levels(checker)
        for row, p in enumerate(members):
            seen: dict[str, int] = {}
            for j, label in enumerate(checker.labels):
                scenario_value = None
                if label.kind == "var":
                    k = seen.get(label.policy_name, 0)
                    seen[label.policy_name] = k + 1
                    level = var_levels[label.policy_name][k]
                    scenario_value = var_of_losses(losses[:, p], level)
                results[p].append(
                    RuleResult(
                        policy_name=label.policy_name,
                        kind=label.kind,
                        violation_type=label.violation_type,
                        subject=label.subject,
                        enforcement_level=levels[label.policy_name],
                        observed=float(values[row, j]),
                        limit=float(limits[j]),
                        breached=bool(breached[row, j]),
                        scenario_value=scenario_value,
                    )
                )
    return results
