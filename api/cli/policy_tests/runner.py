"""Running loaded test cases in-process through `PolicyEngine.validate`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from api.cli.policy_tests.expectations import adjustment_status, check_rejection, check_response
from api.cli.policy_tests.loading import LoadedCase, Suite
from api.cli.policy_tests.schema import AdjustmentStatus
from api.field_messages import field_messages
from engine import InputError
from engine.errors import EngineError
from models import PolicyValidationRequest, PolicyValidationResponse

if TYPE_CHECKING:
    from engine import PolicyEngine

__all__ = ["CaseOutcome", "RunSummary", "case_id", "run_case", "run_suites"]


def case_id(path: Path, name: str) -> str:
    """How a case is named in reports and matched by a filter: `FILE::NAME`."""
    return f"{path}::{name}"


@dataclass(frozen=True)
class CaseOutcome:
    """The result of one case: the differences found (none: passed) and its timings."""

    file: Path
    name: str
    problems: list[str]
    elapsed_ms: float
    verdict: str
    stages_ms: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when the engine's answer met every expectation."""
        return not self.problems

    @property
    def id(self) -> str:
        """`FILE::NAME`."""
        return case_id(self.file, self.name)


@dataclass
class RunSummary:
    """Every outcome of a run, with what the run covered."""

    files: int
    outcomes: list[CaseOutcome] = field(default_factory=list)
    deselected: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> list[CaseOutcome]:
        """The cases that did not pass."""
        return [o for o in self.outcomes if not o.passed]


def _verdict(response: PolicyValidationResponse) -> str:
    """A short account of the answer, for verbose listings."""
    rows = len(response.violations)
    text = "compliant" if response.is_compliant else "not compliant"
    text += f", {rows} breach{'es' if rows != 1 else ''}"
    if response.adjusted_decision is not None:
        return f"{text}, adjusted ({response.adjusted_decision.method.value})"
    status = adjustment_status(response)
    return text if status is AdjustmentStatus.NOT_NEEDED else f"{text}, {status.value}"


def run_case(engine: PolicyEngine, suite: Suite, case: LoadedCase) -> CaseOutcome:
    """Validate the case's request against the suite's policies and compare the answer.

    A request the service would reject (invalid fields, or input the engine cannot
    evaluate) is an outcome like any other: it passes only if the case expects that error.
    """
    start = time.perf_counter()
    try:
        request = PolicyValidationRequest.model_validate(case.request)
        response = engine.validate(request, suite.policies, controls=case.controls)
    except (ValidationError, InputError) as exc:
        elapsed = 1000 * (time.perf_counter() - start)
        fields = field_messages(exc)
        rejected = "rejected: " + ", ".join(f for f, _ in fields)
        problems = check_rejection(case.expect, fields)
        return CaseOutcome(suite.path, case.name, problems, elapsed, rejected)
    except EngineError as exc:
        # Not bad input but a failure inside the engine: no expectation can accept it.
        elapsed = 1000 * (time.perf_counter() - start)
        return CaseOutcome(suite.path, case.name, [f"engine error: {exc}"], elapsed, "error")
    elapsed = 1000 * (time.perf_counter() - start)
    problems = check_response(case.expect, response)
    return CaseOutcome(
        suite.path, case.name, problems, elapsed, _verdict(response), dict(response.timings_ms)
    )


def run_suites(
    suites: Iterable[Suite],
    *,
    keyword: str | None = None,
    engine: PolicyEngine | None = None,
    on_outcome: Callable[[CaseOutcome], None] | None = None,
) -> RunSummary:
    """Run every case (those whose `FILE::NAME` contains `keyword`, when given).

    One engine serves the whole run, so compiled problems are shared between cases as they
    would be between requests to the service. `on_outcome` sees each outcome as it comes.
    """
    # Imported here: the engine brings the compiler and cvxpy, which `pes test --help` (and
    # every command, importing this module for its parser) need not load.
    from engine import PolicyEngine

    engine = engine or PolicyEngine()
    suites = list(suites)
    summary = RunSummary(files=len(suites))
    start = time.perf_counter()
    for suite in suites:
        for case in suite.cases:
            if keyword is not None and keyword not in case_id(suite.path, case.name):
                summary.deselected += 1
                continue
            outcome = run_case(engine, suite, case)
            summary.outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    summary.seconds = time.perf_counter() - start
    return summary
