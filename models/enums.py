"""Enumerations of the wire contract (the seed's names are kept verbatim)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AdjustmentMethod",
    "BreachKind",
    "EnforcementLevel",
    "PolicyType",
    "RiskMode",
    "Side",
    "ValidationMode",
    "ViolationSeverity",
]


class ViolationSeverity(StrEnum):
    """How serious a breach is; ordered from LOW to CRITICAL."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        """Position in the LOW < MEDIUM < HIGH < CRITICAL order (0-based)."""
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = [
    ViolationSeverity.LOW,
    ViolationSeverity.MEDIUM,
    ViolationSeverity.HIGH,
    ViolationSeverity.CRITICAL,
]


class PolicyType(StrEnum):
    """The business family a policy belongs to."""

    POSITION_LIMIT = "POSITION_LIMIT"
    SECTOR_LIMIT = "SECTOR_LIMIT"
    RISK_LIMIT = "RISK_LIMIT"
    REGULATORY = "REGULATORY"
    INVESTMENT_MANDATE = "INVESTMENT_MANDATE"


class RiskMode(StrEnum):
    """The platform's risk mode (the global policy's `risk_mode`; conditions read it)."""

    AGGRESSIVE = "AGGRESSIVE"
    NORMAL = "NORMAL"
    DEFENSIVE = "DEFENSIVE"


class EnforcementLevel(StrEnum):
    """What a breach of the policy does: block, warn, or only get recorded."""

    STRICT = "strict"
    ADVISORY = "advisory"
    MONITOR = "monitor"


class Side(StrEnum):
    """Trade direction; BUY adds to the signed quantity, SELL subtracts."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL."""
        return 1 if self is Side.BUY else -1


class ValidationMode(StrEnum):
    """`validate` checks only; `adjust` also solves for a compliant decision."""

    VALIDATE = "validate"
    ADJUST = "adjust"


class AdjustmentMethod(StrEnum):
    """Which adjustment problem to solve (SPEC section 6)."""

    AUTO = "auto"
    SCALE_BACK = "scale_back"
    PROJECT = "project"


class BreachKind(StrEnum):
    """Active: the decision creates or worsens the breach. Passive: it pre-existed."""

    ACTIVE = "active"
    PASSIVE = "passive"
