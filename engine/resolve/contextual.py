"""Per-context limits: turn a policy's contextual numbers into the ones a request chooses.

One generic walk over the policy model replaces every `ContextualValue` (wherever a
constraint kind accepts one) by the number its `by` key picks in the request's context, and
re-validates the result, so a resolved policy is a plain policy: every kind compiles it as
if the numbers had been written in. Kinds never see the contextual form.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
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


def _mentions_contextual(annotation: Any, seen: set[type]) -> bool:
    """Whether values of `annotation` can hold a `ContextualValue`, at any depth."""
    if isinstance(annotation, type):
        if issubclass(annotation, ContextualValue):
            return True
        if issubclass(annotation, BaseModel):
            if annotation in seen:
                return False
            seen.add(annotation)
            return any(
                _mentions_contextual(info.annotation, seen)
                for info in annotation.model_fields.values()
            )
    return any(_mentions_contextual(arg, seen) for arg in typing.get_args(annotation))


@cache
def _contextual_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of `model` that can hold a contextual number (worked out once per class)."""
    return tuple(
        name
        for name, info in model.model_fields.items()
        if _mentions_contextual(info.annotation, set())
    )


def _holds_contextual(value: Any) -> bool:
    """Whether `value` holds a contextual number: the quick test every request runs."""
    if value is None or type(value) is float:  # the common leaves, first
        return False
    if isinstance(value, BaseModel):
        if isinstance(value, ContextualValue):
            return True
        for name in _contextual_fields(type(value)):
            if _holds_contextual(getattr(value, name)):
                return True
        return False
    if isinstance(value, dict):
        return any(_holds_contextual(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_contextual(item) for item in value)
    return False


def _walk(value: Any, path: tuple[str | int, ...], choose: _Choose) -> tuple[Any, bool]:
    """`value` with every contextual number chosen, and whether anything changed.

    Only fields whose type can hold a contextual number are visited, so a plain policy
    costs a few attribute reads (this runs on every request). Unchanged parts are returned
    as they are (the policy object itself when it holds no contextual number); changed
    models come back as plain data to be re-validated.
    """
    if isinstance(value, BaseModel):
        if isinstance(value, ContextualValue):
            return choose(value, _path(path)), True
        changes = {}
        for name in _contextual_fields(type(value)):
            item, changed = _walk(getattr(value, name), (*path, name), choose)
            if changed:
                changes[name] = item
        if not changes:
            return value, False
        fields = type(value).model_fields
        return {
            name: changes[name] if name in changes else getattr(value, name) for name in fields
        }, True
    if isinstance(value, dict):
        walked = {key: _walk(item, (*path, str(key)), choose) for key, item in value.items()}
        if not any(changed for _, changed in walked.values()):
            return value, False
        return {key: item for key, (item, _) in walked.items()}, True
    if isinstance(value, list):
        items = [_walk(item, (*path, k), choose) for k, item in enumerate(value)]
        if not any(changed for _, changed in items):
            return value, False
        return [item for item, _ in items], True
    return value, False


def _path(parts: tuple[str | int, ...]) -> str:
    """`rules.constraints[0].max` from `("rules", "constraints", 0, "max")`."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


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
    if not _holds_contextual(policy):
        return ContextualResolution(policy, [])
    chooser = _Chooser(policy.policy_name, context)
    data, _ = _walk(policy, (), chooser)
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
