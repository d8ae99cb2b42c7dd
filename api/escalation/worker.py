"""The escalation worker: the rules over the live violations, then the due webhooks.

It runs on an interval in the background of each service process, never in a validation's
path.

Several processes may run it at once: raising a level is a locked, conditional update
(`EscalationStore.escalate` changes nothing when the violation is already at the level),
so a violation is escalated, announced and sent to its webhook once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from api.escalation.rules import ViolationFacts, decide
from api.escalation.webhooks import WebhookSender
from api.store import Store, StoredViolation

__all__ = ["EscalationWorker", "Escalator"]

log = logging.getLogger("pes.escalation")


class Escalator:
    """One evaluation of the current rules over the live violations."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run_once(self, now: datetime | None = None) -> int:
        """Escalate what the rules say; the number of violations escalated."""
        now = now or datetime.now(UTC)
        current = self.store.escalations.current()
        if current is None or not current.rules.rules:
            return 0
        rules = current.rules.rules
        windows = {r.when.repeat_window_days for r in rules}
        repeats = {
            w: self.store.escalations.repeats(since=now - timedelta(days=w)) for w in windows
        }
        lineages: dict[str, tuple[str, ...]] = {}
        raised = 0
        for v in self.store.violations.live():
            if v.portfolio_id not in lineages:
                nodes = self.store.portfolios.lineage(v.portfolio_id)
                lineages[v.portfolio_id] = tuple(n.portfolio_id for n in nodes) or (v.portfolio_id,)
            facts = _facts(v, now, lineages[v.portfolio_id], repeats)
            rule = decide(rules, facts)
            if rule is None or rule.level <= v.escalation_level:
                continue
            reason = f"rule {rule.name} (level {rule.level})" + (
                f": {rule.description}" if rule.description else ""
            )
            done = self.store.escalations.escalate(
                v.id, rule, actor=f"escalation rules v{current.version}", reason=reason, now=now
            )
            raised += done is not None
        return raised


def _facts(
    v: StoredViolation,
    now: datetime,
    portfolio_ids: tuple[str, ...],
    repeats: dict[float, dict[tuple[str, str, str, str], int]],
) -> ViolationFacts:
    f = v.violation
    key = (v.portfolio_id, f["policy_name"], f["violation_type"], f["subject"] or "")
    return ViolationFacts(
        policy_name=f["policy_name"],
        severity=f["severity"],
        age_hours=(now - v.created_at).total_seconds() / 3600,
        repeats_within={w: counts.get(key, 0) for w, counts in repeats.items()},
        portfolio_ids=portfolio_ids,
    )


class EscalationWorker:
    """Runs the escalator and the webhook sender every `interval_s` until stopped."""

    def __init__(
        self,
        escalator: Escalator,
        sender: WebhookSender,
        *,
        interval_s: float,
        stop_grace_s: float = 30.0,
    ) -> None:
        self.escalator, self.sender, self.interval_s = escalator, sender, interval_s
        self.stop_grace_s = stop_grace_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Wait, then evaluate and send; errors are logged and the next round tries again."""
        while not await self._wait(self.interval_s):
            try:
                await asyncio.to_thread(self.escalator.run_once)
                await asyncio.to_thread(self.sender.send_due)
            except Exception as exc:  # the database may be briefly unreachable: keep going
                log.warning("escalation round failed: %s", str(exc).splitlines()[0])

    async def _wait(self, seconds: float) -> bool:
        """Sleep `seconds`; True as soon as a stop is asked for."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    def start(self) -> None:
        """Run in the background of the current event loop."""
        self._stopping.clear()
        self._task = asyncio.get_running_loop().create_task(self.run(), name="escalation")

    async def stop(self) -> None:
        """Stop once the round in flight has finished.

        A round's database work runs in a thread that cannot be interrupted: waiting for
        it keeps it from using the store after the service has closed it. A round still
        running after `stop_grace_s` is abandoned (cancelled; its thread ends on its own).
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(task, timeout=self.stop_grace_s)
        except TimeoutError:
            log.warning("escalation round still running after %.0f s: abandoned", self.stop_grace_s)
