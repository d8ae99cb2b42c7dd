"""The batch checker's arguments: numbers, finite, plausible as weights, sizes positive.

Each check names the argument and the first offending entry (a `ValueError` the callers
turn into exit code 2 or a 4xx), never a traceback from deep inside the evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.weights.portfolio import MAX_WEIGHT
from models.typing import FloatArray, IntArray

__all__ = ["finite", "numbers", "plausible", "positive_chunk", "thread_count"]


def positive_chunk(size: int) -> int:
    """`size` as a positive int; a ValueError otherwise."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"chunk_size must be a positive integer, not {size!r}")
    return int(size)


def numbers(x: Any, name: str) -> FloatArray:
    """`x` as a float array; a ValueError naming `name` when it holds something else."""
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers: {exc}") from exc


def thread_count(count: int) -> int:
    """`count` as a positive int; a ValueError otherwise."""
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
        raise ValueError(f"threads must be a positive integer, not {count!r}")
    return int(count)


def finite(array: FloatArray, name: str, vectors: IntArray | None = None) -> FloatArray:
    """`array`, or a ValueError naming its first number that is not finite.

    `vectors`: the rows of the whole argument that `array`'s rows are (a chunk's).
    """
    # One pass without a temporary: a sum is finite only if every term is (an overflow to
    # inf sends a finite array down the exact path, which finds nothing and returns).
    if np.isfinite(array.sum()) or np.all(np.isfinite(array)):
        return array
    where = np.argwhere(~np.isfinite(array))[0]
    at = [int(vectors[where[0]]), *where[1:].tolist()] if vectors is not None else where.tolist()
    raise ValueError(f"{name}{at} is {array[tuple(where)]}, not a finite number")


def plausible(W: FloatArray, name: str, vectors: IntArray | None = None) -> float:
    """The largest magnitude in `W` (K, n); a ValueError naming a weight not finite or too big.

    Beyond `MAX_WEIGHT` x NAV in magnitude is not a portfolio weight; `vectors` as for
    `finite`.
    """
    if W.size == 0:
        return 0.0
    high, low = float(W.max()), float(W.min())
    if high <= MAX_WEIGHT and low >= -MAX_WEIGHT:
        return max(high, -low)  # two reductions, no (K, n) temporary: a nan fails both
    finite(W, name, vectors)
    k, i = (int(x) for x in np.argwhere(np.abs(W) > MAX_WEIGHT)[0])
    row = k if vectors is None else int(vectors[k])
    raise ValueError(
        f"{name}[{row}, {i}] is {W[k, i]:.3g} x NAV (limit {MAX_WEIGHT:g} x NAV): not a "
        "portfolio weight"
    )
