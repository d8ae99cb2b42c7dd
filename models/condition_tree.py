"""The evaluable form of a policy's `when` condition, and the context look-up it uses.

A condition is a small tree of nodes (comparisons, membership tests, `has(...)`, boolean
names, `and`, `or`, `not`) built by `models.condition.parse_condition`; nothing here ever
runs Python's `eval`. Evaluation is three-valued (Kleene logic): a test of a key that the
context lacks is *unknown*, `false and unknown` is false, `true or unknown` is true. The
caller (`Condition.evaluate`) turns a missing key into an error unless the condition tests
it with `has(...)` and the answer does not depend on it. A value of the wrong type (text
where the condition compares a number) is always an error, never "false".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MISSING",
    "And",
    "Or",
    "Compare",
    "ConditionTypeError",
    "Has",
    "Literal",
    "Member",
    "Node",
    "Not",
    "Path",
    "Truth",
    "describe_value",
    "kind_of",
    "lookup",
]

Literal = str | int | float | bool | None
"""A literal of the condition language: text, number, true/false or null."""

Path = tuple[str, ...]
"""A context name split at its dots: `market.vix` is `("market", "vix")`."""

MISSING: Any = object()
"""What `lookup` returns for a name the context does not hold."""


class ConditionTypeError(ValueError):
    """A context value has a type the condition cannot compare it with.

    Parameters
    ----------
    path
        The context name whose value is at fault.
    message
        What was found and what the condition expected.
    """

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{'.'.join(path)}: {message}")
        self.path = path
        self.message = message


def describe_value(value: Any) -> str:
    """A value as a compliance officer reads it: `the number 30`, `the text 'high'`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value:g}" if isinstance(value, float) else f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def lookup(context: Mapping[str, Any], path: Path) -> Any:
    """The value at `path` in `context`, or `MISSING`; dotted names walk nested objects."""
    value: Any = context
    for depth, part in enumerate(path):
        if not isinstance(value, Mapping):
            raise ConditionTypeError(
                path[:depth], f"is {describe_value(value)}, not an object, so it has no {part!r}"
            )
        if part not in value:
            return MISSING
        value = value[part]
    return value


def kind_of(value: Any) -> str:
    """The comparable type of a scalar: number, text or boolean (`bool` is not a number)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "other"


def _scalar(path: Path, value: Any) -> Any:
    if isinstance(value, Mapping | list | tuple):
        raise ConditionTypeError(path, f"is {describe_value(value)}, not a single value")
    return value


class Node(ABC):
    """A node of the condition tree."""

    @abstractmethod
    def evaluate(self, context: Mapping[str, Any], missing: set[Path]) -> bool | None:
        """True, False, or None when the answer needs a key in `missing` (added to it)."""

    @abstractmethod
    def names(self) -> set[Path]:
        """Every context name the node reads."""

    def guarded(self) -> set[Path]:
        """The names the node tests with `has(...)`."""
        return set()


@dataclass(frozen=True)
class Compare(Node):
    """`name OP literal`; ordering operators take numbers only (checked when parsed)."""

    path: Path
    op: str
    literal: Literal

    def evaluate(self, context: Mapping[str, Any], missing: set[Path]) -> bool | None:
        value = lookup(context, self.path)
        if value is MISSING:
            missing.add(self.path)
            return None
        value = _scalar(self.path, value)
        if self.op in ("==", "!="):
            equal = _equal(self.path, value, self.literal)
            return equal if self.op == "==" else not equal
        if kind_of(value) != "number":
            raise ConditionTypeError(
                self.path,
                f"is {describe_value(value)}; `{self.op}` compares it with "
                f"{describe_value(self.literal)}, so it must be a number",
            )
        assert isinstance(self.literal, int | float)
        return bool(
            {
                "<": value < self.literal,
                "<=": value <= self.literal,
                ">": value > self.literal,
                ">=": value >= self.literal,
            }[self.op]
        )

    def names(self) -> set[Path]:
        return {self.path}


def _equal(path: Path, value: Any, literal: Literal) -> bool:
    """`value == literal`, where a null on either side simply compares unequal to the rest."""
    if value is None or literal is None:
        return value is None and literal is None
    if kind_of(value) != kind_of(literal):
        raise ConditionTypeError(
            path,
            f"is {describe_value(value)}, which cannot be compared with {describe_value(literal)}",
        )
    return bool(value == literal)


@dataclass(frozen=True)
class Member(Node):
    """`name in (literals)`, or `not in` when `negated`."""

    path: Path
    literals: tuple[Literal, ...]
    negated: bool = False

    def evaluate(self, context: Mapping[str, Any], missing: set[Path]) -> bool | None:
        value = lookup(context, self.path)
        if value is MISSING:
            missing.add(self.path)
            return None
        value = _scalar(self.path, value)
        if value is not None and kind_of(value) not in {
            kind_of(x) for x in self.literals if x is not None
        }:
            listed = ", ".join(describe_value(x) for x in self.literals)
            raise ConditionTypeError(
                self.path, f"is {describe_value(value)}, which cannot be compared with {listed}"
            )
        found = any(_equal(self.path, value, x) for x in self.literals)
        return found != self.negated

    def names(self) -> set[Path]:
        return {self.path}


@dataclass(frozen=True)
class Has(Node):
    """`has(name)`: the context holds the name (a null value counts as present)."""

    path: Path

    def evaluate(self, context: Mapping[str, Any], missing: set[Path]) -> bool | None:
        return lookup(context, self.path) is not MISSING

    def names(self) -> set[Path]:
        return {self.path}

    def guarded(self) -> set[Path]:
        return {self.path}


@dataclass(frozen=True)
class Truth(Node):
    """A bare name: the context value must be true or false."""

    path: Path

    def evaluate(self, context: Mapping[str, Any], missing: set[Path]) -> bool | None:
        value = lookup(context, self.path)
        if value is MISSING:
            missing.add(self.path)
            return None
        if not isinstance(value, bool):
            raise ConditionTypeError(
                self.path,
                f"is {describe_value(value)}; a name on its own must be true or false "
                "(compare it instead, e.g. `name == 'value'`)",
            )
        return value

    def names(self) -> set[Path]:
        return {self.path}


@dataclass(frozen=True)
class Not(Node):
    """`not item`; not unknown is unknown."""

    item: Node

    def evaluate(self, context: Mapping[str, Any], missing: set[Path]) -> bool | None:
        value = self.item.evaluate(context, missing)
        return None if value is None else not value

    def names(self) -> set[Path]:
        return self.item.names()

    def guarded(self) -> set[Path]:
        return self.item.guarded()


@dataclass(frozen=True)
class And(Node):
    """`a and b and ...`: false if any is false, true if all are true, else unknown.

    Every item is evaluated (no short cut), so a type error never hides behind the order.
    """

    items: tuple[Node, ...]

    def evaluate(self, context: Mapping[str, Any], missing: set[Path]) -> bool | None:
        values = [item.evaluate(context, missing) for item in self.items]
        if False in values:
            return False
        return True if all(v is True for v in values) else None

    def names(self) -> set[Path]:
        return set().union(*(item.names() for item in self.items))

    def guarded(self) -> set[Path]:
        return set().union(*(item.guarded() for item in self.items))


@dataclass(frozen=True)
class Or(Node):
    """`a or b or ...`: true if any is true, false if all are false, else unknown."""

    items: tuple[Node, ...]

    def evaluate(self, context: Mapping[str, Any], missing: set[Path]) -> bool | None:
        values = [item.evaluate(context, missing) for item in self.items]
        if True in values:
            return True
        return False if all(v is False for v in values) else None

    def names(self) -> set[Path]:
        return set().union(*(item.names() for item in self.items))

    def guarded(self) -> set[Path]:
        return set().union(*(item.guarded() for item in self.items))
