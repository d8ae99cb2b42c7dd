"""A validation request as the decision log keeps it: named parts, and back.

The parts are chosen so that what repeats between requests is one blob: `universe` (the
state's inline instruments) and `risk` (its risk model and scenarios) change rarely,
`state` (cash, positions, prices, references) and `decision` change every time, `context`
and `options` (mode, adjustment, the other switches) take few values, `lineage` is the
portfolio's chain of ancestors as resolved, and `policy_set` the version of every stored
policy the engine was given (so a replay gives the engine the same set, overrides and
`applicable_policies` included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from api.store import LoggedRequest, StoredPolicy
from models import PolicyValidationRequest, PolicyValidationResponse, PortfolioNode

__all__ = ["PARTS", "ReplayInputs", "logged_request", "replay_inputs"]

PARTS = ("decision", "state", "universe", "risk", "context", "options", "lineage", "policy_set")


def logged_request(
    request: PolicyValidationRequest | Mapping[str, Any],
    response: PolicyValidationResponse,
    *,
    stored: Sequence[StoredPolicy],
    lineage: Sequence[PortfolioNode],
) -> LoggedRequest:
    """What the log keeps of a validation of `request` against the `stored` policies.

    `request` may be given as its JSON values already (`model_dump(mode="json")`); they
    are not changed.
    """
    body = (
        request.model_dump(mode="json")
        if isinstance(request, PolicyValidationRequest)
        else dict(request)
    )
    state = dict(body.pop("portfolio_state"))
    universe = state.pop("instruments")
    risk = {"risk_model": state.pop("risk_model"), "scenarios": state.pop("scenarios")}
    policy_set = {p.definition.policy_name: p.version for p in stored}
    parts = {
        "decision": body.pop("decision"),
        "state": state,
        "universe": universe,
        "risk": risk,
        "context": body.pop("context"),
        "options": body,
        "lineage": [node.model_dump(mode="json") for node in lineage],
        "policy_set": policy_set,
    }
    effective = {n: policy_set[n] for n in response.policies_checked if n in policy_set}
    used = response.reference_data
    return LoggedRequest(
        parts=parts,
        policy_versions=effective,
        global_policy_version=response.global_policy_version,
        reference_data=None if used is None else used.model_dump(mode="json"),
    )


class ReplayInputs:
    """A logged request rebuilt: the request, the lineage and the stored policy versions.

    Registered reference data is pinned to the versions the validation used, so a replay
    reads the same universe and risk model even after newer versions were registered.
    """

    def __init__(self, parts: Mapping[str, Any], reference_data: Mapping[str, Any] | None):
        state = dict(parts["state"])
        state["instruments"] = parts["universe"]
        risk = parts["risk"]
        state["risk_model"] = _pinned(risk["risk_model"], reference_data, "risk_model")
        state["scenarios"] = risk["scenarios"]
        state["universe"] = _pinned(state.get("universe"), reference_data, "universe")
        body = {
            **parts["options"],
            "decision": parts["decision"],
            "portfolio_state": state,
            "context": parts["context"],
        }
        self.request = PolicyValidationRequest.model_validate(body)
        self.lineage = [PortfolioNode.model_validate(n) for n in parts["lineage"]]
        self.policy_set: dict[str, int] = dict(parts["policy_set"])


def _pinned(ref: Any, used: Mapping[str, Any] | None, name: str) -> Any:
    """`ref` (a reference's JSON, or inline data) with the version the validation used."""
    if not isinstance(ref, dict) or ref.get("id") is None or used is None:
        return ref
    version = (used.get(name) or {}).get("version")
    return ref if version is None else {**ref, "version": version}


def replay_inputs(
    parts: Mapping[str, Any], reference_data: Mapping[str, Any] | None
) -> ReplayInputs:
    """The request, lineage and policy versions of a logged validation."""
    return ReplayInputs(parts, reference_data)
