"""The engine's exception tree.

::

    EngineError                  anything the engine raises on purpose
    ├── InputError               the request or a policy is unusable (HTTP 422, CLI exit 2)
    │   ├── UnknownSymbolError   a position or trade names a symbol with no instrument/price
    │   ├── MissingDataError     an attribute, risk model, benchmark or scenario a policy
    │   │                        needs is absent
    │   ├── PolicyResolutionError  applicable_policies names an unknown policy, or a policy's
    │   │                        condition or per-context limit needs a context key the
    │   │                        request lacks (or holds with the wrong type)
    │   ├── NoApplicablePolicies  nothing would be checked: no enabled strict or advisory
    │   │                        policy applies to the portfolio (only when asked to refuse)
    │   └── PolicyEvaluationError  a policy's rows cannot be evaluated on this request (a
    │                            non-finite value, an arithmetic failure): fail closed
    ├── SolverError              every solver in the chain failed (fail closed)
    ├── DeadlineExceeded         the request's deadline passed before the check had a
    │                            verdict (HTTP 503; during adjustment it is a result)
    └── RequestCancelled         the caller abandoned the request; its work stopped

Non-compliance is never an exception: it is a result. Each error carries `field`, the path
of the offending input (``portfolio_state.positions[3].symbol``), so the edges can name it.
"""

from __future__ import annotations

__all__ = [
    "DeadlineExceeded",
    "EngineError",
    "InputError",
    "MissingDataError",
    "NoApplicablePolicies",
    "PolicyEvaluationError",
    "PolicyResolutionError",
    "RequestCancelled",
    "SolverError",
    "UnknownSymbolError",
]


class EngineError(Exception):
    """Base class of every error the engine raises deliberately."""


class InputError(EngineError):
    """The request or a policy cannot be evaluated as given.

    Parameters
    ----------
    field
        Dotted path of the offending input, e.g. ``decision.trades[2].symbol``.
    message
        What is wrong and, where possible, what to do about it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownSymbolError(InputError):
    """A position or trade names a symbol that has no instrument in the request."""


class MissingDataError(InputError):
    """Data a policy needs (attribute, risk model, benchmark, scenarios) is absent."""


class PolicyResolutionError(InputError):
    """The policy set for the request cannot be determined or evaluated."""


class SolverError(EngineError):
    """Every solver in the fallback chain failed; the attempts say how."""


class NoApplicablePolicies(InputError):
    """No enabled strict or advisory policy applies: approving would check nothing."""


class PolicyEvaluationError(InputError):
    """A policy cannot be evaluated on this request; the decision is not validated.

    Parameters
    ----------
    policy_name
        The policy whose rows failed.
    field
        Where in the policy: ``rules.constraints[2] (expression)``.
    message
        What went wrong.
    """

    def __init__(self, policy_name: str, field: str, message: str) -> None:
        super().__init__(f"policy {policy_name!r} {field}", message)
        self.policy_name = policy_name


class DeadlineExceeded(EngineError):
    """The request's deadline passed before `stage`.

    Parameters
    ----------
    stage
        The pipeline stage that was about to run.
    elapsed
        Seconds the request had taken.
    limit
        The request's deadline, in seconds.
    """

    def __init__(self, stage: str, elapsed: float, limit: float) -> None:
        super().__init__(
            f"the request's deadline of {limit:g} s passed after {elapsed:.3g} s, before {stage}"
        )
        self.stage = stage
        self.elapsed = elapsed
        self.limit = limit


class RequestCancelled(EngineError):
    """The caller abandoned the request (e.g. the HTTP client disconnected) before `stage`."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"the request was abandoned by its caller before {stage}")
        self.stage = stage
