"""Known limits of the engine that a test accepts, counted against an explicit budget.

A randomized test compares the engine with an oracle on every case. Where the engine is
known to fall short on a class of cases (and says so rather than answering wrongly), the
test does not skip the case: it calls :meth:`KnownLimits.accept`, which records a
``hypothesis.event`` (shown by ``pytest --hypothesis-show-statistics``) and counts it. When
the module's tests are done, the module-scoped fixture that holds the counts fails if any
limit was met more often than its budget, or if a case met a limit nobody declared.

Usage, in a test module::

    LIMITS = {"whole-lot search": Limit(budget=3, reason="...")}

    @pytest.fixture(scope="module")
    def known_limits() -> Iterator[KnownLimits]:
        yield from counting(LIMITS)

The budgets count the cases one process runs: under pytest-xdist a module's cases may be
split between workers, and each worker checks its own share.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from hypothesis import event
from hypothesis.control import currently_in_test_context


@dataclass(frozen=True)
class Limit:
    """A known limit: how often the module's cases may meet it, and why it is accepted."""

    budget: int
    reason: str


@dataclass
class KnownLimits:
    """Counts of the known limits met by a module's cases."""

    limits: Mapping[str, Limit]
    seen: dict[str, int] = field(default_factory=dict)

    def accept(self, name: str) -> None:
        """Count one case that met the known limit `name` (which must be declared)."""
        assert name in self.limits, f"undeclared known limit {name!r}"
        self.seen[name] = self.seen.get(name, 0) + 1
        if currently_in_test_context():
            event(f"known limit: {name}")

    def over_budget(self) -> list[str]:
        """One line per limit met more often than its budget allows."""
        return [
            f"{name}: met {count} times, budget {self.limits[name].budget} "
            f"({self.limits[name].reason})"
            for name, count in sorted(self.seen.items())
            if count > self.limits[name].budget
        ]


def counting(limits: Mapping[str, Limit]) -> Iterator[KnownLimits]:
    """Body of a module-scoped fixture: yield the counter, then fail past any budget."""
    counter = KnownLimits(limits)
    yield counter
    over = counter.over_budget()
    assert not over, "known limits over budget:\n" + "\n".join(over)
