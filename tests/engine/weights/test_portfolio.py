"""Portfolio arithmetic: V, NAV and weights, and the first bad reference named exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engine.errors import InputError, UnknownSymbolError
from engine.weights.portfolio import snapshot_of
from models import PolicyValidationRequest
from tests.builders import instrument, request


def _body(**changes: Any) -> dict[str, Any]:
    body = request({"AAA": 100, "BBB": -50, "CCC": 0}, [("DDD", "BUY", 10)]).model_dump(mode="json")
    for path, value in changes.items():
        target = body
        *parents, leaf = path.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[leaf] = value
    return body


def _error(body: dict[str, Any], include: tuple[str, ...] = ()) -> InputError:
    with pytest.raises(InputError) as raised:
        snapshot_of(PolicyValidationRequest.model_validate(body), include=include)
    return raised.value


def test_weights_follow_spec_section_2() -> None:
    req = request(
        {"AAA": 100, "BBB": -50, "CCC": 0},
        [("AAA", "BUY", 10), ("AAA", "SELL", 4), ("DDD", "BUY", 20), ("BBB", "BUY", 50)],
        cash=5_000,
        prices={"AAA": 10.0, "BBB": 20.0, "CCC": 30.0, "DDD": 40.0},
    )
    snap = snapshot_of(req)
    # CCC is held at zero and not traded: not in V. BBB is traded to zero: in V.
    assert snap.symbols == ("AAA", "BBB", "DDD")
    assert snap.nav == pytest.approx(5_000 + 100 * 10 - 50 * 20)
    np.testing.assert_array_equal(snap.t, [6.0, 50.0, 20.0])
    np.testing.assert_array_equal(snap.q, [100.0, -50.0, 0.0])
    np.testing.assert_array_equal(snap.prices, [10.0, 20.0, 40.0])
    np.testing.assert_allclose(snap.w0, np.array([1000.0, -1000.0, 0.0]) / snap.nav)
    np.testing.assert_allclose(snap.w_hat, np.array([1060.0, 0.0, 800.0]) / snap.nav)
    assert snap.index == {"AAA": 0, "BBB": 1, "DDD": 2}
    np.testing.assert_array_equal(snap.lots, [0.0, 0.0, 0.0])


def test_include_adds_a_name_neither_held_nor_traded() -> None:
    req = request({"AAA": 100}, [])
    assert snapshot_of(req, include=("EEE",)).symbols == ("AAA", "EEE")


def test_duplicate_instrument_is_named() -> None:
    body = _body()
    body["portfolio_state"]["instruments"].append(instrument("BBB"))
    error = _error(body)
    assert (
        error.field
        == f"portfolio_state.instruments[{len(body['portfolio_state']['instruments']) - 1}].symbol"
    )
    assert "BBB is listed twice" in error.message


def test_duplicate_position_is_named() -> None:
    body = _body()
    body["portfolio_state"]["positions"].append({"symbol": "AAA", "quantity": 5})
    error = _error(body)
    assert error.field == "portfolio_state.positions[3].symbol"
    assert "AAA has two positions" in error.message


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ("positions", "portfolio_state.positions[1].symbol"),
        ("trades", "decision.trades[0].symbol"),
        ("include", "universe[1]"),
    ],
)
def test_unknown_symbol_is_named(where: str, field: str) -> None:
    body = _body()
    include: tuple[str, ...] = ()
    if where == "positions":
        body["portfolio_state"]["positions"][1]["symbol"] = "ZZZ"
    elif where == "trades":
        body["decision"]["trades"][0]["symbol"] = "ZZZ"
    else:
        include = ("AAA", "ZZZ")
    error = _error(body, include)
    assert isinstance(error, UnknownSymbolError)
    assert error.field == field
    assert "ZZZ" in error.message


def test_first_bad_reference_wins_in_request_order() -> None:
    # A dangling position and a duplicate instrument: instruments are read first.
    body = _body()
    body["portfolio_state"]["positions"][0]["symbol"] = "ZZZ"
    body["portfolio_state"]["instruments"].append(instrument("CCC"))
    assert "listed twice" in _error(body).message
    # A duplicate position after a dangling one: the dangling one comes first.
    body = _body()
    body["portfolio_state"]["positions"][0]["symbol"] = "ZZZ"
    body["portfolio_state"]["positions"].append({"symbol": "BBB", "quantity": 1})
    assert _error(body).field == "portfolio_state.positions[0].symbol"


def test_non_positive_nav_is_refused() -> None:
    error = _error(_body(**{"portfolio_state.cash": -1e9}))
    assert error.field == "portfolio_state"
