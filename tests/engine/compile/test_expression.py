"""The expression language: accepted and rejected examples, the numeric and cvxpy forms
held together, and agreement with the built-in kinds on random portfolios."""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np
import pytest

from engine import InputError, PolicyEngine
from engine.compile.context import CompileContext
from engine.compile.kinds import REGISTRY
from engine.compile.language import ExpressionError, analyze
from engine.compile.language.block import ExpressionBlock
from engine.compile.layout import build_layout
from engine.weights.portfolio import snapshot_of
from models import PolicyDefinition, PolicyValidationRequest
from tests.builders import instrument, policy, request

ACCEPTED = [
    ('sum(w[sector == "Energy"]) <= 0.08', None, 0.08),
    ("sum(abs(w - b)) <= 0.6", None, 0.6),
    ("0.9 <= sum(w * beta) <= 1.1", 0.9, 1.1),
    ('w["AAPL"] + w["GOOGL"] <= 0.12', None, 0.12),
    ("sum_largest(abs(w), 5) <= 0.35", None, 0.35),
    ('sum(w[country in ("US", "CA")]) >= 0.5', 0.5, None),
    ("risk(w - b) <= 0.04", None, 0.04),
    # more of the language
    ("1.1 >= sum(w * beta) >= 0.9", 0.9, 1.1),
    ("0.04 >= risk(w)", None, 0.04),
    ("sum(w) == 0.97", 0.97, 0.97),
    ("-sum(abs(w)) >= -1.5", -1.5, None),
    ("min(w) >= -0.01", -0.01, None),
    ("sum(pos(w - 0.05)) / 2 <= 0.1", None, 0.1),
    ('sum(w[not (sector == "Energy") and beta > 1]) <= 0.3', None, 0.3),
    ("norm2(w - w0) * 3 <= 0.2", None, 0.2),
    ('w["AAPL"] <= w["MSFT"]', None, 0.0),
]

REJECTED = [
    (
        "sum(w) * sum(w) <= 1",
        "sum(w) * sum(w): the product of two expressions that depend on the weights is not "
        "convex; multiply by a constant instead",
    ),
    (
        'abs(w["AAPL"]) >= 0.01',
        'abs(w["AAPL"]) >= 0.01: a convex expression can only be bounded from above (<=)',
    ),
    (
        '__import__("os")',
        '__import__("os"): __import__ is not a function of the expression language (functions: '
        "abs, max, min, neg, norm1, norm2, pos, risk, sum, sum_largest, sum_smallest)",
    ),
    ("w.__class__", "syntax error at column 2: unexpected character '.'"),
    (
        "sum(w) <= ",
        "syntax error: the expression ends too early (after 'sum(w) <='); something is "
        "missing at the end",
    ),
    # more reasons
    ("min(w) <= 0.1", "min(w) <= 0.1: a concave expression can only be bounded from below (>=)"),
    (
        "w <= 0.1",
        "w <= 0.1: w is a vector (one value per symbol); reduce it to a number with sum(...), "
        "max(...) or a norm",
    ),
    (
        "sum(abs(w) * beta) <= 1",
        "abs(w) * beta: abs(w) is convex, and multiplying it by beta, whose sign is not known in "
        "advance, is not convex; multiply it by a number instead",
    ),
    ("sum(w) < 1", "sum(w) < 1: < cannot bound a constraint (use <= or >=)"),
    ("sum(w / beta) <= 1", "w / beta: divide only by a number (beta is not)"),
    ("1 <= 2", "1 <= 2: neither side depends on the weights"),
    (
        "sum(w[w > 0]) <= 1",
        "w > 0: a condition selects symbols by an instrument attribute "
        '(sector == "Energy", beta > 1); it cannot depend on the weights',
    ),
    ("sum(w.__class__) <= 1", "syntax error at column 6: unexpected character '.'"),
    ("sum(__class__) <= 1", "__class__: names may not start with '_'"),
    (
        "sum_largest(abs(w), 0) <= 1",
        "sum_largest(abs(w), 0): k must be a whole number of at least 1",
    ),
    (
        'abs(abs(w["A"]) - 0.1) <= 1',
        'abs(abs(w["A"]) - 0.1): abs of the convex expression abs(w["A"]) - 0.1 is not convex '
        "or concave; abs needs an affine argument here",
    ),
]


@pytest.mark.parametrize(("source", "lower", "upper"), ACCEPTED)
def test_accepted(source: str, lower: float | None, upper: float | None) -> None:
    constraint = analyze(source)
    assert (constraint.lower, constraint.upper) == (lower, upper)


@pytest.mark.parametrize(("source", "message"), REJECTED)
def test_rejected_with_its_reason(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        analyze(source)
    assert caught.value.message == message


def test_syntax_errors_carry_their_column() -> None:
    with pytest.raises(ExpressionError) as caught:
        analyze("w.__class__")
    assert caught.value.column == 2
    with pytest.raises(ExpressionError) as caught:
        analyze("sum(w) <= ")
    assert caught.value.column == 10


# ---------------------------------------------------------------------------------------
# One tree, two forms: numpy values and the cvxpy expression agree.

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
SECTORS = {
    "AAA": "Tech",
    "BBB": "Tech",
    "CCC": "Energy",
    "DDD": "Health",
    "EEE": "Energy",
    "FFF": "Utilities",
}
COUNTRIES = {"AAA": "US", "BBB": "CA", "CCC": "US", "DDD": "GB", "EEE": "CA", "FFF": "DE"}


def _covariance(rng: np.random.Generator, names: list[str], scale: float = 0.2) -> dict[str, Any]:
    loadings = rng.normal(0.0, scale, size=(len(names), 3))
    matrix = loadings @ loadings.T + np.diag(rng.uniform(0.005, 0.03, len(names)))
    return {"symbols": names, "matrix": matrix.round(12).tolist()}


def _random_request(seed: int, **fields: Any) -> PolicyValidationRequest:
    """A long-only book over some of SYMBOLS with random trades (every price 100)."""
    rng = np.random.default_rng(seed)
    held = [s for s in SYMBOLS if rng.random() < 0.7] or ["AAA"]
    positions = {s: float(rng.integers(50, 400)) for s in held}
    positions.setdefault("CCC", float(rng.integers(50, 400)))  # Energy is always present
    traded = rng.choice(SYMBOLS, size=3, replace=False)
    trades = [(str(s), "BUY", float(rng.integers(20, 300))) for s in traded]
    instruments = [
        instrument(
            s,
            sector=SECTORS[s],
            country=COUNTRIES[s],
            attributes={"beta": round(float(rng.uniform(0.4, 1.6)), 3)},
        )
        for s in SYMBOLS
    ]
    bench_names = ["AAA", "CCC", "EEE", "GGG"]
    bench = dict(zip(bench_names, (rng.dirichlet(np.ones(4)) * 0.98).round(6), strict=True))
    instruments.append(instrument("GGG", sector="Energy", attributes={"beta": 1.0}))
    body = {
        "benchmark": {k: float(v) for k, v in bench.items()},
        "risk_model": {"covariance": _covariance(rng, [*SYMBOLS, "GGG"])},
    }
    body.update(fields)
    return request(
        positions, trades, cash=float(rng.integers(5_000, 40_000)), instruments=instruments, **body
    )


FORMS = [
    'sum(w[sector == "Energy"])',
    "sum(abs(w - b))",
    "sum(w * beta)",
    'w["AAA"] + w["GGG"] - 2 * w0["CCC"]',
    "sum_largest(abs(w), 3)",
    'sum(w[country in ("US", "CA")])',
    "risk(w - b)",
    'risk(w[sector == "Energy"]) + 0.5 * norm1(w - w0)',
    "max(w - b) + sum(neg(w)) - min(w)",
    "norm2(w - w0) + sum(pos(w - 0.1))",
    'sum(max(w, b)) - sum_smallest(w, 2) + sum(w[not (sector == "Tech") or beta > 1.2])',
]


def _block(source: str, req: PolicyValidationRequest) -> ExpressionBlock:
    snap = snapshot_of(req)
    ctx = CompileContext(snap=snap, request=req, policy_name="p", constraint_path="c")
    rowsets = REGISTRY["expression"].compile(
        PolicyDefinition.model_validate(
            policy("p", {"kind": "expression", "expr": f"{source} <= 1"})
        ).rules.constraints[0],
        ctx,
    )
    block = rowsets[0].block
    assert isinstance(block, ExpressionBlock)
    return block


@pytest.mark.parametrize("source", FORMS)
def test_numpy_and_cvxpy_forms_agree(source: str) -> None:
    rng = np.random.default_rng(7)
    for seed in range(3):
        req = _random_request(seed)
        block = _block(source, req)
        n = block.bindings.n_v
        params = block.declare()
        w0 = snapshot_of(req).w0
        block.fill(params, w0)
        delta = cp.Variable(n)
        expr = block.expression(delta, params)
        assert expr.is_dcp() and expr.is_dpp()
        for _ in range(5):
            w = rng.normal(0.0, 0.2, n)
            delta.value = w - w0
            assert float(expr.value[0]) == pytest.approx(block.values(w)[0], abs=1e-12)


@pytest.mark.parametrize("source", FORMS)
def test_perturbation_bound_covers_every_small_move(source: str) -> None:
    rng = np.random.default_rng(11)
    req = _random_request(3)
    block = _block(source, req)
    n = block.bindings.n_v
    for _ in range(20):
        w, eps = rng.normal(0.0, 0.2, n), rng.uniform(0.0, 0.01, n)
        bound = block.perturbation_bound(eps)[0]
        moved = w + eps * rng.choice([-1.0, 0.0, 1.0], n)
        assert abs(block.values(moved)[0] - block.values(w)[0]) <= bound + 1e-12


def test_gradient_is_a_subgradient_of_a_convex_row() -> None:
    req = _random_request(4)
    block = _block('risk(w - b) + norm1(w[sector == "Energy"])', req)
    rng = np.random.default_rng(5)
    n = block.bindings.n_v
    for _ in range(10):
        w, v = rng.normal(0.0, 0.2, n), rng.normal(0.0, 0.2, n)
        g = block.gradient(w)
        assert block.values(v)[0] >= block.values(w)[0] + g @ (v - w) - 1e-12


# ---------------------------------------------------------------------------------------
# The DSL against the built-in kinds.


def _builtin_pairs(rng: np.random.Generator) -> list[tuple[str, dict[str, Any]]]:
    cap, k = float(rng.uniform(0.1, 0.3)), int(rng.integers(1, 4))
    lo, hi = float(rng.uniform(0.2, 0.5)), float(rng.uniform(0.6, 0.9))
    return [
        (
            f'sum(w[sector == "Energy"]) <= {cap!r}',
            {"kind": "group_limit", "attribute": "sector", "per_group": {"Energy": {"max": cap}}},
        ),
        (
            f"sum(abs(w - w0)) <= {cap / 3!r}",
            {"kind": "turnover", "max": cap / 3},
        ),
        (
            f"{lo!r} <= sum(w * beta) <= {hi!r}",
            {"kind": "exposure", "attribute": "beta", "min": lo, "max": hi},
        ),
        (
            f"sum_largest(abs(w), {k}) <= {cap * k!r}",
            {"kind": "concentration", "top_k": k, "max": cap * k},
        ),
        (f"risk(w) <= {cap / 2!r}", {"kind": "volatility", "max": cap / 2}),
        (f"risk(w - b) <= {cap / 4!r}", {"kind": "tracking_error", "max": cap / 4}),
    ]


def _rows(req: PolicyValidationRequest, constraint: dict[str, Any]) -> list[Any]:
    snap = snapshot_of(req)
    layout = build_layout([PolicyDefinition.model_validate(policy("p", constraint))], req, snap)
    return layout.rowsets


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine()


@pytest.mark.parametrize("seed", range(4))
def test_dsl_agrees_with_the_builtin_kinds(seed: int, engine: PolicyEngine) -> None:
    rng = np.random.default_rng(100 + seed)
    req = _random_request(seed)
    snap = snapshot_of(req)
    for source, builtin in _builtin_pairs(rng):
        mine, theirs = _rows(req, {"kind": "expression", "expr": source}), _rows(req, builtin)
        assert [(r.sense, r.limits.tolist()) for r in mine] == [
            (r.sense, r.limits.tolist()) for r in theirs
        ], source
        for point in (snap.w0, snap.w_hat, snap.w_hat + rng.normal(0, 0.05, snap.n)):
            for a, b in zip(mine, theirs, strict=True):
                assert a.block.values(point) == pytest.approx(b.block.values(point), abs=1e-9)
        answers = []
        for constraint in ({"kind": "expression", "expr": source}, builtin):
            answers.append(
                engine.validate(
                    req.model_copy(
                        update={
                            "policies": [PolicyDefinition.model_validate(policy("p", constraint))],
                            "adjustment": "project",
                        }
                    )
                )
            )
        dsl, ref = answers
        assert dsl.is_compliant == ref.is_compliant, source
        assert [(v.breach, v.severity) for v in dsl.violations] == [
            (v.breach, v.severity) for v in ref.violations
        ], source
        for a, b in zip(dsl.violations, ref.violations, strict=True):
            assert a.observed == pytest.approx(b.observed, abs=1e-9)
            assert a.pre_trade == pytest.approx(b.pre_trade, abs=1e-9)
            assert a.violation_type.split(".")[1] == b.violation_type.split(".")[1]
        if ref.adjusted_decision is None:
            assert dsl.adjusted_decision is None, source
            continue
        assert dsl.adjusted_decision is not None, source
        assert dsl.adjusted_decision.is_compliant
        assert dsl.adjusted_decision.distance == pytest.approx(
            ref.adjusted_decision.distance, rel=1e-5, abs=1e-8
        ), source


def test_every_pair_is_exercised_breached_and_adjusted(engine: PolicyEngine) -> None:
    """The random cases above must include adjustments of every pair (else they prove little)."""
    adjusted: set[str] = set()
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        req = _random_request(seed)
        for _, builtin in _builtin_pairs(rng):
            answer = engine.validate(
                req.model_copy(
                    update={
                        "policies": [PolicyDefinition.model_validate(policy("p", builtin))],
                        "adjustment": "project",
                    }
                )
            )
            if answer.adjusted_decision is not None:
                adjusted.add(builtin["kind"])
    assert adjusted == {
        "group_limit",
        "turnover",
        "exposure",
        "concentration",
        "volatility",
        "tracking_error",
    }


# ---------------------------------------------------------------------------------------
# Data at validation time.


def _validate(expr: str, engine: PolicyEngine, **extra: Any) -> Any:
    constraint = {"kind": "expression", "expr": expr, **extra}
    req = _random_request(1).model_copy(
        update={"policies": [PolicyDefinition.model_validate(policy("p", constraint))]}
    )
    return engine.validate(req)


def test_unknown_attribute_names_attribute_and_symbol(engine: PolicyEngine) -> None:
    with pytest.raises(InputError) as caught:
        _validate("sum(w * esg) <= 5", engine)
    assert "'esg'" in caught.value.message
    assert caught.value.field.startswith("portfolio_state.instruments[")
    assert caught.value.field.endswith("].attributes.esg")


def test_unknown_symbol_is_named(engine: PolicyEngine) -> None:
    with pytest.raises(InputError) as caught:
        _validate('w["ZZZ"] <= 0.1', engine)
    assert "'ZZZ'" in caught.value.message


def test_missing_ignore_and_default(engine: PolicyEngine) -> None:
    # esg on nobody: ignored symbols drop out (value 0), a default stands in for it
    ignored = _validate("sum(w * esg) <= 0.001", engine, missing="ignore")
    assert ignored.is_compliant
    defaulted = _validate("sum(w * esg) <= 0.001", engine, missing={"default": 2.0})
    assert not defaulted.is_compliant
    selected = _validate('sum(w[esg == "A"]) >= 0.001', engine, missing="ignore")
    assert [v.observed for v in selected.violations] == [0.0]


def test_risk_without_a_risk_model_is_refused(engine: PolicyEngine) -> None:
    req = _random_request(2).model_copy(
        update={
            "policies": [
                PolicyDefinition.model_validate(
                    policy("p", {"kind": "expression", "expr": "risk(w) <= 0.1"})
                )
            ]
        }
    )
    req.portfolio_state.risk_model = None
    with pytest.raises(InputError) as caught:
        engine.validate(req)
    assert caught.value.field == "portfolio_state.risk_model"


def test_inline_policies_are_checked_with_their_path(engine: PolicyEngine) -> None:
    with pytest.raises(InputError) as caught:
        _validate('abs(w["AAA"]) >= 0.01', engine)
    assert caught.value.field == "policies[0].rules.constraints[0].expr"
    assert caught.value.message.endswith("can only be bounded from above (<=)")


def test_symbols_outside_v_are_fixed_at_zero(engine: PolicyEngine) -> None:
    # GGG is an instrument and a benchmark name but neither held nor traded
    # GGG cannot be bought in this decision: its weight stays 0, a passive breach
    answer = _validate('w["GGG"] >= 0.01', engine)
    assert [(v.observed, v.pre_trade, v.breach.value) for v in answer.violations] == [
        (0.0, 0.0, "passive")
    ]
    assert answer.is_compliant


def test_compile_fails_closed_when_cvxpy_disagrees(
    engine: PolicyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the syntactic checker ever wrong, cvxpy's own DCP check refuses the policy."""
    import dataclasses

    import engine.compile.kinds.expression as kind_module

    def lenient(source: str) -> Any:  # pretends a convex body may be bounded from below
        return dataclasses.replace(analyze("sum(abs(w)) <= 1"), lower=0.5)

    monkeypatch.setattr(kind_module, "analyze", lenient)
    with pytest.raises(InputError) as caught:
        _validate("sum(abs(w)) <= 1", PolicyEngine())
    assert caught.value.field == "policies[p].rules.constraints[0].expr"
    assert "cvxpy does not accept it as convex" in caught.value.message


@pytest.mark.parametrize("source", ["sum(w * price) <= 1", "sum(w[lot_size > 1]) <= 0.1"])
def test_fields_that_change_per_request_are_refused(source: str) -> None:
    with pytest.raises(ExpressionError, match="changes with every request"):
        analyze(source)


def test_scalar_functions_of_one_symbol(engine: PolicyEngine) -> None:
    answer = _validate('max(w["AAA"]) + max(w["CCC"], 0.5) <= 0.6', engine)
    snap = snapshot_of(_random_request(1))
    expected = snap.w_hat[snap.index["AAA"]] + max(snap.w_hat[snap.index["CCC"]], 0.5)
    assert [v.observed for v in answer.violations] == [pytest.approx(expected, abs=1e-12)]


def _with_ratings(ratings: dict[str, Any]) -> PolicyValidationRequest:
    req = _random_request(1)
    for inst in req.portfolio_state.instruments:
        if inst.symbol in ratings:
            inst.attributes["rating"] = ratings[inst.symbol]
    return req


def test_masks_match_numbers_and_text_and_drop_ignored_symbols(engine: PolicyEngine) -> None:
    req = _with_ratings({"AAA": 1, "CCC": "1", "EEE": 2})
    snap = snapshot_of(req)
    weight = {s: snap.w_hat[i] for i, s in enumerate(snap.symbols)}

    def observed(expr: str) -> float:
        constraint = {"kind": "expression", "expr": expr, "missing": "ignore"}
        rows = _rows(req, constraint)
        return float(rows[0].block.values(snap.w_hat)[0])

    ones = sum(weight.get(s, 0.0) for s in ("AAA", "CCC"))
    assert observed("sum(w[rating == 1]) <= 1") == pytest.approx(ones, abs=1e-12)
    # symbols without a rating drop out, also under `not`
    rated = sum(weight.get(s, 0.0) for s in ("AAA", "CCC", "EEE"))
    assert observed("sum(w[not rating == 7]) <= 1") == pytest.approx(rated, abs=1e-12)


def test_max_of_an_empty_selection_is_refused(engine: PolicyEngine) -> None:
    with pytest.raises(InputError, match="selects no symbol"):
        _validate('max(w[sector == "Nowhere"]) <= 0.1', engine)
    assert _validate('sum(w[sector == "Nowhere"]) <= 0.1', engine).violations == []
