"""The global policy applied to one validation: its risk mode, gates and limits.

The platform's runtime controls (`models.GlobalPolicy`, stored and versioned by the
service) reach the engine as `GlobalControls`. Before the request's policies are resolved:

- **risk mode**: the stored `risk_mode` is what conditions and per-mode limits read as
  `context.risk_mode`. A validation against the stored policies always applies it (the
  request's own `context.risk_mode`, if any, is reported as ignored); a what-if run
  (inline `policies`) applies the request's value when it gives one, the stored one else.
- **gates**: a decision whose `strategy` is not among `allowed_strategies`, or whose
  `confidence` is below `global_min_confidence` (or missing, when `require_confidence`),
  gets a strict `trading_halt` policy with violation type `strategy_not_allowed` /
  `confidence_below_minimum`: every trade breaches it and the adjusted decision is no
  trades.
- **limits**: `allowed_symbols` becomes a strict `restricted` no_buy policy on every
  other symbol (selling stays allowed), `max_positions` a strict `max_positions` policy,
  `max_risk_per_trade` a strict `trade_risk` policy.

The synthesized policies are named `global-policy.<control>` (a prefix the service keeps
for them) and are checked, adjusted, reported and stored like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from models import (
    AppliedRiskMode,
    EnforcementLevel,
    GlobalPolicy,
    PolicyDefinition,
    PolicyType,
    PolicyValidationRequest,
)

__all__ = ["GLOBAL_POLICY_PREFIX", "GlobalControls", "applied_risk_mode", "control_policies"]

GLOBAL_POLICY_PREFIX = "global-policy."
"""Names of the policies the global policy synthesizes (reserved for them)."""

RISK_MODE_KEY = "risk_mode"


@dataclass(frozen=True)
class GlobalControls:
    """A global policy as one validation applies it, with its stored version (if stored)."""

    policy: GlobalPolicy
    version: int | None = None


def applied_risk_mode(
    request: PolicyValidationRequest, controls: GlobalControls | None
) -> tuple[PolicyValidationRequest, AppliedRiskMode | None]:
    """`request` with the risk mode its conditions read, and which one that is."""
    asked = request.context.get(RISK_MODE_KEY)
    shown = None if asked is None else str(asked)
    if controls is None:
        applied = (
            None if asked is None else AppliedRiskMode(mode=shown or "", source="request_context")
        )
        return request, applied
    stored = controls.policy.risk_mode.value
    if request.policies is not None and asked is not None:  # a what-if run names its own
        return request, AppliedRiskMode(mode=shown or "", source="request_context")
    ignored = shown if asked is not None and shown != stored else None
    context = {**request.context, RISK_MODE_KEY: stored}
    applied = AppliedRiskMode(mode=stored, source="global_policy", ignored_request_value=ignored)
    return request.model_copy(update={"context": context}), applied


def control_policies(
    controls: GlobalControls | None, request: PolicyValidationRequest, *, gates: bool = True
) -> list[PolicyDefinition]:
    """The strict policies the global policy adds to `request`'s effective set.

    `gates=False` leaves the decision gates out: for a capacity question or a constraint
    export there is no decision whose strategy or confidence could be judged.
    """
    if controls is None:
        return []
    policy = controls.policy
    out = _gates(policy, request) if gates else []
    if policy.allowed_symbols:
        out.append(
            _synthesized(
                "allowed_symbols",
                PolicyType.INVESTMENT_MANDATE,
                {"kind": "restricted", "mode": "no_buy", "all_except": policy.allowed_symbols},
                "The global policy's allowed_symbols: no other symbol may be bought.",
            )
        )
    if policy.max_positions is not None:
        out.append(
            _synthesized(
                "max_positions",
                PolicyType.POSITION_LIMIT,
                {"kind": "max_positions", "max": policy.max_positions},
                "The global policy's max_positions: open positions after the decision.",
            )
        )
    if policy.max_risk_per_trade is not None:
        out.append(
            _synthesized(
                "max_risk_per_trade",
                PolicyType.RISK_LIMIT,
                {"kind": "trade_risk", "max": policy.max_risk_per_trade},
                "The global policy's max_risk_per_trade: each trade's standalone risk.",
            )
        )
    return out


def _gates(policy: GlobalPolicy, request: PolicyValidationRequest) -> list[PolicyDefinition]:
    """A `trading_halt` policy per gate the decision fails."""
    out = []
    decision = request.decision
    if policy.allowed_strategies and decision.strategy not in policy.allowed_strategies:
        named = "no strategy" if decision.strategy is None else f"strategy {decision.strategy!r}"
        out.append(
            _halt(
                "strategy",
                "strategy_not_allowed",
                f"{named} is not among the allowed strategies",
                "The global policy's allowed_strategies: a decision of another strategy may "
                "not trade.",
            )
        )
    if policy.allowed_strategies:
        out.extend(_sleeve_gate(policy.allowed_strategies, request))
    minimum = policy.global_min_confidence
    confidence = decision.confidence
    reason = None
    if minimum is not None and confidence is None and policy.require_confidence:
        reason = f"no confidence given; the global minimum is {minimum:g}"
    elif minimum is not None and confidence is not None and confidence < minimum:
        reason = f"confidence below the global minimum {minimum:g}"
    if reason is not None:
        out.append(
            _halt(
                "confidence",
                "confidence_below_minimum",
                reason,
                "The global policy's global_min_confidence: a decision below it may not trade.",
            )
        )
    return out


def _sleeve_gate(allowed: list[str], request: PolicyValidationRequest) -> list[PolicyDefinition]:
    """No trade in a position whose strategy sleeve is not allowed (a `restricted` no_trade)."""
    sleeves = {p.symbol: p.strategy for p in request.portfolio_state.positions if p.strategy}
    if not sleeves:
        return []
    blocked = sorted(
        {
            trade.symbol
            for trade in request.decision.trades
            if trade.symbol in sleeves and sleeves[trade.symbol] not in allowed
        }
    )
    if not blocked:
        return []
    constraint = {"kind": "restricted", "mode": "no_trade", "symbols": blocked}
    return [
        _synthesized(
            "strategy_sleeves",
            PolicyType.INVESTMENT_MANDATE,
            constraint,
            "The global policy's allowed_strategies: a position in the sleeve of a strategy "
            "not allowed may not trade.",
        )
    ]


def _halt(control: str, violation_type: str, reason: str, description: str) -> PolicyDefinition:
    constraint = {"kind": "trading_halt", "violation_type": violation_type, "reason": reason}
    return _synthesized(control, PolicyType.INVESTMENT_MANDATE, constraint, description)


def _synthesized(
    control: str, policy_type: PolicyType, constraint: Mapping[str, object], description: str
) -> PolicyDefinition:
    return PolicyDefinition.model_validate(
        {
            "policy_name": GLOBAL_POLICY_PREFIX + control,
            "policy_type": policy_type,
            "enforcement_level": EnforcementLevel.STRICT,
            "description": description,
            "rules": {"constraints": [constraint]},
        }
    )
