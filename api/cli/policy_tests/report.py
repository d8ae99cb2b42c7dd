"""The text report of a run: failures with their differences, timings, a summary line."""

from __future__ import annotations

from api.cli.policy_tests.runner import CaseOutcome, RunSummary

__all__ = ["format_outcome", "format_summary"]

#: The engine's pipeline stages, in the order they run (SPEC's named stages).
_STAGE_ORDER = ("resolve", "weights", "compile", "check", "adjust", "verify")


def _stages(stages_ms: dict[str, float]) -> str:
    known = [s for s in _STAGE_ORDER if s in stages_ms]
    others = sorted(s for s in stages_ms if s not in _STAGE_ORDER and s != "total")
    return ", ".join(f"{s} {stages_ms[s]:.2f}" for s in known + others)


def format_outcome(outcome: CaseOutcome, *, verbose: bool) -> str | None:
    """The lines for one case: always for a failure, for a pass only when verbose.

    Verbose lines carry the case's wall time and, below it, the engine's own stage
    timings (`timings_ms`), so a slow case shows which stage took the time.
    """
    if outcome.passed and not verbose:
        return None
    mark = "PASS" if outcome.passed else "FAIL"
    lines = [f"{mark} {outcome.id} ({outcome.elapsed_ms:.1f} ms): {outcome.verdict}"]
    if verbose and outcome.stages_ms:
        lines.append(f"    engine ms: {_stages(outcome.stages_ms)}")
    for problem in outcome.problems:
        lines += [f"    {line}" for line in problem.splitlines()]
    return "\n".join(lines)


def format_summary(summary: RunSummary) -> str:
    """`N files, M cases: P passed, F failed (T s)`, plus failing ids and deselections."""
    cases = len(summary.outcomes)
    failed = len(summary.failed)
    text = (
        f"{summary.files} file{'s' if summary.files != 1 else ''}, "
        f"{cases} case{'s' if cases != 1 else ''}: {cases - failed} passed, {failed} failed"
    )
    if summary.deselected:
        text += f", {summary.deselected} deselected"
    text += f" ({summary.seconds:.2f} s)"
    if failed:
        text = "\n".join(["", "Failed:", *(f"  {o.id}" for o in summary.failed), text])
    return text
