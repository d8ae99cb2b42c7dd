"""Prometheus metrics of the service, in a registry of its own (one per app)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.global_controls import GlobalPolicyCache
from api.store import MonitorStatus
from engine import PolicyEngine
from models import ViolationSeverity
from models.enums import RiskMode

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _EngineCollector(Collector):
    """Reads the cache's counters, the outbox backlog and live violations at scrape time."""

    def __init__(
        self,
        engine: PolicyEngine,
        outbox_pending: Callable[[], int],
        open_violations: Callable[[], dict[str, int]] | None,
    ) -> None:
        self.engine = engine
        self.outbox_pending = outbox_pending
        self.open_violations = open_violations

    def collect(self) -> Iterable[Metric]:
        stats = self.engine.cache_stats()
        hits = CounterMetricFamily("pes_compile_cache_hits", "Compiled-problem cache hits.")
        hits.add_metric([], stats.hits)
        misses = CounterMetricFamily("pes_compile_cache_misses", "Compiled-problem cache misses.")
        misses.add_metric([], stats.misses)
        entries = GaugeMetricFamily("pes_compile_cache_entries", "Compiled problems cached.")
        entries.add_metric([], stats.entries)
        pending = GaugeMetricFamily("pes_outbox_pending", "Events waiting in the outbox.")
        try:
            pending.add_metric([], self.outbox_pending())
        except Exception:  # a scrape must not fail because the database is down
            pending.add_metric([], float("nan"))
        found = [hits, misses, entries, pending]
        if self.open_violations is not None:
            found.append(self._open_violations(self.open_violations))
        return found

    @staticmethod
    def _open_violations(read: Callable[[], dict[str, int]]) -> Metric:
        family = GaugeMetricFamily(
            "pes_open_violations",
            "Violations open or acknowledged, by severity.",
            labels=["severity"],
        )
        try:
            counts: dict[str, float] = {k: float(v) for k, v in read().items()}
        except Exception:  # a scrape must not fail because the database is down
            counts = {s.value: float("nan") for s in ViolationSeverity}
        for severity in ViolationSeverity:
            family.add_metric([severity.value], counts.get(severity.value, 0.0))
        return family


class _GlobalPolicyCollector(Collector):
    """The worker's copy of the global policy, read at scrape time (never the database).

    Before the copy was ever loaded the version and ages are NaN and no risk mode is 1.
    """

    def __init__(self, cache: GlobalPolicyCache, listening: Callable[[], bool | None]) -> None:
        self.cache = cache
        self.listening = listening

    def collect(self) -> Iterable[Metric]:
        stored, checked_s = self.cache.peek()
        nan = float("nan")
        version = GaugeMetricFamily(
            "pes_global_policy_version", "Version of the global policy this worker applies."
        )
        age = GaugeMetricFamily(
            "pes_global_policy_age_seconds", "Seconds since that version was written."
        )
        staleness = GaugeMetricFamily(
            "pes_global_policy_staleness_seconds",
            "Seconds since this worker last confirmed its copy is the latest version "
            "(by polling or a notification).",
        )
        mode = GaugeMetricFamily(
            "pes_global_policy_risk_mode",
            "1 for the risk mode applied, 0 for the others.",
            labels=["mode"],
        )
        if stored is None:
            version.add_metric([], nan)
            age.add_metric([], nan)
            staleness.add_metric([], nan)
        else:
            written = (datetime.now(UTC) - stored.last_updated).total_seconds()
            version.add_metric([], stored.version)
            age.add_metric([], max(0.0, written))
            staleness.add_metric([], nan if checked_s is None else checked_s)
        for each in RiskMode:
            applied = stored is not None and stored.policy.risk_mode == each
            mode.add_metric([each.value], 1.0 if applied else 0.0)
        reads = CounterMetricFamily(
            "pes_global_policy_reads",
            "Times this worker read and parsed the global policy (a new version or a start).",
        )
        reads.add_metric([], self.cache.reads)
        notified = CounterMetricFamily(
            "pes_global_policy_notified",
            "New versions this worker applied on a PostgreSQL notification.",
        )
        notified.add_metric([], self.cache.notified_count)
        listening = GaugeMetricFamily(
            "pes_global_policy_listening",
            "1 while this worker listens for changes (PostgreSQL), 0 while it only polls.",
        )
        listening.add_metric([], 1.0 if self.listening() else 0.0)
        return [version, age, staleness, mode, reads, notified, listening]


class _MonitorCollector(Collector):
    """Each `pes monitor`'s status row (api.store.read_monitor_status), read at scrape time."""

    def __init__(self, read: Callable[[], list[MonitorStatus]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "pes_monitor_up",
            "1 while the monitor runs and its heartbeat is fresh; 0 when stopped or stale.",
            labels=["consumer"],
        )
        age = GaugeMetricFamily(
            "pes_monitor_heartbeat_age_seconds",
            "Seconds since the monitor's last heartbeat.",
            labels=["consumer"],
        )
        lag = GaugeMetricFamily(
            "pes_monitor_lag", "Messages pending on the monitor's consumer.", labels=["consumer"]
        )
        counters = {
            name: CounterMetricFamily(
                f"pes_monitor_{name}", f"Monitor {name.replace('_', ' ')}.", labels=["consumer"]
            )
            for name in (
                "consumed",
                "duplicates",
                "rejected",
                "checks",
                "breaches_opened",
                "breaches_cleared",
            )
        }
        try:
            monitors = self.read()
        except Exception:  # a scrape must not fail because the database is down
            monitors = []
        now = datetime.now(UTC)
        for m in monitors:
            up.add_metric([m.consumer], 1.0 if m.health(now) == "running" else 0.0)
            age.add_metric([m.consumer], max((now - m.heartbeat_at).total_seconds(), 0.0))
            lag.add_metric([m.consumer], float(m.lag))
            for name, value in m.counters().items():
                counters[name].add_metric([m.consumer], float(value))
        return [up, age, lag, *counters.values()]


class Metrics:
    """Request counts and latencies per route, validations by outcome, solver time."""

    def __init__(
        self,
        engine: PolicyEngine,
        outbox_pending: Callable[[], int],
        open_violations: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pes_http_requests",
            "HTTP requests.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pes_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.validations = Counter(
            "pes_validations", "Validations by outcome.", ["outcome"], registry=self.registry
        )
        self.solve_seconds = Histogram(
            "pes_adjust_seconds",
            "Time spent adjusting decisions.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(engine, outbox_pending, open_violations))

    def watch_global_policy(
        self, cache: GlobalPolicyCache, listening: Callable[[], bool | None]
    ) -> None:
        """Export this worker's global policy (`pes_global_policy_*`), read at each scrape.

        `listening` says whether a listener hears changes now (None: none runs).
        """
        self.registry.register(_GlobalPolicyCollector(cache, listening))

    def watch_monitors(self, read: Callable[[], list[MonitorStatus]]) -> None:
        """Export every monitor's health, heartbeat age, lag and counters (`pes_monitor_*`)."""
        self.registry.register(_MonitorCollector(read))
