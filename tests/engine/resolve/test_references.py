"""Merging registered reference data into a request (engine.resolve.references), without a store."""

from __future__ import annotations

from typing import Any

import pytest

from engine import InputError, PolicyEngine
from engine.resolve.references import (
    FxSnapshotData,
    ReferenceNotFound,
    RiskModelData,
    UniverseData,
    require_resolved,
    resolve_references,
)
from engine.weights.portfolio import snapshot_of
from models import (
    CoordinatedTradingDecision,
    DataReference,
    Instrument,
    PolicyValidationRequest,
    PortfolioState,
    Position,
    RiskModel,
    Side,
    Trade,
)
from tests.builders import instrument, policy, request

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE"]
UNIVERSE = tuple(Instrument.model_validate(instrument(s, 100.0)) for s in SYMBOLS)
MODEL = RiskModel.model_validate(
    {
        "factor_loadings": {s: [1.0] for s in SYMBOLS},
        "factor_covariance": [[0.04]],
        "specific_variance": dict.fromkeys(SYMBOLS, 0.01),
    }
)


class DictSource:
    """Versions in dictionaries; the latest is the highest."""

    def __init__(self) -> None:
        self.universes = {("u", 1): UniverseData("u", 1, UNIVERSE)}
        self.models = {("m", 1): RiskModelData("m", 1, MODEL)}

    @staticmethod
    def _get(table: dict[tuple[str, int], Any], ref: DataReference) -> Any:
        versions = sorted(v for (i, v) in table if i == ref.id)
        if not versions:
            raise ReferenceNotFound("id", f"no {ref.id!r}")
        version = ref.version or versions[-1]
        if (ref.id, version) not in table:
            raise ReferenceNotFound("version", f"no version {version} of {ref.id!r}")
        return table[(ref.id, version)]

    def universe(self, ref: DataReference) -> UniverseData:
        return self._get(self.universes, ref)  # type: ignore[no-any-return]

    def risk_model(self, ref: DataReference) -> RiskModelData:
        return self._get(self.models, ref)  # type: ignore[no-any-return]

    def fx_snapshot(self, ref: DataReference) -> FxSnapshotData:
        raise ReferenceNotFound("id", f"no {ref.id!r}")


def _state(**fields: Any) -> PortfolioState:
    body: dict[str, Any] = {"portfolio_id": "p-1", "cash": 1000.0}
    body.update(fields)
    return PortfolioState.model_validate(body)


def test_a_plain_state_is_returned_as_it_is() -> None:
    state = _state(instruments=[instrument("AAA")])
    resolution = resolve_references(state, DictSource())
    assert resolution.state is state
    assert resolution.used is None


def test_inline_instruments_replace_the_universe_entries_and_prices_apply_to_both() -> None:
    state = _state(
        universe={"id": "u"},
        instruments=[instrument("BBB", 50.0, sector="Utilities")],
        prices={"AAA": 120.0, "BBB": 55.0},
    )
    resolution = resolve_references(state, DictSource())
    merged = {inst.symbol: inst for inst in resolution.state.instruments}
    assert sorted(merged) == SYMBOLS
    assert resolution.state.instruments[0].symbol == "BBB"  # inline entries come first
    assert merged["BBB"].sector == "Utilities"
    # The universe's entries are shared, never copied or modified; the prices stay a map
    # that the engine applies where it reads prices.
    assert merged["AAA"] is UNIVERSE[0] and merged["CCC"] is UNIVERSE[2]
    assert UNIVERSE[0].price == 100.0
    assert resolution.state.prices == {"AAA": 120.0, "BBB": 55.0}
    held = [Position(symbol="AAA", quantity=10), Position(symbol="BBB", quantity=10)]
    req = PolicyValidationRequest(
        decision=CoordinatedTradingDecision(
            decision_id="d-1",
            portfolio_id="p-1",
            trades=[Trade(symbol="CCC", side=Side.BUY, quantity=1)],
        ),
        portfolio_state=resolution.state.model_copy(update={"positions": held}),
    )
    snap = snapshot_of(req)
    prices = dict(zip(snap.symbols, snap.prices.tolist(), strict=True))
    assert prices == {"AAA": 120.0, "BBB": 55.0, "CCC": 100.0}
    assert resolution.state.universe is None
    assert resolution.used is not None and resolution.used.universe == DataReference(
        id="u", version=1
    )


def test_a_referenced_risk_model_is_replaced_by_its_data() -> None:
    state = _state(instruments=[instrument("AAA")], risk_model={"id": "m"})
    resolution = resolve_references(state, DictSource())
    assert resolution.state.risk_model is MODEL
    assert resolution.used is not None
    assert resolution.used.risk_model == DataReference(id="m", version=1)
    assert resolution.used.universe is None


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"universe": {"id": "nope"}}, "portfolio_state.universe.id"),
        ({"universe": {"id": "u", "version": 2}}, "portfolio_state.universe.version"),
        ({"risk_model": {"id": "nope"}}, "portfolio_state.risk_model.id"),
        ({"risk_model": {"id": "m", "version": 5}}, "portfolio_state.risk_model.version"),
        ({"universe": {"id": "u"}, "prices": {"ZZZ": 1.0}}, "portfolio_state.prices.ZZZ"),
        ({"prices": {"AAA": 1.0}}, "portfolio_state.prices.AAA"),
    ],
)
def test_unknown_references_and_prices_name_the_field(fields: dict[str, Any], path: str) -> None:
    with pytest.raises(InputError) as caught:
        resolve_references(_state(**fields), DictSource())
    assert caught.value.field == path


def test_engine_errors_about_universe_instruments_point_into_the_universe() -> None:
    state = _state(universe={"id": "u"}, instruments=[instrument("ZZZ")])
    resolution = resolve_references(state, DictSource())
    # ZZZ is inline (index 0); universe entries follow, AAA at merged index 1.
    assert resolution.field_path("portfolio_state.instruments[0].sector") == (
        "portfolio_state.instruments[0].sector"
    )
    assert resolution.field_path("portfolio_state.instruments[3].attributes.esg") == (
        "portfolio_state.universe.instruments[2].attributes.esg"
    )
    with pytest.raises(InputError) as caught, resolution.located():
        raise InputError("portfolio_state.instruments[1].attributes.esg", "needs esg")
    assert caught.value.field == "portfolio_state.universe.instruments[0].attributes.esg"
    assert caught.value.message == "needs esg"


def test_the_engine_refuses_a_state_that_still_names_reference_data() -> None:
    req = request(
        {"AAA": 100}, [("AAA", "BUY", 10)], policies=[policy("cap", {"kind": "cash", "min": 0.0})]
    )
    for update, path in (
        ({"universe": DataReference(id="u")}, "portfolio_state.universe"),
        ({"risk_model": RiskModel(id="m")}, "portfolio_state.risk_model.id"),
    ):
        state = req.portfolio_state.model_copy(update=update)
        with pytest.raises(InputError) as caught:
            require_resolved(state)
        assert caught.value.field == path
        with pytest.raises(InputError):
            PolicyEngine().validate(req.model_copy(update={"portfolio_state": state}))


def test_a_risk_model_reference_carries_no_data() -> None:
    with pytest.raises(ValueError, match="not both"):
        RiskModel.model_validate({"id": "m", "factor_covariance": [[0.04]]})
    with pytest.raises(ValueError, match="needs the id"):
        RiskModel.model_validate({"version": 2, "covariance": {"symbols": [], "matrix": []}})


def test_the_engine_applies_prices_over_the_instruments_and_names_unknown_symbols() -> None:
    base = request({"AAA": 100, "BBB": 100}, [("AAA", "BUY", 10)], cash=10_000, mode="validate")
    moved = base.portfolio_state.model_copy(update={"prices": {"AAA": 150.0}})
    repriced = [
        inst.model_copy(update={"price": 150.0}) if inst.symbol == "AAA" else inst
        for inst in base.portfolio_state.instruments
    ]
    inline = base.portfolio_state.model_copy(update={"instruments": repriced})
    by_map = snapshot_of(base.model_copy(update={"portfolio_state": moved}))
    by_copy = snapshot_of(base.model_copy(update={"portfolio_state": inline}))
    assert by_map.nav == by_copy.nav == 10_000 + 100 * 150 + 100 * 100
    assert by_map.w_hat.tolist() == by_copy.w_hat.tolist()
    unknown = base.portfolio_state.model_copy(update={"prices": {"ZZZ": 1.0}})
    with pytest.raises(InputError) as caught:
        snapshot_of(base.model_copy(update={"portfolio_state": unknown}))
    assert caught.value.field == "portfolio_state.prices.ZZZ"
