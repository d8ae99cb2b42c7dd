"""Where the batch's arithmetic runs: JAX (`jit`, 64-bit) when installed, else NumPy.

Both backends run the same functions (`engine.batch.parts`, `engine.batch.program`) over an
array module: NumPy directly, JAX traced once per program and chunk shape under `jax.jit`
with `jax_enable_x64` on, so every number is a float64 as in the single-request checker.
float32 would move a verdict by up to ~1e-7, a hundred times the verdict's tolerance.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from engine.batch.parts import Array, Ops

__all__ = ["Backend", "BackendName", "backend", "jax_available"]

BackendName = Literal["auto", "jax", "numpy"]


def jax_available() -> bool:
    """True when JAX can be imported (the `batch` extra), without importing it."""
    return importlib.util.find_spec("jax") is not None


def _numpy_top_excess(values: Array, limits: Array, sign: Array) -> Array:
    # One temporary, modified in place (NumPy pays for every (K, rows) temporary); NumPy's
    # maximum keeps a nan, and a sum is finite only if every term is (-inf included).
    excess = values - limits
    excess *= sign
    top = excess.max(axis=1)
    top[~np.isfinite(excess.sum(axis=1))] = np.inf
    return top


def _numpy_segment_sum(values: Array, data: tuple[Array, ...], rows: int) -> Array:
    starts, nonempty = data[3], data[4]
    out = np.zeros((values.shape[0], rows))
    if len(starts):
        out[:, nonempty] = np.add.reduceat(values, starts, axis=1)
    return out


class Backend:
    """An array module, how to put data on it, and how to compile a function over it."""

    def __init__(
        self,
        name: str,
        ops: Ops,
        put: Callable[[Any], Any],
        compile: Callable[[Callable[..., Any], tuple[int, ...]], Callable[..., Any]],
    ) -> None:
        self.name = name
        self.ops = ops
        self.put = put
        self._compile = compile

    def compile(
        self, fn: Callable[..., Any], static_argnums: tuple[int, ...] = ()
    ) -> Callable[..., Any]:
        """`fn` compiled for this backend (`jax.jit`; NumPy runs it as it is)."""
        return self._compile(fn, static_argnums)


def _numpy() -> Backend:
    return Backend(
        "numpy",
        Ops(np, _numpy_segment_sum, _numpy_top_excess),
        put=lambda tree: tree,
        compile=lambda fn, static_argnums: fn,
    )


def _jax() -> Backend:
    import jax
    import jax.numpy as jnp

    # Verdicts are exact to 1e-9: float64 throughout, or not at all.
    jax.config.update("jax_enable_x64", True)  # type: ignore[no-untyped-call]
    if jnp.zeros(1).dtype != jnp.float64:  # pragma: no cover - a JAX that ignores the flag
        raise RuntimeError("JAX did not enable 64-bit floats; use backend='numpy'")

    def segment_sum(values: Array, data: tuple[Array, ...], rows: int) -> Array:
        row_ids = data[2]
        summed = jax.ops.segment_sum(values.T, row_ids, num_segments=rows, indices_are_sorted=True)
        return summed.T

    def put(tree: Any) -> Any:
        return jax.tree_util.tree_map(jnp.asarray, tree)

    def compile(fn: Callable[..., Any], static_argnums: tuple[int, ...]) -> Callable[..., Any]:
        return jax.jit(fn, static_argnums=static_argnums)

    return Backend("jax", Ops(jnp, segment_sum), put=put, compile=compile)


def backend(name: BackendName = "auto") -> Backend:
    """The backend called `name`; "auto": JAX when installed, else NumPy."""
    if name == "numpy" or (name == "auto" and not jax_available()):
        return _numpy()
    if name in ("jax", "auto"):
        if not jax_available():
            raise ValueError(
                "backend 'jax' needs JAX: install the batch extra (pip install '.[batch]') "
                "or use backend='numpy'"
            )
        return _jax()
    raise ValueError(f"backend must be 'auto', 'jax' or 'numpy', not {name!r}")
