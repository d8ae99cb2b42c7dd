"""Conditional policies: whether a policy's `when` holds for the request's context.

The language and its evaluation rules live in `models.condition`; here a failed evaluation
becomes an input error that names the policy, its condition and the context key, so that a
request can never silently skip (or apply) a policy it did not send the facts for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import PolicyResolutionError
from models import PolicyDefinition
from models.condition import ConditionTypeError, MissingContextError, parse_condition

__all__ = ["policy_applies"]


def policy_applies(policy: PolicyDefinition, context: Mapping[str, Any]) -> bool:
    """True when `policy` has no condition or its condition holds for `context`.

    Raises `PolicyResolutionError` (field: the context key) when the condition needs a key
    the context lacks, or compares a context value of the wrong type.
    """
    if policy.when is None:
        return True
    condition = parse_condition(policy.when)
    name, when = policy.policy_name, policy.when
    try:
        return condition.applies(context)
    except MissingContextError as exc:
        keys = ", ".join(f"context.{n}" for n in exc.names)
        if exc.guarded:
            message = (
                f"policy {name!r} applies when `{when}`; with {keys} absent the condition "
                "can be neither true nor false. Send the key, or rewrite the condition so "
                "that has(...) decides it"
            )
        else:
            optional = ", ".join(f"has({n})" for n in exc.names)
            message = (
                f"policy {name!r} applies when `{when}`, which needs {keys}; the request's "
                f"context lacks it. Send it, or make it optional with {optional}"
            )
        raise PolicyResolutionError(f"context.{exc.names[0]}", message) from None
    except ConditionTypeError as exc:
        key = ".".join(exc.path)
        raise PolicyResolutionError(
            f"context.{key}",
            f"policy {name!r} applies when `{when}`, but context.{key} {exc.message}",
        ) from None
