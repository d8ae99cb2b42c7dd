"""Service settings: one pydantic-settings class, read from `PES_*` environment variables."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["EventsBackend", "Role", "Settings"]


class EventsBackend(StrEnum):
    """Where validation events are relayed from the outbox."""

    NONE = "none"
    LOG = "log"
    NATS = "nats"
    PULSAR = "pulsar"


class Role(StrEnum):
    """API roles; each includes the ones before it."""

    READER = "reader"
    VALIDATOR = "validator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """True when this role may do what `needed` may."""
        order = [Role.READER, Role.VALIDATOR, Role.ADMIN]
        return order.index(self) >= order.index(needed)


class Settings(BaseSettings):
    """Everything the service reads from its environment (prefix `PES_`)."""

    model_config = SettingsConfigDict(env_prefix="PES_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///pes.db",
        description="SQLAlchemy URL; PostgreSQL as postgresql+psycopg://user@host/db.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes of `pes serve`, each with its own engine (one request at "
        "a time each), sharing the database; several suit PostgreSQL best.",
    )
    events: EventsBackend = EventsBackend.LOG
    nats_url: str = "nats://127.0.0.1:4222"
    nats_stream: str = "PES_EVENTS"
    nats_subject: str = "pes.events.policy_validation_completed"
    nats_notify_prefix: str = Field(
        default="pes.escalations",
        pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
        description="Escalation rules' `notify` subjects are published under it, on the "
        "same stream.",
    )
    monitor_stream: str = Field(
        default="PES_STATE",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="`pes monitor`: the JetStream stream of portfolio-state updates (created "
        "with the subjects <monitor_prefix>.> if absent).",
    )
    monitor_prefix: str = Field(
        default="pes.state",
        pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
        description="`pes monitor`: updates arrive on <prefix>.positions.<portfolio> and "
        "<prefix>.prices.",
    )
    monitor_consumer: str = Field(
        default="pes-monitor",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="`pes monitor`: the durable consumer's name (and its status row's).",
    )
    monitor_universe: str | None = Field(
        default=None,
        description="`pes monitor`: the registered universe (instruments and their "
        "attributes, first prices) the portfolios are checked over.",
    )
    monitor_batch_max: int = Field(
        default=1000, ge=1, le=100_000, description="`pes monitor`: most updates a round applies."
    )
    monitor_batch_ms: float = Field(
        default=20.0,
        gt=0,
        le=10_000,
        description="`pes monitor`: longest wait for more updates after a round's first.",
    )
    monitor_ack_wait_s: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="`pes monitor`: JetStream redelivers an update not acknowledged within "
        "this (set when the consumer is created; a round takes far less).",
    )
    monitor_keep_updates_h: float = Field(
        default=24.0,
        ge=1,
        le=24 * 365,
        description="`pes monitor`: hours an applied update's id is kept to recognise it "
        "delivered again (longer than the ack wait and the stream's duplicate window).",
    )
    monitor_reload_s: float = Field(
        default=5.0,
        ge=0.5,
        le=3600,
        description="`pes monitor`: how often the stored policies, portfolio tree and "
        "universe are compared with the monitor's (a change re-checks every portfolio).",
    )
    pulsar_url: str = "pulsar://127.0.0.1:6650"
    pulsar_topic: str = "persistent://public/default/pes-policy-validation-completed"
    relay_interval_s: float = Field(default=0.5, gt=0, description="Outbox poll period.")
    relay_batch: int = Field(default=100, ge=1)
    db_connect_timeout_s: float = Field(
        default=5.0, gt=0, description="Longest wait for a new PostgreSQL connection (min. 2 s)."
    )
    db_statement_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="PostgreSQL cancels a statement after this; the service gives up on an "
        "answer 2 s later (a network that moves no data) and answers 503.",
    )
    db_pool_timeout_s: float = Field(
        default=5.0, gt=0, description="Longest wait for a free connection from the pool."
    )
    readyz_timeout_s: float = Field(
        default=5.0, gt=0, description="GET /readyz answers 503 when its checks take longer."
    )
    api_keys: dict[str, Role] = Field(
        default_factory=dict,
        description='API key -> role, e.g. PES_API_KEYS=\'{"k1": "admin", "k2": "reader"}\'.',
    )
    insecure: bool = Field(default=False, description="Allow a non-loopback host without API keys.")
    max_body_bytes: int = Field(default=5_000_000, ge=1024)
    max_reference_body_bytes: int = Field(
        default=50_000_000,
        ge=1024,
        description="Body limit of PUT /api/v1/universes/* and /api/v1/risk-models/*.",
    )
    reference_cache_size: int = Field(
        default=16, ge=1, description="Parsed universe / risk-model versions kept in memory."
    )
    engine_cache_size: int = Field(default=64, ge=1)
    global_policy_refresh_s: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="Longest time a worker applies its copy of the global policy without "
        "asking the database for the latest version (one indexed query); a change made "
        "through another worker is applied within this bound (docs/global-policy.md).",
    )
    global_policy_listen: bool = Field(
        default=True,
        description="On PostgreSQL, hold a connection listening for global-policy changes "
        "(LISTEN pes_global_policy), so that a change is applied by every worker in "
        "milliseconds; polling every global_policy_refresh_s stays the safety net. Turn off "
        "behind a pooler that cannot hold LISTEN (PgBouncer in transaction mode).",
    )
    request_deadline_s: float = Field(
        default=5.0,
        gt=0,
        description="Seconds a validation may take, waiting for the engine included. Late "
        "before the check has a verdict: 503 deadline_exceeded; late while adjusting: not "
        "compliant, with adjustment_error saying the adjustment timed out.",
    )
    gc_freeze: bool = Field(
        default=True,
        description="Freeze long-lived objects out of the garbage collector's full "
        "collections (pes serve: at start-up and after a cache grows; pes monitor: once its "
        "state is loaded and after each reload); see api/heap.py.",
    )
    gc_reclaim_mb: float = Field(
        default=64.0,
        ge=0,
        description="pes serve, with gc_freeze: resident memory (MiB) the process must have "
        "gained since the last full collection before the next one (a ~190 ms pause) is run "
        "to reclaim evicted cache entries; 0 runs one each time the caches have turned over. "
        "See api/heap.py.",
    )
    approve_when_no_policy_applies: bool = Field(
        default=False,
        description="Answer compliant when no enabled strict or advisory policy applies to a "
        "portfolio; off by default: such a validation is refused with 422 "
        "no_applicable_policies, and /readyz is not ready while no policy is stored.",
    )
    decision_log: bool = Field(
        default=True,
        description="Keep each stored validation's request and the policy versions applied "
        "(docs/decision-log.md); off, validations are stored without and cannot be replayed.",
    )
    decision_log_retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="`pes log purge` deletes log entries older than this (unset: keep all).",
    )
    replay_max_decisions: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Most logged decisions one replay runs; more is refused (422, exit 2).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    escalation_interval_s: float = Field(
        default=10.0,
        ge=0,
        description="How often the escalation rules are evaluated over the live violations "
        "and due webhooks are sent; 0 turns the escalation worker off.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Signs escalation webhooks (HMAC-SHA256, header X-PES-Signature); "
        "without it a webhook is never sent (its delivery fails, saying why).",
    )
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=6, ge=1, le=50)
    webhook_backoff_s: float = Field(
        default=2.0,
        gt=0,
        description="Wait before the second attempt; doubled after each failed attempt.",
    )
    ui_secret: SecretStr | None = Field(
        default=None,
        description="Signs the dashboard's session cookies (/ui). Unset: derived from the API "
        "keys, so every worker derives the same one and changing the keys ends every session.",
    )
    ui_session_hours: float = Field(
        default=8.0, gt=0, le=24 * 30, description="How long a dashboard login lasts."
    )

    def host_is_loopback(self) -> bool:
        """True when `host` only accepts local connections."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def bind_problem(self) -> str | None:
        """Why serving on `host` is refused, or None when it is allowed."""
        if self.api_keys or self.insecure or self.host_is_loopback():
            return None
        return (
            f"refusing to listen on {self.host} without API keys: set PES_API_KEYS, bind to "
            "127.0.0.1, or pass --insecure"
        )
