"""`max_positions`: the exact count, the restriction the adjuster solves with, the answers.

Portfolio (NAV 100,000, every price 100, no lots): AAA 200, BBB 100, CCC 300, DDD 100
shares (four positions), cash 30,000; EEE and FFF have instruments but no position.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engine import PolicyEngine
from engine.compile.kinds.controls import positions_allowed
from tests.builders import instrument, policy, request

BASE = {"AAA": 200, "BBB": 100, "CCC": 300, "DDD": 100}
SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]


def _validate(max_positions: int, trades: list[tuple[str, str, float]], method: str) -> Any:
    req = request(
        BASE,
        trades,
        cash=30_000,
        instruments=[instrument(s) for s in SYMBOLS],
        policies=[policy("positions", {"kind": "max_positions", "max": max_positions})],
        adjustment=method,
    )
    return PolicyEngine().validate(req)


def _trades(response: Any) -> set[tuple[str, str, float]]:
    return {(t.symbol, t.side, t.quantity) for t in response.adjusted_decision.trades}


@pytest.mark.parametrize("method", ["scale_back", "project"])
def test_new_positions_beyond_the_limit_are_dropped_smallest_first(method: str) -> None:
    # Opening EEE (5%) and FFF (1%) makes six positions; the limit 5 allows one new name.
    response = _validate(5, [("EEE", "BUY", 50), ("FFF", "BUY", 10), ("AAA", "BUY", 10)], method)
    [violation] = response.violations
    assert violation.violation_type == "max_positions.max"
    assert (violation.observed, violation.limit, violation.pre_trade) == (6.0, 5.0, 4.0)
    assert violation.description == "open positions 6 exceeds max 5 (pre-trade 4)"
    adjusted = response.adjusted_decision
    assert adjusted.is_compliant
    assert _trades(response) == {("EEE", "BUY", 50.0), ("AAA", "BUY", 10.0)}
    [encoding] = adjusted.encodings
    assert encoding.kind == "max_positions"
    assert "new positions allowed: EEE" in encoding.encoding


def test_a_swap_within_the_limit_complies() -> None:
    response = _validate(4, [("DDD", "SELL", 100), ("EEE", "BUY", 50)], "scale_back")
    assert response.is_compliant and response.violations == []


def test_a_partial_sale_does_not_free_a_slot() -> None:
    # DDD sold down to 50 shares stays open: EEE would be a fifth position.
    response = _validate(4, [("DDD", "SELL", 50), ("EEE", "BUY", 50)], "scale_back")
    assert not response.is_compliant
    assert _trades(response) == {("DDD", "SELL", 50.0)}


def test_above_the_limit_before_the_decision_no_new_position_may_open() -> None:
    response = _validate(3, [("EEE", "BUY", 10), ("AAA", "BUY", 10)], "project")
    [violation] = response.violations
    assert violation.breach == "active"  # 5 > 4 open before: worse than before
    assert response.adjusted_decision.is_compliant
    assert ("EEE", "BUY", 10.0) not in _trades(response)


@pytest.mark.parametrize(
    ("w0", "w_hat", "limit", "expected"),
    [
        # kept open, then new (largest first), while the budget lasts
        ([0.2, 0.1, 0.0, 0.0], [0.2, 0.1, 0.05, 0.01], 3, [1, 1, 1, 0]),
        # a position the proposal closes makes room for a new one; it may not stay open
        ([0.2, 0.1, 0.0], [0.2, 0.0, 0.05], 2, [1, 0, 1]),
        # with room left over, the closing position is allowed to stay
        ([0.2, 0.1, 0.0], [0.2, 0.0, 0.05], 3, [1, 1, 1]),
        # above the limit before: the pre-trade count is the budget
        ([0.2, 0.1, 0.1, 0.0], [0.2, 0.1, 0.1, 0.05], 2, [1, 1, 1, 0]),
    ],
)
def test_positions_allowed(
    w0: list[float], w_hat: list[float], limit: int, expected: list[int]
) -> None:
    got = positions_allowed(np.array(w0), np.array(w_hat), limit)
    assert got.astype(int).tolist() == expected
