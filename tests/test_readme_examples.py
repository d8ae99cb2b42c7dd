"""The README's example response is what the service really answers, and its packaging advice
is what pyproject.toml offers.

"What a response says" shows, abridged, the answer to examples/requests/aapl-overweight.json
against examples/policies. Every value it shows must be in the real answer: strings, booleans
and numbers (to the digits shown) equal, object keys present, list items found in order
(`...` marks what is left out). Timings vary from run to run: only their stage names count.
"""

from __future__ import annotations

import json
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from api.cli import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
REQUEST = REPO / "examples" / "requests" / "aapl-overweight.json"
POLICIES = REPO / "examples" / "policies"


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end >= 0 else len(README)]


def _shown_response() -> dict[str, Any]:
    """The jsonc block of "What a response says", comments and `...` elisions removed."""
    block = re.search(r"```jsonc\n(.*?)```", _section("What a response says"), re.DOTALL)
    assert block, "no jsonc block in 'What a response says'"
    text = re.sub(r"//[^\n]*", "", block.group(1))
    text = re.sub(r",\s*\.\.\.\s*(?=[}\]])", "", text)
    data = json.loads(text, parse_float=Decimal)
    assert isinstance(data, dict)
    return data


def _matches(shown: Any, real: Any, path: str) -> list[str]:
    """Where `shown` is not found in `real` (empty: it is)."""
    if isinstance(shown, dict):
        if not isinstance(real, dict):
            return [f"{path}: shown an object, got {real!r}"]
        problems = []
        for key, value in shown.items():
            if key not in real:
                problems.append(f"{path}.{key}: not in the answer")
            elif key == "timings_ms":
                missing = set(value) - set(real[key])
                problems += [f"{path}.{key}: no stage {missing}"] if missing else []
            else:
                problems += _matches(value, real[key], f"{path}.{key}")
        return problems
    if isinstance(shown, list):
        return _in_order(shown, real, path)
    if isinstance(shown, Decimal):
        exponent = shown.as_tuple().exponent
        assert isinstance(exponent, int)
        close = isinstance(real, int | float) and abs(Decimal(str(real)) - shown) <= Decimal(
            5
        ).scaleb(exponent - 1)
        return [] if close else [f"{path}: shown {shown}, got {real!r}"]
    same = shown == real and type(shown) is type(real)
    return [] if same else [f"{path}: shown {shown!r}, got {real!r}"]


def _in_order(shown: list[Any], real: Any, path: str) -> list[str]:
    """Each shown item matches a later real item than the one before it."""
    if not isinstance(real, list):
        return [f"{path}: shown a list, got {real!r}"]
    k = 0
    for i, item in enumerate(shown):
        while k < len(real) and _matches(item, real[k], path):
            k += 1
        if k == len(real):
            return [f"{path}[{i}]: {item!r} not in the answer (in this order)"]
        k += 1
    return []


def test_the_readme_response_is_the_real_answer(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["validate", str(REQUEST), "--policies", str(POLICIES)])
    real = json.loads(capsys.readouterr().out)
    shown = _shown_response()
    assert status == (0 if shown["is_compliant"] else 1)
    assert _matches(shown, real, "response") == []


def test_the_matcher_catches_a_wrong_value() -> None:
    shown = _shown_response()
    real = json.loads(json.dumps(shown, default=float))
    assert _matches(shown, real, "r") == []
    real["adjusted_decision"]["solver"] = "OTHER"
    real["violations"][0]["observed"] = 0.21
    problems = _matches(shown, real, "r")
    assert any("solver" in p for p in problems) and any("observed" in p for p in problems)


def test_the_notebooks_extra_is_what_the_readme_installs() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extra = project["optional-dependencies"]["notebooks"]
    assert any(re.match(r"jupyterlab\s*>=\s*4", r) and "<5" in r for r in extra), extra
    assert "pip install -e '.[notebooks]' && jupyter lab notebooks/" in _section("Notebooks")
