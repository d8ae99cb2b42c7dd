"""The batch checker's own contract: units, shapes, chunks, fallbacks, backends."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from engine.batch import BatchChecker
from engine.batch import backend as backends
from engine.tolerances import TOLERANCE
from tests.builders import instrument, policy
from tests.engine.batch.helpers import assert_same

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE"]
INSTRUMENTS = [instrument(s) for s in SYMBOLS]
CAPS = [
    policy("name-cap", {"kind": "weight_bounds", "max": 0.3}),
    policy("sector-cap", {"kind": "group_limit", "attribute": "sector", "max": 0.5}),
    policy("cash-floor", {"kind": "cash", "min": 0.02}),
    policy("turnover", {"kind": "turnover", "max": 0.4}),
]
EXPRESSION = policy("custom", {"kind": "expression", "expr": "sum(abs(w)) <= 0.7"})


def _checker(policies: list[dict[str, Any]] = CAPS, **options: Any) -> BatchChecker:
    return BatchChecker(policies, INSTRUMENTS, **options)


def _random(rng: np.random.Generator, k: int) -> np.ndarray:
    return rng.dirichlet(np.ones(6), size=k)[:, :5]  # the sixth share is cash


def test_columns_are_the_sorted_symbols_and_rows_are_labelled() -> None:
    checker = _checker()
    assert checker.symbols == tuple(SYMBOLS)
    result = checker.check(np.full((2, 5), 0.1))
    assert result.breaches.shape == (2, len(checker.labels))
    assert {label.policy_name for label in checker.labels} == {p["policy_name"] for p in CAPS}
    caps = [label.subject for label in checker.labels if label.policy_name == "name-cap"]
    assert caps == SYMBOLS


def test_chunks_and_backends_give_identical_answers() -> None:
    rng = np.random.default_rng(42)
    W = _random(rng, 700)
    w0 = _random(rng, 1)[0]
    answers = [
        _checker(backend=name).check(W, pre_trade=w0, chunk_size=chunk)
        for name in ("jax", "numpy")
        for chunk in (64, 700, 1000)
    ]
    assert not answers[0].is_compliant.all() and answers[0].is_compliant.any()
    for other in answers[1:]:
        assert_same(answers[0], other)


@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_sparse_and_dense_breaches_give_identical_answers(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A chunk whose vectors mostly comply is answered from the per-vector flags, its rows
    # evaluated for the breaching vectors alone; a chunk that mostly breaches is evaluated
    # whole. Both must give the same breaches, values and verdicts as the dense path.
    rng = np.random.default_rng(7)
    compliant = np.full((600, 5), 0.18) + rng.uniform(-0.01, 0.01, (600, 5))
    W = np.vstack([compliant, _random(rng, 40)])[rng.permutation(640)]
    w0 = np.full(5, 0.18)
    answers = []
    for dense in (0.0, 1.0):  # 0: always the whole chunk; 1: always the breaching subset
        monkeypatch.setattr("engine.batch.program.DENSE_BREACHES", dense)
        answers.append(_checker(backend=backend).check(W, pre_trade=w0, chunk_size=256))
    breaching = np.unique(answers[0].breach_vector)
    assert 0 < len(breaching) < 0.25 * len(W)  # the subset path did run on a sparse chunk
    assert not answers[0].is_compliant.all()
    assert_same(answers[0], answers[1])


@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_values_are_every_vectors_own_rows_whether_it_breaches_or_not(backend: str) -> None:
    # `values` needs the rows of compliant vectors too, which `check` skips.
    rng = np.random.default_rng(11)
    W = np.full((50, 5), 0.18) + rng.uniform(-0.01, 0.01, (50, 5))
    W[17] = [0.5, 0.1, 0.1, 0.1, 0.1]  # the one vector over the name cap
    checker = _checker(backend=backend)
    w0 = np.full(5, 0.18)
    assert np.flatnonzero(~checker.check(W, pre_trade=w0).is_compliant).tolist() == [17]
    together = checker.values(W, pre_trade=w0, chunk_size=16)
    one_by_one = np.vstack([checker.values(W[[k]], pre_trade=w0) for k in range(len(W))])
    assert np.allclose(together, one_by_one, rtol=0, atol=1e-15)
    name_caps = [j for j, label in enumerate(checker.labels) if label.policy_name == "name-cap"]
    assert np.allclose(together[:, name_caps], W, rtol=0, atol=1e-15)


def test_cash_given_rescales_each_vector_to_its_nav() -> None:
    checker = _checker()
    W = np.array([[10.0, 10.0, 20.0, 5.0, 0.0]])
    as_amounts = checker.check(W, cash=5.0)
    as_weights = checker.check(W / 50.0)
    assert_same(as_amounts, as_weights)
    with pytest.raises(ValueError, match=r"portfolio 0: NAV .* must be > 0"):
        checker.check(W, cash=-45.0)


def test_a_pre_trade_per_vector_is_checked_against_its_own() -> None:
    rng = np.random.default_rng(7)
    checker = _checker()
    W, pre = _random(rng, 6), _random(rng, 2)
    each = np.repeat(pre, 3, axis=0)
    together = checker.check(W, pre_trade=each)
    for j in range(2):
        alone = checker.check(W[3 * j : 3 * j + 3], pre_trade=pre[j])
        rows = together.breaches[3 * j : 3 * j + 3]
        assert np.array_equal(rows, alone.breaches)
        assert np.array_equal(together.is_compliant[3 * j : 3 * j + 3], alone.is_compliant)
        assert together.violations(3 * j) == alone.violations(0)


def test_without_pre_trade_the_portfolio_starts_from_cash() -> None:
    checker = _checker()
    result = checker.check(np.array([[0.25, 0.25, 0.0, 0.0, 0.0]]))
    turnover = [v for v in result.violations(0) if v.policy_name == "turnover"]
    assert turnover and turnover[0].pre_trade == 0.0 and turnover[0].observed == 0.5


def test_expressions_fall_back_one_vector_at_a_time_correctly() -> None:
    policies = [*CAPS[:3], EXPRESSION]
    checker = _checker(policies)
    assert [label.policy_name for label in checker.fallbacks] == ["custom"]
    W = np.array([[0.2, 0.2, 0.2, 0.2, 0.0], [0.1, 0.1, 0.1, 0.1, 0.1]])
    result = checker.check(W)
    assert [v.policy_name for v in result.violations(0)] == ["custom"]
    assert not result.is_compliant[0] and result.is_compliant[1]
    numpy = _checker(policies, backend="numpy").check(W)
    assert_same(result, numpy)


def test_a_vector_at_the_verdicts_threshold_is_answered_by_the_single_checker() -> None:
    checker = _checker([policy("name-cap", {"kind": "weight_bounds", "max": 0.3})])
    at, above = 0.3 + TOLERANCE, 0.3 + 2 * TOLERANCE
    result = checker.check(np.array([[at, 0, 0, 0, 0], [above, 0, 0, 0, 0], [0.1, 0, 0, 0, 0]]))
    assert result.rechecked.tolist() == [0]
    # The single-request checker's own verdict: 0.3 + 1e-9 - 0.3 is 1.0000000000287557e-09.
    assert result.is_compliant.tolist() == [not (at - 0.3 > TOLERANCE), False, True]


def test_the_numpy_path_serves_when_jax_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "jax_available", lambda: False)
    assert _checker().backend == "numpy"
    with pytest.raises(ValueError, match="needs JAX"):
        _checker(backend="jax")


def test_jax_runs_in_64_bits() -> None:
    import jax.numpy as jnp

    assert _checker(backend="jax").backend == "jax"
    assert jnp.asarray(np.zeros(1)).dtype == jnp.float64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"weights": np.zeros(5)}, "weights must be a (K, n) array with n = 5 columns"),
        ({"weights": np.zeros((3, 4))}, "got shape (3, 4)"),
        ({"weights": np.zeros((2, 5, 1))}, "got shape (2, 5, 1)"),
        ({"weights": [[0.1, 0.2], [0.3]]}, "weights must be an array of numbers"),
        ({"weights": np.full((1, 5), np.nan)}, "weights[0, 0] is nan, not a finite number"),
        ({"weights": np.full((1, 5), 1e5)}, "weights[0, 0] is 1e+05 x NAV"),
        ({"weights": np.zeros((2, 5)), "cash": np.ones(3)}, "cash must be one number or a (K,)"),
        ({"weights": np.zeros((2, 5)), "pre_trade": np.zeros(4)}, "pre_trade must be an (n,)"),
        ({"weights": np.zeros((2, 5)), "pre_trade": np.zeros((3, 5))}, "got shape (3, 5)"),
        ({"weights": np.zeros((2, 5)), "chunk_size": 0}, "chunk_size must be a positive"),
    ],
)
def test_bad_input_is_a_value_error_naming_it(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _checker(backend="numpy").check(**args)


def test_violations_index_is_checked() -> None:
    result = _checker().check(np.zeros((2, 5)))
    with pytest.raises(IndexError, match="the batch holds 2"):
        result.violations(2)


def test_values_are_the_single_request_checkers_values() -> None:
    """`BatchChecker.values` gives every row's value, in `labels` order, with its limits."""
    from engine.check.checker import check as single_check

    rng = np.random.default_rng(8)
    symbols = ["AAA", "BBB", "CCC", "DDD"]
    instruments = [{"symbol": s, "price": 10.0, "sector": "X" if s < "C" else "Y"} for s in symbols]
    policies = [
        {
            "policy_name": "caps",
            "policy_type": "POSITION_LIMIT",
            "rules": {
                "constraints": [
                    {"kind": "weight_bounds", "max": 0.3},
                    {"kind": "group_limit", "attribute": "sector", "max": 0.5},
                    {"kind": "cvar", "confidence": 0.5, "max": 0.01},
                ]
            },
        }
    ]
    scenarios = {"symbols": symbols, "returns": rng.normal(0, 0.02, (6, 4)).tolist()}
    checker = BatchChecker(policies, instruments, scenarios=scenarios, backend="numpy")
    W = rng.uniform(0, 0.4, (5, 4))
    values = checker.values(W)
    assert values.shape == (5, len(checker.labels)) == (5, len(checker.limits))
    assert set(checker.senses) == {"le"}
    for k in range(5):
        exact = single_check(checker._layout, W[k], cure_passive=False)
        np.testing.assert_allclose(values[k], exact.post, atol=1e-12)
