"""The `when` language: what parses, what is rejected where, and how it evaluates."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from pydantic import ValidationError

from engine import PolicyEngine, PolicyResolutionError
from engine.resolve.conditions import policy_applies
from models import PolicyDefinition
from models.condition import (
    ConditionSyntaxError,
    ConditionTypeError,
    MissingContextError,
    parse_condition,
)
from tests.builders import policy, request

# --- grammar: accepted ---------------------------------------------------------------------

ACCEPTED = [
    'risk_mode == "DEFENSIVE"',
    "risk_mode == 'DEFENSIVE'",
    "vix > 30",
    "vix >= -1.5e2",
    "vix < .5",
    'risk_mode in ("NORMAL", "DEFENSIVE")',
    "risk_mode in ('NORMAL',)",
    'risk_mode not in ("AGGRESSIVE")',
    "month_end",
    "not month_end",
    "has(vix) and vix > 30",
    "market.vix > 30 or market.region == 'EU'",
    "not (a == 1 or b != 2) and c <= 3",
    "override == null",
    "flag == true or flag == false",
    "order > 1 and android and origin == 'x'",  # names that start with keywords
    "a == 1\n  and b == 2",
    'label == "say \\"hi\\""',
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted(text: str) -> None:
    condition = parse_condition(text)
    assert condition.text == text
    assert condition.names()


def test_names_lists_every_context_name() -> None:
    condition = parse_condition("has(vix) and vix > 30 or market.region in ('EU', 'UK')")
    assert condition.names() == ["market.region", "vix"]


def test_escaped_quotes_are_unescaped() -> None:
    condition = parse_condition('label == "say \\"hi\\""')
    assert condition.applies({"label": 'say "hi"'})


# --- grammar: rejected with line, column and what was expected -----------------------------

REJECTED = [
    ("vix >", 1, 6, "ends too early; expected a number"),
    ("vix = 3", 1, 5, "(to compare, write ==)"),
    ("a == 1 && b == 2", 1, 8, "(write and)"),
    ("a == 1 || b == 2", 1, 8, "(write or)"),
    ("(a == 1", 1, 8, 'expected ")"'),
    ("a == 1)", 1, 7, "unexpected ')'; expected the end of the condition"),
    ("a == 1 and", 1, 11, 'expected a context name, "(", "has" or "not"'),
    ("1 == a", 1, 1, "unexpected '1'; expected a context name"),
    ('vix > "high"', 1, 7, "`>` compares numbers, but the text 'high' is not a number"),
    ("flag < true", 1, 8, "`<` compares numbers"),
    ("vix >= null", 1, 8, "`>=` compares numbers, but null"),
    ('a in (1, "x")', 1, 1, "mixes number and text"),
    ("a in ()", 1, 7, "unexpected ')'"),
    ("a == 1e999", 1, 6, "1e999 is too large"),
    ("a == 1\nand\nb ==", 3, 5, "ends too early"),
    ("", 1, 1, "the condition is empty"),
    ("   ", 1, 1, "the condition is empty"),
    ("AND == 1 and a == 2 AND b == 3", 1, 21, "unexpected 'AND'"),
    ("a == 'open", 1, 6, "unexpected character"),
]


@pytest.mark.parametrize(("text", "line", "column", "needle"), REJECTED)
def test_rejected_with_position(text: str, line: int, column: int, needle: str) -> None:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse_condition(text)
    assert (caught.value.line, caught.value.column) == (line, column), str(caught.value)
    assert needle in caught.value.message
    assert str(caught.value).startswith(f"line {line}, column {column}: ")


NEVER_CODE = [
    '__import__("os")',
    '__import__("os").system("true")',
    "exec('x')",
    "eval('1')",
    "vix.__class__ == 1",  # parses: a nested context name, never an attribute of an object
    "lambda: 1",
    "open('/etc/passwd')",
    "[x for x in y]",
    "vix > 30; import os",
    "vix if vix else 1",
]


@pytest.mark.parametrize("text", NEVER_CODE)
def test_code_is_never_run(text: str) -> None:
    """Python is not the language: calls, statements and dunder access go nowhere."""
    try:
        condition = parse_condition(text)
    except ConditionSyntaxError:
        return
    # The only one that parses reads a nested context value named "__class__".
    assert condition.names() == ["vix.__class__"]
    with pytest.raises(MissingContextError):
        condition.applies({"vix": {}})
    with pytest.raises(ConditionTypeError):
        condition.applies({"vix": 20})
    assert condition.applies({"vix": {"__class__": 1}}) is True


@pytest.mark.parametrize("text", ["not " * 499 + "a", "(not " * 100 + "a" + ")" * 100])
def test_deep_nesting_is_rejected_not_a_crash(text: str) -> None:
    with pytest.raises(ConditionSyntaxError, match="nested more than 32 levels"):
        parse_condition(text)


def test_redundant_parentheses_and_moderate_nesting_are_fine() -> None:
    assert parse_condition("(" * 900 + "a" + ")" * 900).applies({"a": True})
    assert parse_condition("not " * 20 + "a").applies({"a": True})


def test_too_long_a_condition_is_rejected() -> None:
    with pytest.raises(ConditionSyntaxError, match="longer than 2000"):
        parse_condition(" or ".join(["a == 1"] * 400))


# --- evaluation ----------------------------------------------------------------------------

BOOLS = [True, False]


@pytest.mark.parametrize(("a", "b"), list(itertools.product(BOOLS, BOOLS)))
def test_truth_tables(a: bool, b: bool) -> None:
    context = {"a": a, "b": b}
    assert parse_condition("a and b").applies(context) is (a and b)
    assert parse_condition("a or b").applies(context) is (a or b)
    assert parse_condition("not a").applies(context) is (not a)
    assert parse_condition("not a and b").applies(context) is ((not a) and b)
    assert parse_condition("not (a and b)").applies(context) is (not (a and b))
    # `and` binds tighter than `or`
    assert parse_condition("a or b and not a").applies(context) is (a or (b and not a))


@pytest.mark.parametrize(
    ("text", "context", "expected"),
    [
        ("vix > 30", {"vix": 30}, False),
        ("vix > 30", {"vix": 30.5}, True),
        ("vix >= 30", {"vix": 30}, True),
        ("vix < 30", {"vix": 29.999}, True),
        ("vix <= 30", {"vix": 30.0}, True),
        ("vix == 30", {"vix": 30.0}, True),
        ("vix != 30", {"vix": 30}, False),
        ("vix > -2.5", {"vix": -2}, True),
        ('risk_mode == "DEFENSIVE"', {"risk_mode": "DEFENSIVE"}, True),
        ('risk_mode == "DEFENSIVE"', {"risk_mode": "defensive"}, False),
        ('risk_mode in ("NORMAL", "DEFENSIVE")', {"risk_mode": "NORMAL"}, True),
        ('risk_mode in ("NORMAL", "DEFENSIVE")', {"risk_mode": "AGGRESSIVE"}, False),
        ('risk_mode not in ("NORMAL", "DEFENSIVE")', {"risk_mode": "AGGRESSIVE"}, True),
        ("tier in (1, 2)", {"tier": 2}, True),
        ("override == null", {"override": None}, True),
        ("override == null", {"override": "x"}, False),
        ("override != null", {"override": 0.1}, True),
        ("risk_mode in ('A', null)", {"risk_mode": None}, True),
        ("flag == true", {"flag": True}, True),
        ("market.vix > 30", {"market": {"vix": 31}}, True),
        ("has(vix)", {"vix": None}, True),
        ("has(vix)", {}, False),
        ("has(market.vix)", {"market": {}}, False),
        ("not has(vix) or vix > 30", {}, True),
        ("has(vix) and vix > 30", {}, False),
        ("has(vix) and vix > 30", {"vix": 31}, True),
    ],
)
def test_evaluation(text: str, context: dict[str, Any], expected: bool) -> None:
    assert parse_condition(text).applies(context) is expected


@pytest.mark.parametrize(
    ("text", "context", "missing"),
    [
        ("vix > 30", {}, ["vix"]),
        ("risk_mode == 'X' and vix > 30", {"risk_mode": "Y"}, ["vix"]),  # even when decided
        ("market.vix > 30", {"market": {}}, ["market.vix"]),
        ("a or b", {}, ["a", "b"]),
    ],
)
def test_a_missing_key_is_an_error(text: str, context: dict[str, Any], missing: list[str]) -> None:
    with pytest.raises(MissingContextError) as caught:
        parse_condition(text).applies(context)
    assert caught.value.names == missing
    assert not caught.value.guarded


def test_a_guarded_key_the_answer_still_needs_is_an_error() -> None:
    with pytest.raises(MissingContextError) as caught:
        parse_condition("not has(vix) and vix > 30").applies({})
    assert caught.value.guarded
    assert caught.value.names == ["vix"]


@pytest.mark.parametrize(
    ("text", "context", "needle"),
    [
        ("vix > 30", {"vix": "high"}, "is the text 'high'; `>` compares it with the number 30"),
        ("vix > 30", {"vix": True}, "is the boolean true"),
        ("risk_mode == 'X'", {"risk_mode": 3}, "the number 3, which cannot be compared with"),
        ("tier in (1, 2)", {"tier": "1"}, "is the text '1'"),
        ("month_end", {"month_end": "yes"}, "must be true or false"),
        ("market > 1", {"market": {"vix": 1}}, "is an object, not a single value"),
        ("market.vix > 1", {"market": 5}, "is the number 5, not an object"),
        ("flag == 1", {"flag": True}, "the boolean true, which cannot be compared"),
    ],
)
def test_a_type_mismatch_is_an_error_not_false(
    text: str, context: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConditionTypeError) as caught:
        parse_condition(text).applies(context)
    assert needle in str(caught.value)


def test_a_type_error_is_found_whatever_the_order() -> None:
    """Both sides of and/or are evaluated: a false left side does not hide a bad value."""
    context = {"risk_mode": "NORMAL", "vix": "high"}
    for text in ("risk_mode == 'X' and vix > 30", "vix > 30 and risk_mode == 'X'"):
        with pytest.raises(ConditionTypeError):
            parse_condition(text).applies(context)


# --- through the policy model and the engine -----------------------------------------------


def test_a_policy_with_a_malformed_condition_is_rejected_naming_the_field() -> None:
    body = policy("cap", {"kind": "weight_bounds", "max": 0.1})
    body["when"] = "risk_mode == "
    with pytest.raises(ValidationError) as caught:
        PolicyDefinition.model_validate(body)
    (error,) = caught.value.errors()
    assert error["loc"] == ("when",)
    assert "line 1, column 14" in error["msg"]


def _policy(when: str | None) -> PolicyDefinition:
    return PolicyDefinition.model_validate(
        policy("defensive", {"kind": "weight_bounds", "max": 0.1}, when=when)
    )


def test_policy_applies() -> None:
    assert policy_applies(_policy(None), {})
    assert policy_applies(_policy("vix > 30"), {"vix": 35})
    assert not policy_applies(_policy("vix > 30"), {"vix": 25})


def test_policy_applies_names_policy_condition_and_key() -> None:
    with pytest.raises(PolicyResolutionError) as caught:
        policy_applies(_policy("vix > 30"), {"risk_mode": "NORMAL"})
    assert caught.value.field == "context.vix"
    assert "'defensive'" in caught.value.message
    assert "`vix > 30`" in caught.value.message
    assert "has(vix)" in caught.value.message
    with pytest.raises(PolicyResolutionError) as caught:
        policy_applies(_policy("vix > 30"), {"vix": "high"})
    assert caught.value.field == "context.vix"
    assert "the text 'high'" in caught.value.message


def _validate(engine: PolicyEngine, context: dict[str, Any]) -> Any:
    cap = policy("tech-cap", {"kind": "group_limit", "attribute": "sector", "max": 0.3})
    cap["when"] = "risk_mode == 'DEFENSIVE' or vix > 30"
    req = request(
        {"AAA": 300, "BBB": 300},
        [("AAA", "BUY", 10)],
        cash=50_000,
        policies=[cap],
        context=context,
        mode="validate",
    )
    return engine.validate(req)


def test_a_policy_is_checked_only_where_its_condition_holds() -> None:
    engine = PolicyEngine()
    calm = _validate(engine, {"risk_mode": "NORMAL", "vix": 18})
    assert calm.is_compliant and calm.policies_checked == []
    assert calm.context_resolution[0].applies is False
    stressed = _validate(engine, {"risk_mode": "NORMAL", "vix": 35})
    assert not stressed.is_compliant
    assert stressed.policies_checked == ["tech-cap"]
    assert [v.subject for v in stressed.violations] == ["Tech"]
    assert stressed.context_resolution[0].applies is True
    assert stressed.context_resolution[0].when == "risk_mode == 'DEFENSIVE' or vix > 30"


def test_a_decided_condition_still_needs_every_key_it_names() -> None:
    with pytest.raises(PolicyResolutionError) as caught:
        _validate(PolicyEngine(), {"risk_mode": "DEFENSIVE"})
    assert caught.value.field == "context.vix"
