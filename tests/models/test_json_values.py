"""Free-form JSON (contexts, instrument attributes, `where` values) holds only numbers every
JSON consumer reads back exactly: finite, and integers within ±(2**53 - 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from api.field_messages import describe_validation_error, field_messages
from models import PolicyDefinition, PolicyValidationRequest
from models.base import MAX_JSON_INT
from models.capacity import CapacityRequest
from models.export import ConstraintSetRequest

REQUEST = Path(__file__).resolve().parents[2] / "examples" / "requests" / "aapl-overweight.json"
HUGE = 10**400


def _request() -> dict[str, Any]:
    data = json.loads(REQUEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _fields(model: type[BaseModel], data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return field_messages(info.value)


@pytest.mark.parametrize(
    "model",
    [PolicyValidationRequest, ConstraintSetRequest, CapacityRequest],
    ids=lambda m: m.__name__,
)
def test_an_out_of_range_context_integer_is_named(model: type[BaseModel]) -> None:
    body = _request()
    if model is not PolicyValidationRequest:
        body = {"portfolio_state": body["portfolio_state"]}
    body["context"] = {"foo": HUGE, "ok": MAX_JSON_INT, "deep": {"list": [1, -(MAX_JSON_INT + 1)]}}
    fields = _fields(model, body)
    assert [f for f, _ in fields] == ["context.foo", "context.deep.list[1]"]
    assert all("2**53 - 1" in message for _, message in fields)


def test_the_limit_itself_and_big_floats_are_accepted() -> None:
    body = _request()
    body["context"] = {"a": MAX_JSON_INT, "b": -MAX_JSON_INT, "c": 1e300, "flag": True}
    assert PolicyValidationRequest.model_validate(body).context["a"] == MAX_JSON_INT


def test_the_json_parser_path_reports_the_same_field() -> None:
    raw = json.dumps({**_request(), "context": {"foo": 0}}).replace('"foo": 0', f'"foo": {HUGE}')
    with pytest.raises(ValidationError) as info:
        PolicyValidationRequest.model_validate_json(raw)
    assert describe_validation_error(info.value).startswith("context.foo: Input should be")
    # The 400-digit input is summarized, not echoed.
    assert info.value.errors()[0]["input"] == f"an integer of {HUGE.bit_length()} bits"


def test_an_out_of_range_attribute_is_named() -> None:
    body = _request()
    body["portfolio_state"]["instruments"][0]["attributes"] = {"beta": HUGE}
    fields = {f for f, _ in _fields(PolicyValidationRequest, body)}
    assert any(f.startswith("portfolio_state.instruments[0].attributes.beta") for f in fields)


def test_an_out_of_range_where_value_is_named() -> None:
    policy = {
        "policy_name": "p",
        "policy_type": "POSITION_LIMIT",
        "rules": {"constraints": [{"kind": "allowed_universe", "where": {"rating": [1, HUGE]}}]},
    }
    fields = {f for f, _ in _fields(PolicyDefinition, policy)}
    assert any("where.rating[1]" in f for f in fields), fields
