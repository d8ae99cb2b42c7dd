"""Per-context limits: turn a policy's contextual numbers into the ones a request chooses.

One generic walk over the policy model replaces every `ContextualValue` (wherever a
constraint kind accepts one) by the number its `by` key picks in the request's context, and
re-validates the result, so a resolved policy is a plain policy: every kind compiles it as
if the numbers had been written in. Kinds never see the contextual form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.errors import PolicyResolutionError
from models import PolicyDefinition
from models.condition_tree import MISSING, ConditionTypeError, describe_value, lookup
from models.contextual import ContextualValue
from models.validation import ContextChoice

__all__ = ["ContextualResolution", "resolve_limits"]

_Choose = Callable[[ContextualValue[Any], str], float]


@dataclass(frozen=True)
class ContextualResolution:
    """A policy with concrete limits, and which context value chose each of them."""

    policy: PolicyDefinition
    choices: list[ContextChoice]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _walk(value: Any, path: str, choose: _Choose) -> tuple[Any, bool]:
    """`value` with every contextual number chosen, and whether anything changed.

    Unchanged parts are returned as they are (the policy object itself when it holds no
    contextual number); changed models come back as plain data to be re-validated.
    """
    if isinstance(value, ContextualValue):
        return choose(value, path), True
    items: list[tuple[Any, Any, str]]
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        items = [(name, getattr(value, name), _join(path, name)) for name in fields]
    elif isinstance(value, Mapping):
        items = [(key, item, _join(path, str(key))) for key, item in value.items()]
    elif isinstance(value, list | tuple):
        items = [(k, item, f"{path}[{k}]") for k, item in enumerate(value)]
    else:
        return value, False
    walked = [(key, *_walk(item, where, choose)) for key, item, where in items]
    if not any(changed for _, _, changed in walked):
        return value, False
    if isinstance(value, list | tuple):
        return [item for _, item, _ in walked], True
    return {key: item for key, item, _ in walked}, True


def _context_key(value: Any) -> str | None:
    """How a context value is looked up in `values`: text as is, true/false, whole numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return None


class _Chooser:
    """Picks numbers for one policy and one context, recording each choice."""

    def __init__(self, policy_name: str, context: Mapping[str, Any]) -> None:
        self.policy_name = policy_name
        self.context = context
        self.choices: list[ContextChoice] = []

    def _error(self, path: str, message: str) -> PolicyResolutionError:
        return PolicyResolutionError(
            f"policies[{self.policy_name}].{path}", f"policy {self.policy_name!r}: {message}"
        )

    def __call__(self, contextual: ContextualValue[Any], path: str) -> float:
        by = contextual.by
        try:
            raw = lookup(self.context, tuple(by.split(".")))
        except ConditionTypeError as exc:
            raise self._error(
                path,
                f"{path} is set by context.{by}, but context.{'.'.join(exc.path)} {exc.message}",
            ) from None
        listed = ", ".join(contextual.values)
        if raw is MISSING:
            if contextual.default is None:
                raise self._error(
                    path,
                    f"{path} is set by context.{by} ({listed}), which the request's context "
                    f"lacks; send context.{by} or give the limit a default",
                )
            return self._chosen(path, by, None, float(contextual.default), from_default=True)
        key = _context_key(raw)
        if key is None:
            raise self._error(
                path,
                f"{path} is set by context.{by}, which is {describe_value(raw)}; it must be a "
                f"text, a whole number or true/false naming one of {listed}",
            )
        if key in contextual.values:
            number = float(contextual.values[key])
            return self._chosen(path, by, key, number, from_default=False)
        if contextual.default is None:
            raise self._error(
                path,
                f"{path} has no value for context.{by} = {key!r} (it lists {listed}) and no "
                "default",
            )
        return self._chosen(path, by, key, float(contextual.default), from_default=True)

    def _chosen(
        self, path: str, by: str, key: str | None, number: float, *, from_default: bool
    ) -> float:
        self.choices.append(
            ContextChoice(
                field=path, by=by, context_value=key, value=number, from_default=from_default
            )
        )
        return number


def _loc(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def resolve_limits(policy: PolicyDefinition, context: Mapping[str, Any]) -> ContextualResolution:
    """`policy` with every per-context number replaced by the one `context` chooses.

    Raises `PolicyResolutionError` naming the policy, the field and the context key when a
    key is missing (and the number has no default), holds a value that `values` does not
    list (and there is no default), or when the chosen numbers break the policy's own rules
    (a chosen min above a chosen max).
    """
    chooser = _Chooser(policy.policy_name, context)
    data, changed = _walk(policy, "", chooser)
    if not changed:
        return ContextualResolution(policy, [])
    try:
        resolved = PolicyDefinition.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = _loc(tuple(first["loc"]))
        chosen = "; ".join(f"{c.field} = {c.value:g}" for c in chooser.choices)
        raise PolicyResolutionError(
            f"policies[{policy.policy_name}].{where}".rstrip("."),
            f"policy {policy.policy_name!r} with the limits this context chooses ({chosen}) "
            f"is invalid: {first['msg']}",
        ) from None
    return ContextualResolution(resolved, chooser.choices)
