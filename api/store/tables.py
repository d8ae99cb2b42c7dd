"""Database tables (SQLAlchemy Core).

The seed's `portfolio_policies` and `policy_violations`, plus validations, policy versions,
the event outbox, the portfolio hierarchy, versioned reference data, the versions of the
global policy, the decision log (each validation's request, content-addressed), the
transitions of violations, the escalation rules and the webhook deliveries.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = [
    "decision_log",
    "decision_log_blobs",
    "escalation_rule_versions",
    "event_outbox",
    "monitor_positions",
    "monitor_prices",
    "monitor_status",
    "monitor_updates",
    "global_policy_versions",
    "live_violation_keys",
    "metadata",
    "policy_versions",
    "policy_violations",
    "portfolio_policies",
    "portfolios",
    "reference_data_versions",
    "request_blobs",
    "validations",
    "violation_transitions",
    "webhook_deliveries",
]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class Timestamp(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database.

    PostgreSQL keeps the offset; SQLite stores naive text. Values are converted to UTC on the
    way in and marked UTC on the way out, so comparisons and responses agree everywhere.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must carry a timezone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


portfolio_policies = sa.Table(
    "portfolio_policies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("policy_name", sa.String(100), nullable=False, unique=True),
    sa.Column("policy_type", sa.String(32), nullable=False, index=True),
    sa.Column("enforcement_level", sa.String(16), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, index=True),
    sa.Column("definition", JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

policy_versions = sa.Table(
    "policy_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("policy_name", sa.String(100), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("change", sa.String(16), nullable=False),
    sa.Column("definition", JSON, nullable=False),
    sa.Column("diff", JSON, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("changed_at", Timestamp(), nullable=False),
    sa.UniqueConstraint("policy_name", "version", name="uq_policy_versions_name_version"),
)

validations = sa.Table(
    "validations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("decision_id", sa.String(200), nullable=False, unique=True),
    sa.Column("portfolio_id", sa.String(200), nullable=False, index=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("is_compliant", sa.Boolean, nullable=False),
    sa.Column("compliance_score", sa.Float, nullable=False),
    sa.Column("response", JSON, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False, index=True),
)

policy_violations = sa.Table(
    "policy_violations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # Null for a breach the monitor found in a portfolio's holdings (0008: `source`).
    sa.Column(
        "validation_id", sa.Integer, sa.ForeignKey("validations.id"), nullable=True, index=True
    ),
    sa.Column("decision_id", sa.String(200), nullable=False),
    sa.Column("portfolio_id", sa.String(200), nullable=False, index=True),
    sa.Column("policy_name", sa.String(100), nullable=False, index=True),
    sa.Column("policy_type", sa.String(32), nullable=False),
    sa.Column("violation_type", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False, index=True),
    sa.Column("breach", sa.String(16), nullable=False),
    sa.Column("enforcement_level", sa.String(16), nullable=False),
    sa.Column("subject", sa.Text),
    sa.Column("observed", sa.Float, nullable=False),
    sa.Column("limit_value", sa.Float, nullable=False),
    sa.Column("pre_trade", sa.Float, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("suggested_adjustment", JSON),  # null: none suggested, or stored before 0004
    sa.Column("created_at", Timestamp(), nullable=False, index=True),
    sa.Column("resolved", sa.Boolean, nullable=False, index=True),
    sa.Column("resolved_at", Timestamp()),
    sa.Column("resolved_by", sa.String(200)),
    sa.Column("resolution_note", sa.Text),
    # The lifecycle (0007): `resolved` stays in step with `status` for older readers.
    sa.Column("status", sa.String(16), nullable=False, index=True, server_default="open"),
    sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0"),
    sa.Column("acknowledged_at", Timestamp()),
    sa.Column("acknowledged_by", sa.String(200)),
    sa.Column("occurrences", sa.Integer, nullable=False, server_default="1"),
    sa.Column("last_seen_at", Timestamp()),
    sa.Column("last_decision_id", sa.String(200)),
    # validation | monitor (0008): who opened it, a validation's check or `pes monitor`.
    sa.Column("source", sa.String(16), nullable=False, server_default="validation"),
    # A validation reads its portfolio's live violations by key (0009): from this index
    # alone, not every violation the portfolio ever had.
    sa.Index(
        "ix_policy_violations_live_keys",
        "portfolio_id",
        "status",
        "policy_name",
        "violation_type",
        "subject",
    ),
)

live_violation_keys = sa.Table(
    "live_violation_keys",
    metadata,
    sa.Column("portfolio_id", sa.String(200), primary_key=True),
    sa.Column("policy_name", sa.String(100), primary_key=True),
    sa.Column("violation_type", sa.String(64), primary_key=True),
    sa.Column("subject_key", sa.Text, primary_key=True),  # the subject; "" for none
    sa.Column("live_count", sa.Integer, nullable=False),
)
"""Each key (portfolio, policy, violation type, subject) with live (open or acknowledged)
violations, and how many: kept by triggers on `policy_violations` (migration 0010), never
written by the service. A key without live violations has no row."""

violation_transitions = sa.Table(
    "violation_transitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "violation_id",
        sa.Integer,
        sa.ForeignKey("policy_violations.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("from_status", sa.String(16)),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("escalation_level", sa.Integer, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("decision_id", sa.String(200)),
    sa.Column("at", Timestamp(), nullable=False),
)
"""One row per transition of a violation: opened, acknowledged, resolved, cured, reopened,
escalated."""

event_outbox = sa.Table(
    "event_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("payload", JSON, nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False),
    sa.Column("published_at", Timestamp(), index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
)

portfolios = sa.Table(
    "portfolios",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("portfolio_id", sa.String(200), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column(
        "parent_id",
        sa.String(200),
        sa.ForeignKey("portfolios.portfolio_id"),
        nullable=True,
        index=True,
    ),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("benchmark", JSON, nullable=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

reference_data_versions = sa.Table(
    "reference_data_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # universe | risk_model | fx_snapshot
    sa.Column("ref_id", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("content", JSON, nullable=False),
    sa.Column("changes", JSON, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False),
    sa.UniqueConstraint("kind", "ref_id", "version", name="uq_reference_data_versions_version"),
)
"""Immutable versions of registered universes and risk models; the latest is the highest."""

global_policy_versions = sa.Table(
    "global_policy_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False, unique=True),
    sa.Column("change", sa.String(16), nullable=False),  # initial | update | reset
    sa.Column("content", JSON, nullable=False),
    sa.Column("diff", JSON, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("changed_at", Timestamp(), nullable=False),
)
"""Immutable versions of the global policy; the current one is the highest version."""

request_blobs = sa.Table(
    "request_blobs",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("part", sa.String(16), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False),
    sa.Column("last_used_at", Timestamp(), nullable=False, index=True),
)
"""One part of logged requests, stored once: keyed by the SHA-256 of its canonical JSON,
zlib-compressed; `last_used_at` is touched by every validation that logs it."""

decision_log = sa.Table(
    "decision_log",
    metadata,
    sa.Column("validation_id", sa.Integer, sa.ForeignKey("validations.id"), primary_key=True),
    sa.Column("logged_at", Timestamp(), nullable=False, index=True),
    sa.Column("parts", JSON, nullable=False),
    sa.Column("policy_versions", JSON, nullable=False),
    sa.Column("global_policy_version", sa.Integer, nullable=True),
    sa.Column("reference_data", JSON, nullable=True),
)
"""The decision log: per stored validation, the digests of its request's parts, the version
of every policy of the effective set and of the global policy applied."""

decision_log_blobs = sa.Table(
    "decision_log_blobs",
    metadata,
    sa.Column(
        "validation_id",
        sa.Integer,
        sa.ForeignKey("decision_log.validation_id"),
        primary_key=True,
    ),
    sa.Column(
        "digest",
        sa.String(64),
        sa.ForeignKey("request_blobs.digest"),
        primary_key=True,
        index=True,
    ),
)
"""Which blobs each logged validation references: a purge keeps every blob listed here."""

escalation_rule_versions = sa.Table(
    "escalation_rule_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False, unique=True),
    sa.Column("content", JSON, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("changed_at", Timestamp(), nullable=False),
)
"""Immutable versions of the escalation rules; the current one is the highest version."""

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("violation_id", sa.Integer, sa.ForeignKey("policy_violations.id"), nullable=False),
    sa.Column("rule", sa.String(100), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("payload", JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),  # pending|delivered|failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("next_attempt_at", Timestamp(), nullable=False),
    sa.Column("delivered_at", Timestamp()),
    sa.Column("created_at", Timestamp(), nullable=False),
)
"""Each webhook call an escalation asked for: its attempts and outcome."""

monitor_updates = sa.Table(
    "monitor_updates",
    metadata,
    sa.Column("update_id", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # positions | prices
    sa.Column("portfolio_id", sa.String(200)),
    sa.Column("stream_seq", sa.BigInteger, nullable=False),
    sa.Column("processed_at", Timestamp(), nullable=False, index=True),
)
"""Every portfolio-state update `pes monitor` applied, by its id: written in the
transaction of the update's effect, so a redelivered update is recognised and dropped."""

monitor_positions = sa.Table(
    "monitor_positions",
    metadata,
    sa.Column("portfolio_id", sa.String(200), primary_key=True),
    sa.Column("update_id", sa.String(200), nullable=False),
    sa.Column("stream_seq", sa.BigInteger, nullable=False),
    sa.Column("cash", sa.Float, nullable=False),
    sa.Column("positions", JSON, nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
)
"""The latest position snapshot of each monitored portfolio (the monitor's state survives a
restart: updates already acknowledged are not delivered again)."""

monitor_prices = sa.Table(
    "monitor_prices",
    metadata,
    sa.Column("symbol", sa.String(64), primary_key=True),
    sa.Column("price", sa.Float, nullable=False),
    sa.Column("update_id", sa.String(200), nullable=False),
    sa.Column("stream_seq", sa.BigInteger, nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
)
"""The latest price of each symbol from the monitor's price ticks."""

monitor_status = sa.Table(
    "monitor_status",
    metadata,
    sa.Column("consumer", sa.String(100), primary_key=True),
    sa.Column("started_at", Timestamp(), nullable=False),
    sa.Column("heartbeat_at", Timestamp(), nullable=False),
    sa.Column("last_update_at", Timestamp()),
    sa.Column("lag", sa.BigInteger, nullable=False),
    sa.Column("portfolios", sa.Integer, nullable=False),
    sa.Column("consumed", sa.BigInteger, nullable=False),
    sa.Column("duplicates", sa.BigInteger, nullable=False),
    sa.Column("rejected", sa.BigInteger, nullable=False),
    sa.Column("checks", sa.BigInteger, nullable=False),
    sa.Column("breaches_opened", sa.BigInteger, nullable=False),
    sa.Column("breaches_cleared", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # running | stopped
)
"""One row per monitor (by durable consumer name): heartbeat, lag and counters."""
