"""Small helpers that phrase rows for people."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["fixed", "of_subject", "pct"]


def pct(x: float) -> str:
    """A fraction as a percentage with two decimals."""
    return f"{100 * x:.2f}%"


def in_unit(x: float, unit: str) -> str:
    """A row's value as its unit reads: a count as a whole number, the rest as `pct`."""
    return f"{x:.0f}" if unit == "count" else pct(x)


def of_subject(template: str) -> Callable[[str | None], str]:
    """A describer filling `{subject}` into `template`."""
    return lambda subject: template.format(subject=subject)


def fixed(text: str) -> Callable[[str | None], str]:
    """A describer for portfolio-wide rows."""
    return lambda _subject: text
