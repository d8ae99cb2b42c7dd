"""Policy tests (`pes test`): files that pair requests with the verdicts they must get.

::

    discover(path)  →  load_suite(file) → Suite  →  run_suites(suites) → RunSummary
                                                     └ per case: engine.validate, compare

`run_policy_tests` is the whole command: it finds, loads and runs the test files and writes
the report; its return value is the exit status (0 passed, 1 failed, 2 unusable tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from api.cli.policy_tests.loading import (
    TEST_FILE_SUFFIXES,
    PolicyTestFileError,
    Suite,
    discover,
    load_suite,
)
from api.cli.policy_tests.report import format_outcome, format_summary
from api.cli.policy_tests.runner import CaseOutcome, RunSummary, run_suites
from api.cli.policy_tests.schema import PolicyTestFile

if TYPE_CHECKING:
    from engine import PolicyEngine

__all__ = [
    "EXIT_FAILED",
    "EXIT_PASSED",
    "EXIT_UNUSABLE",
    "TEST_FILE_SUFFIXES",
    "CaseOutcome",
    "PolicyTestFile",
    "PolicyTestFileError",
    "RunSummary",
    "Suite",
    "discover",
    "load_suite",
    "run_policy_tests",
    "run_suites",
]

EXIT_PASSED, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


def _load_all(paths: Sequence[Path], err: TextIO) -> list[Suite] | None:
    """Every suite under `paths`, or None after reporting every problem found."""
    problems: list[str] = []
    files: list[Path] = []
    for path in paths:
        try:
            found = discover(path)
        except PolicyTestFileError as exc:
            problems.append(str(exc))
            continue
        if not found:
            suffixes = " or ".join(f"*{s}" for s in TEST_FILE_SUFFIXES)
            problems.append(f"{path}: no test files ({suffixes}) found")
        files += [f for f in found if f not in files]
    suites = []
    for file in files:
        try:
            suites.append(load_suite(file))
        except PolicyTestFileError as exc:
            problems.append(str(exc))
    if problems:
        for problem in problems:
            print(f"pes test: {problem}".replace("\n", "\npes test: "), file=err)
        return None
    return suites


def run_policy_tests(
    paths: Sequence[Path],
    *,
    keyword: str | None = None,
    verbose: bool = False,
    out: TextIO,
    err: TextIO,
    engine: PolicyEngine | None = None,
) -> int:
    """Find, load and run the test files under `paths`; report to `out`; the exit status.

    Every test file is loaded before any case runs: if one is unusable (unreadable, an
    unknown key, a missing request or policy file), all such problems go to `err` and
    nothing runs (status 2). So does a run with nothing to test (no files, or a `keyword`
    that matches no case): a typo in a CI path must not pass silently.
    """
    suites = _load_all(paths, err)
    if suites is None:
        return EXIT_UNUSABLE

    def show(outcome: CaseOutcome) -> None:
        text = format_outcome(outcome, verbose=verbose)
        if text is not None:
            print(text, file=out, flush=True)

    summary = run_suites(suites, keyword=keyword, engine=engine, on_outcome=show)
    if not summary.outcomes:
        print(f"pes test: no case matches {keyword!r}", file=err)
        return EXIT_UNUSABLE
    print(format_summary(summary), file=out)
    return EXIT_FAILED if summary.failed else EXIT_PASSED
