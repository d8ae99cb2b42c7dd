"""Package attributes loaded on first use (PEP 562).

For packages whose heavy parts most importers never touch (`engine`, `solvers`: cvxpy and
the solvers load only when used).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, lazy: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module `__getattr__` that imports each name of `lazy` from its module on first use.

    `lazy` maps a name to the module it comes from; the value is stored in `namespace` (the
    package's globals), so later look-ups never call this again.
    """

    def __getattr__(name: str) -> Any:
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
