"""The constraint-kind interface and the registry every kind registers in."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from engine.compile.context import IGNORED, CompileContext
from engine.compile.rows import RowSet
from models import Bounds
from models.contextual import concrete

__all__ = ["REGISTRY", "Kind", "bound_of", "register", "select_where"]


class Kind(ABC):
    """One constraint kind: its name and how it becomes rows over a request's universe."""

    name: ClassVar[str]

    @abstractmethod
    def compile(self, spec: Any, ctx: CompileContext) -> list[RowSet]:
        """The row sets of `spec` for the request in `ctx` (possibly none)."""


REGISTRY: dict[str, Kind] = {}


def register(cls: type[Kind]) -> type[Kind]:
    """Class decorator: add the kind to the registry under its `name`."""
    if cls.name in REGISTRY:
        raise ValueError(f"constraint kind {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def _matches(value: Any, allowed: list[Any]) -> bool:
    return any(value == a or str(value) == str(a) for a in allowed)


def select_where(
    ctx: CompileContext, where: dict[str, list[Any]], missing: Any, symbols: tuple[str, ...]
) -> list[str]:
    """The `symbols` whose attributes match every condition of `where`."""
    chosen = []
    for symbol in symbols:
        keep = True
        for attribute, allowed in where.items():
            value = ctx.attribute(symbol, attribute, missing)
            if value is IGNORED or not _matches(value, allowed):
                keep = False
                break
        if keep:
            chosen.append(symbol)
    return chosen


def bound_of(item: Bounds | None, spec: Any, bound: str) -> float | None:
    """A per-symbol or per-group item's own `bound` where it gives one, else the spec's."""
    own = getattr(item, bound) if item is not None else None
    chosen = own if own is not None else getattr(spec, bound)
    return None if chosen is None else concrete(chosen)
