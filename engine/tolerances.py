r"""Every numeric tolerance of the engine, and of the solvers it drives, in one place.

A leaf module: it imports nothing from `engine` (only `solvers.tolerances`, which imports
nothing either), so any stage may import it.

Hierarchy
---------
By what each one may decide (the brief form: verdict 1e-9 > solver tolerances 1e-8 .. 1e-10
> certificate 1e-12 > comparison noise 1e-13 > float noise 1e-14)::

    verdict        TOLERANCE 1e-9 (absolute, weight / vol units)
    │              the only number a compliance answer depends on; THRESHOLD_TOLERANCE
    │              and OPEN_POSITION (equal) and HALF_TOLERANCE (half) are derived from it;
    │              BATCH_RECHECK_BAND 1e-11 (relative to 1 + ||w||_1) sends a batch-checked
    │              vector near a verdict's threshold to the single-request checker
    ├─ tightening  SOLVER_MARGIN 1e-7 (absolute): numerically larger than TOLERANCE, but it
    │              decides no verdict: the adjuster hands the solvers bounds tightened by it
    │              (with BINDING_GAP, BINDING_DUAL, CONFLICT_SUPPORT reading their answers),
    │              so an answer within a solver's own tolerance of a tightened bound is still
    │              inside the true limit, and solver tolerance never leaks into a verdict
    ├─ solvers     INTERIOR_POINT_TOLERANCE 1e-8, OSQP_TOLERANCE 1e-9, MIP_FEASIBILITY
    │              1e-10, INTERIOR_POINT_REFINEMENT_TOLERANCE 1e-10 (of each linear solve,
    │              no termination test) (solver-defined): every answer is re-checked by
    │              `engine.check.checker` at TOLERANCE, so solver error can only cost a
    │              retry or a rejection, never a wrong verdict
    ├─ certificate CERTIFICATE_FEASIBILITY 1e-12 (relative to max(1, |bound|)): the
    │              separable QP's own certificate, three orders inside TOLERANCE;
    │              PSD_TOLERANCE, SYMMETRY_ATOL/RTOL accept input covariances
    ├─ comparison  SCREEN_MARGIN 1e-9, SCORE_NOISE 1e-13 (absolute, score units): when two
    │              candidate moves count as equally good; SNAP_WEIGHT, FRACTIONAL_SHARE_STEP
    │              are search resolutions, MARGIN_MOVED_FRACTION reads an exported bound
    └─ float noise FLOAT_NOISE 1e-14 (relative) and the integer snaps (LOT_UNITS_SNAP,
                   CVAR_TAIL_SNAP): rounding error only, far below anything above

Outside the engine (they may not import it): the export margin's default
`models.export.DEFAULT_MARGIN` (1e-7, equal to SOLVER_MARGIN) and the policy-test runner's
`api.cli.policy_tests.schema.DEFAULT_VALUE_TOLERANCE` (1e-4, comparing expected values
written to four decimals, not a compliance tolerance).

Reading rules: a relative tolerance says what it is relative to; an absolute one says its
units. Weights are fractions of the portfolio's value (order one), so an absolute tolerance
in weight units behaves like a relative one for them; see the findings below for where that
does not hold.

Findings (documented, not changed: no behaviour change in the move here)
------------------------------------------------------------------------
- `TOLERANCE` (and so `SOLVER_MARGIN`, `BINDING_GAP`) is absolute. For weight rows that is
  right (weights are order one). Rows in other units (volatility, leverage as a multiple,
  a count-like regulatory measure) would want a tolerance relative to max(1, |limit|), as
  `CERTIFICATE_FEASIBILITY` already is.
- `LOT_UNITS_SNAP` is absolute in lots: beyond ~1e7 lots a double cannot resolve 1e-9, so
  the snap silently stops acting; relative to max(1, |units|) would keep its meaning.
- `CVAR_TAIL_SNAP` is absolute in scenarios: the rounding error of `(1 - beta) * S` grows
  with S (~S * 2.2e-16), which passes 1e-12 from about 4,500 scenarios on; relative to S
  would be right.
- `BINDING_DUAL` is absolute on duals unscaled by `OBJECTIVE_SCALE`; it would be more
  naturally relative to the objective's scale.
- `SOLVER_MARGIN` and `BINDING_GAP` are equal (1e-7), but nothing ties them: a row the
  adjuster tightened by the margin sits within the gap of its true bound. They stay two
  names because they bound different things (room left for solvers; reading which rows bind).
- `SCREEN_MARGIN` (1e-9) and `SCORE_NOISE` (1e-13) both separate "equally good" scores,
  absolutely, four orders apart; scores are sums of excesses, so for large violations
  both would be better relative to the score.
"""

from __future__ import annotations

from solvers.tolerances import (
    HIGHS_MAX_OBJECTIVE_ERROR,
    INTERIOR_POINT_REFINEMENT_TOLERANCE,
    INTERIOR_POINT_TOLERANCE,
    OSQP_TOLERANCE,
)

__all__ = [
    "BATCH_RECHECK_BAND",
    "BINDING_DUAL",
    "BINDING_GAP",
    "CERTIFICATE_FEASIBILITY",
    "CONFLICT_SUPPORT",
    "CVAR_TAIL_SNAP",
    "FLOAT_NOISE",
    "FRACTIONAL_SHARE_STEP",
    "HALF_TOLERANCE",
    "HIGHS_MAX_OBJECTIVE_ERROR",
    "INTERIOR_POINT_REFINEMENT_TOLERANCE",
    "INTERIOR_POINT_TOLERANCE",
    "LOT_UNITS_SNAP",
    "MARGIN_MOVED_FRACTION",
    "MIP_FEASIBILITY",
    "OSQP_TOLERANCE",
    "PSD_TOLERANCE",
    "SCORE_NOISE",
    "SCREEN_MARGIN",
    "SNAP_WEIGHT",
    "SOLVER_MARGIN",
    "SYMMETRY_ATOL",
    "SYMMETRY_RTOL",
    "OPEN_POSITION",
    "THRESHOLD_TOLERANCE",
    "TOLERANCE",
]

# -- the verdict ------------------------------------------------------------------------

TOLERANCE = 1e-9
"""A row is breached when its excess exceeds this (weight units; vol units for risk rows).

Absolute. The service's one verdict tolerance: `engine.check.checker` compares every row
with it, before and after, and every other tolerance here is either derived from it or
sits below it so that it cannot change a verdict.
"""

HALF_TOLERANCE = TOLERANCE / 2
"""The slack the rounding searches' violation totals grant each row before they count its
excess (absolute, units of the row). Half, so that a row the search counts as clean is
clean at `TOLERANCE` with room to spare for the incremental tracker's rounding."""

OPEN_POSITION = TOLERANCE
"""A position counts as open when its weight exceeds this in absolute value (weight units):
the verdict tolerance, so that a weight a solver leaves within it of zero is closed."""

THRESHOLD_TOLERANCE = TOLERANCE
"""A group counts as above a threshold when it exceeds it by more than this (absolute,
weight units): equal to `TOLERANCE`, so that a group the solver holds at the threshold up
to solver error is not counted (a test holds the two equal)."""

BATCH_RECHECK_BAND = 1e-11
"""The batch checker (`engine.batch`) re-checks a weight vector through the single-request
checker when one of its rows' excess lies within this of a verdict's threshold (breached:
`TOLERANCE`; active: pre-trade excess + `TOLERANCE`), or a group weight within it of a
threshold rule's jump (relative to ``1 + ||w||_1``, weight units). The batch sums the same
terms in another order than the single-request checker: a sum of n = 500 terms of
coefficients up to ~10 differs by at most ~5e-13 ||w||_1 (and typically by ~1e-16), so
outside the band both sides give the same verdict, and inside it the single-request
checker's own answer is used. Decides no verdict itself."""

# -- the adjuster: tightening so solver error cannot leak into a verdict ------------------

SOLVER_MARGIN = 1e-7
"""Extra room tightened rounds leave for solver error (absolute; weight or vol units).

Above every solver tolerance (1e-8 and tighter) and above `TOLERANCE`, so that an answer
a solver returns within its own tolerance of a tightened bound passes the checker."""

BINDING_GAP = 1e-7
"""A row binds in a solved adjustment when its value is within this of its bound
(absolute; weight or vol units): the solver's own slack after `SOLVER_MARGIN`."""

BINDING_DUAL = 1e-10
"""A row binds in a solved adjustment only when its dual (unscaled by the objective's
scale) exceeds this (absolute). Solvers report zero duals as noise of about this size."""

CONFLICT_SUPPORT = 1e-9
"""In the elastic problem that names conflicting policies, a policy is in the conflict
when one of its slacks or duals exceeds this (absolute; weight units for slacks)."""

MARGIN_MOVED_FRACTION = 1e-6
"""An exported bound counts as moved by the whole margin when it moved by at least
`(1 - MARGIN_MOVED_FRACTION)` of it (relative to the margin)."""

# -- solver settings ----------------------------------------------------------------------

MIP_FEASIBILITY = 1e-10
"""HiGHS's MIP and primal feasibility tolerances in the lot-rounding MIP (solver-defined,
absolute). Far below `TOLERANCE`: a point HiGHS accepts must also pass the exact check
(one lot moves a weight by about 1e-5)."""

# INTERIOR_POINT_TOLERANCE, INTERIOR_POINT_REFINEMENT_TOLERANCE, OSQP_TOLERANCE and
# HIGHS_MAX_OBJECTIVE_ERROR: `solvers.tolerances`.

# -- certificates -------------------------------------------------------------------------

CERTIFICATE_FEASIBILITY = 1e-12
"""The separable QP's certified row accuracy, relative to max(1, |bound|).

Three orders inside `TOLERANCE`, so a certified answer passes the checker whatever the
rounding of the checker's own evaluation."""

PSD_TOLERANCE = 1e-10
"""A covariance is positive semidefinite when its smallest eigenvalue is above
`-PSD_TOLERANCE * max(1, |largest eigenvalue|)` (relative)."""

SYMMETRY_ATOL = 1e-12
"""Absolute part of the symmetry test of a covariance (`np.allclose(C, C.T, atol, rtol)`)."""

SYMMETRY_RTOL = 1e-9
"""Relative part of the symmetry test of a covariance (relative to |C.T| entrywise)."""

# -- comparing candidates -----------------------------------------------------------------

SCREEN_MARGIN = 1e-9
"""Changes whose estimated improvement is within this of the best estimate are evaluated
exactly (absolute, score units). An estimate differs from the exact value by rounding
only (~1e-15)."""

SCORE_NOISE = 1e-13
"""Violation scores closer than this are treated as equal when choosing between moves
(absolute, score units).

The incremental tracker and a from-scratch evaluation differ in the last bits (~1e-16
per row); 1e-13 is far above that noise and far below `TOLERANCE`, so real improvements
are never ignored."""

SNAP_WEIGHT = 1e-5
"""Trades within this weight of the proposal (or of no trade) are also tried snapped to it
(absolute, weight units). Not a correctness bound: the checker decides whether the snapped
candidate is kept. About one lot's weight."""

FRACTIONAL_SHARE_STEP = 1e-6
"""Resolution, in shares, of the capacity answer for an instrument traded in fractions
(absolute, shares)."""

# -- float noise --------------------------------------------------------------------------

LOT_UNITS_SNAP = 1e-9
"""A number of lots within this of an integer counts as that integer when flooring or
ceiling it (absolute, lots): `floor(units + LOT_UNITS_SNAP)`."""

CVAR_TAIL_SNAP = 1e-12
"""The number of whole tail scenarios of a CVaR is `floor((1 - beta) S + CVAR_TAIL_SNAP)`
(absolute, scenarios): a product that should be an integer is not lost to rounding."""

FLOAT_NOISE = 1e-14
"""The separable QP's rounding scale, relative: its Levenberg-Marquardt regularization
floor (relative to max(1, trace H)) and its test for a point at a kink (relative to
max(1, |offset|))."""
