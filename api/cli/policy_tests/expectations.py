"""Comparing what the engine answered with what a case expects.

Each check returns the differences as readable lines (empty: the case passes), so a failure
report shows every mismatch of a case at once, expected against got, row by row.
"""

from __future__ import annotations

from collections.abc import Sequence

from api.cli.policy_tests.schema import (
    AdjustedExpectation,
    AdjustmentStatus,
    BreachRow,
    ErrorExpectation,
    Expectation,
)
from models import PolicyValidationResponse, Violation

__all__ = ["adjustment_status", "check_rejection", "check_response", "match_rows"]


def adjustment_status(response: PolicyValidationResponse) -> AdjustmentStatus:
    """What became of the adjustment, from the response's fields."""
    if response.adjusted_decision is not None:
        return AdjustmentStatus.ADJUSTED
    if response.infeasible is not None:
        return AdjustmentStatus.INFEASIBLE
    if response.adjustment_error is not None:
        return AdjustmentStatus.FAILED
    if response.is_compliant:
        return AdjustmentStatus.NOT_NEEDED
    return AdjustmentStatus.NOT_REQUESTED


def _subject(subject: str | None) -> str:
    return "(portfolio)" if subject is None else subject


def _expected_text(row: BreachRow) -> str:
    parts = [row.type.value, row.constraint or "(any constraint)"]
    if row.severity is not None:
        parts.append(row.severity.value)
    for name, value in (("observed", row.observed), ("limit", row.limit)):
        if value is not None:
            parts.append(f"{name} {value:g} (±{row.tolerance:g})")
    return " ".join(parts)


def _got_text(v: Violation) -> str:
    return (
        f"{v.breach.value} {v.violation_type} {v.severity.value} observed {v.observed:.6g} "
        f"limit {v.limit:.6g} ({v.description})"
    )


def _close(expected: float | None, actual: float, tolerance: float) -> bool:
    return expected is None or abs(expected - actual) <= tolerance


def _row_matches(row: BreachRow, v: Violation) -> bool:
    return (
        row.policy == v.policy_name
        and row.subject == v.subject
        and row.type == v.breach
        and (row.constraint is None or row.constraint == v.violation_type)
        and (row.severity is None or row.severity == v.severity)
        and _close(row.observed, v.observed, row.tolerance)
        and _close(row.limit, v.limit, row.tolerance)
    )


def match_rows(expected: Sequence[BreachRow], actual: Sequence[Violation]) -> dict[int, int]:
    """A largest one-to-one matching of expected rows to violations (expected → actual).

    Rows without a constraint or severity can match several violations, so a greedy
    first-fit could leave a row unmatched that a different assignment would satisfy;
    augmenting paths (Kuhn's algorithm; the lists are short) find the best assignment.
    """
    owner: dict[int, int] = {}

    def attach(e: int, seen: set[int]) -> bool:
        for a, v in enumerate(actual):
            if a in seen or not _row_matches(expected[e], v):
                continue
            seen.add(a)
            if a not in owner or attach(owner[a], seen):
                owner[a] = e
                return True
        return False

    for e in range(len(expected)):
        attach(e, set())
    return {e: a for a, e in owner.items()}


def _breach_lines(
    expected: Sequence[BreachRow], actual: Sequence[Violation], *, exact: bool
) -> list[str]:
    matched = match_rows(expected, actual)
    spare = [a for a in range(len(actual)) if a not in matched.values()]
    lines = []
    for e, row in enumerate(expected):
        if e in matched:
            continue
        # Show the closest row the engine did report: same policy and subject.
        pool = spare if exact else list(range(len(actual)))
        near = [
            a
            for a in pool
            if actual[a].policy_name == row.policy and actual[a].subject == row.subject
        ]
        head = f"{row.policy} / {_subject(row.subject)}"
        if near:
            if exact:
                spare.remove(near[0])
            lines.append(_diff(f"breach {head}", _expected_text(row), _got_text(actual[near[0]])))
        else:
            lines.append(_diff(f"missing breach {head}", _expected_text(row), "no row"))
    if exact:
        for a in spare:
            v = actual[a]
            head = f"unexpected breach {v.policy_name} / {_subject(v.subject)}"
            lines.append(_diff(head, "no row", _got_text(v)))
    return lines


def _diff(head: str, expected: str, got: str) -> str:
    """A row's difference on three lines: what, then expected and got aligned."""
    return f"{head}\n    expected: {expected}\n    got:      {got}"


def _signed_trades(response: PolicyValidationResponse) -> dict[str, float]:
    assert response.adjusted_decision is not None
    net: dict[str, float] = {}
    for trade in response.adjusted_decision.trades:
        net[trade.symbol] = net.get(trade.symbol, 0.0) + trade.side.sign * trade.quantity
    return net


def _trades_text(trades: dict[str, float]) -> str:
    return "{" + ", ".join(f"{s}: {q:g}" for s, q in sorted(trades.items())) + "}"


def _adjusted_lines(
    want: AdjustedExpectation | str, response: PolicyValidationResponse
) -> list[str]:
    got = response.adjusted_decision
    if isinstance(want, str):  # `adjusted: none`
        if got is None:
            return []
        trades = _trades_text(_signed_trades(response))
        return [f"adjusted: expected none, got {got.method.value} {trades}"]
    if got is None:
        why = response.adjustment_error or (response.infeasible and response.infeasible.message)
        status = adjustment_status(response).value + (f": {why}" if why else "")
        return [f"adjusted: expected an adjusted decision, got none ({status})"]
    lines = []
    if not got.is_compliant:
        lines.append("adjusted: the adjusted decision did not re-check compliant")
    if want.method is not None and want.method != got.method:
        lines.append(f"adjusted.method: expected {want.method.value}, got {got.method.value}")
    if want.trades is not None:
        net = _signed_trades(response)
        for symbol in sorted({*want.trades, *net}):
            expected, actual = want.trades.get(symbol, 0.0), net.get(symbol, 0.0)
            if abs(expected - actual) > want.tolerance:
                lines.append(
                    f"adjusted.trades.{symbol}: expected {expected:g}, got {actual:g} "
                    f"(tolerance {want.tolerance:g})"
                )
    if want.fx_trades is not None:
        fx: dict[str, float] = {}
        for trade in got.fx_trades:
            fx[trade.pair] = fx.get(trade.pair, 0.0) + trade.side.sign * trade.quantity
        for pair in sorted({*want.fx_trades, *fx}):
            expected, actual = want.fx_trades.get(pair, 0.0), fx.get(pair, 0.0)
            if abs(expected - actual) > want.tolerance:
                lines.append(f"adjusted.fx_trades.{pair}: expected {expected:g}, got {actual:g}")
    return lines


def _compare(name: str, expected: object, got: object) -> list[str]:
    return [] if expected == got else [f"{name}: expected {expected}, got {got}"]


def _flag(value: bool) -> str:
    return "true" if value else "false"


def check_response(expect: Expectation, response: PolicyValidationResponse) -> list[str]:
    """Every difference between a verdict and the case's expectations."""
    if expect.error is not None:
        verdict = "compliant" if response.is_compliant else "not compliant"
        return [
            f"error: expected a rejection naming {expect.error.field}, got a verdict "
            f"({verdict}, {len(response.violations)} breach(es))"
        ]
    lines: list[str] = []
    if expect.compliant is not None:
        lines += _compare("compliant", _flag(expect.compliant), _flag(response.is_compliant))
    rows = expect.breaches if expect.no_breaches is None else []
    if rows is not None:
        lines += _breach_lines(rows, response.violations, exact=True)
    if expect.breaches_include is not None:
        lines += _breach_lines(expect.breaches_include, response.violations, exact=False)
    if expect.adjustment_status is not None:
        lines += _compare(
            "adjustment_status", expect.adjustment_status.value, adjustment_status(response).value
        )
    if expect.adjusted is not None:
        lines += _adjusted_lines(expect.adjusted, response)
    if expect.conflicting_policies is not None:
        got = sorted(response.infeasible.conflicting_policies) if response.infeasible else None
        lines += _compare("conflicting_policies", sorted(expect.conflicting_policies), got)
    return lines


def check_rejection(expect: Expectation, problems: Sequence[tuple[str, str]]) -> list[str]:
    """Every difference between a rejection (field, message pairs) and the expectations."""
    got = "; ".join(f"{field}: {message}" for field, message in problems)
    if expect.error is None:
        return [f"expected a verdict, got a rejection: {got}"]
    return _error_lines(expect.error, problems, got)


def _error_lines(
    want: ErrorExpectation, problems: Sequence[tuple[str, str]], got: str
) -> list[str]:
    messages = [message for field, message in problems if field == want.field]
    if not messages:
        return [f"error: expected a rejection naming {want.field}, got {got}"]
    if want.message is None or any(want.message in m for m in messages):
        return []
    return [f"error.message: expected text {want.message!r} in {want.field}, got {got}"]
