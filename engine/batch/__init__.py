"""Batch checks: one compiled policy set, many weight vectors at once (docs/batch.md).

Owns the batch checker (`checker`: `BatchChecker`, the weights' units, the pre-trade
portfolio), its result (`result`: `BatchResult`, `RowLabel`), each block kind's rows over a
stack of vectors (`parts`, the `batch` representation of `engine.compile.representations`),
a layout's rows as one program with the verdict (`program`), where it runs (`backend`:
JAX with 64-bit floats when installed, else NumPy) and its chunks on several threads, taken
in order (`pipeline`). Exposes `BatchChecker`, `BatchResult` and `RowLabel`. May import
every stage up to and including `engine.report` (a vector's violations are the
single-request report's own); nothing imports it but the front door.
"""

from engine.batch.checker import BatchChecker
from engine.batch.result import BatchResult, RowLabel

__all__ = ["BatchChecker", "BatchResult", "RowLabel"]
