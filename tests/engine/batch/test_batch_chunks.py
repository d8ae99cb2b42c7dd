"""How a check runs through its chunks: threads, the screen, per-chunk weight checks."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from engine.batch import BatchChecker
from engine.batch.backend import backend as backend_named
from engine.batch.parts import Part
from engine.batch.pipeline import AHEAD, in_order
from engine.batch.program import _screen
from tests.builders import instrument, policy
from tests.engine.batch.helpers import assert_same

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE"]
CAPS = [
    policy("name-cap", {"kind": "weight_bounds", "max": 0.3}),
    policy("sector-cap", {"kind": "group_limit", "attribute": "sector", "max": 0.5}),
    policy("cash-floor", {"kind": "cash", "min": 0.02}),
    policy("turnover", {"kind": "turnover", "max": 0.4}),
]


def _checker(**options: Any) -> BatchChecker:
    return BatchChecker(CAPS, [instrument(s) for s in SYMBOLS], **options)


def _mixed(rng: np.random.Generator) -> np.ndarray:
    """Runs of breaching vectors, then of compliant ones, then breaching again: chunks that
    are crowded and chunks that are clear, each after the other kind."""
    breaching = rng.dirichlet(np.ones(6), size=300)[:, :5]
    compliant = np.full((300, 5), 0.18) + rng.uniform(-0.01, 0.01, (300, 5))
    return np.vstack([breaching[:150], compliant, breaching[150:]])


@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_threads_and_crowded_chunks_give_the_answers_of_one_thread(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    W, w0 = _mixed(rng), np.full(5, 0.18)
    reference = _checker(backend=backend, threads=1)
    # Never whole chunks: every chunk screened, its breaching vectors evaluated alone.
    monkeypatch.setattr("engine.batch.program.DENSE_BREACHES", 1.0)
    alone = reference.check(W, pre_trade=w0, chunk_size=64)
    monkeypatch.undo()
    assert 0 < alone.is_compliant.sum() < len(W)
    for threads in (1, 3):
        seen: list[int] = []
        result = _checker(backend=backend, threads=threads).check(
            W, pre_trade=w0, chunk_size=64, progress=seen.append
        )
        assert_same(alone, result)
        assert np.array_equal(alone.rechecked, result.rechecked)
        assert seen == [*range(64, len(W), 64), len(W)]  # in order, once per chunk


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ((7, 2), np.nan, "weights[7, 2] is nan, not a finite number"),
        ((8, 1), np.inf, "weights[8, 1] is inf, not a finite number"),
        ((9, 4), -2e4, "weights[9, 4] is -2e+04 x NAV (limit 10000 x NAV)"),
    ],
)
def test_a_bad_weight_in_a_later_chunk_is_named_by_its_own_row(
    threads: int, where: tuple[int, int], value: float, message: str
) -> None:
    W = np.full((10, 5), 0.1)
    W[where] = value
    with pytest.raises(ValueError, match=re.escape(message)):
        _checker(threads=threads).check(W, chunk_size=3)
    with pytest.raises(ValueError, match=re.escape(message)):
        _checker(threads=threads).values(W, chunk_size=3)


def test_threads_must_be_a_positive_integer() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            _checker(threads=bad)
    assert _checker(backend="jax").threads >= 1
    assert _checker(backend="numpy").threads == 1  # its BLAS products use the cores already
    assert _checker(backend="numpy", threads=3).threads == 3


@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_a_value_that_is_not_finite_is_never_screened_clear(backend: str) -> None:
    # XLA's maximum over a long row may drop a nan (it does at 2,048 x 500 on CPU): the
    # screen must not read a vector with a nan or an infinite value as clear.
    on = backend_named(backend)  # type: ignore[arg-type]
    K, n = 2048, 500

    def evaluate(ops: Any, data: tuple[Any, ...], W: Any) -> Any:
        return W - 1.0  # every excess far below its limit of 0, but what W holds

    part = Part(n, (), evaluate)
    statics = ((np.zeros(n), np.ones(n)),)
    W = np.zeros((K, n))
    W[0, 3], W[1, n - 1], W[2, 0], W[3, 7] = np.nan, np.inf, -np.inf, np.nan
    screen = on.compile(lambda data, st, W, band: _screen(on.ops, [part], data, st, W, band))
    clear = np.asarray(screen(((),), on.put(statics), W, 1e-11))
    assert clear.tolist()[:4] == [False] * 4
    assert clear[4:].all()


def test_chunks_come_back_in_order_and_are_taken_as_they_are_consumed() -> None:
    taken: list[int] = []

    def task(j: int) -> Callable[[], int]:
        taken.append(j)

        def run() -> int:
            time.sleep(0.002 * (j % 3))  # later tasks may finish first
            return j

        return run

    results = in_order((task(j) for j in range(20)), threads=2)
    assert next(results) == 0
    assert len(taken) <= AHEAD * 2 + 1  # not every task queued at once
    assert list(results) == list(range(1, 20))


def test_a_failing_chunk_raises_where_it_is_consumed_and_stops_the_rest() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def task(j: int) -> Callable[[], int]:
        def run() -> int:
            with lock:
                started.append(j)
            if j == 3:
                raise ValueError("chunk 3")
            return j

        return run

    got: list[int] = []
    with pytest.raises(ValueError, match="chunk 3"):
        for value in in_order((task(j) for j in range(100)), threads=2):
            got.append(value)
    assert got == [0, 1, 2]
    assert len(started) < 100
