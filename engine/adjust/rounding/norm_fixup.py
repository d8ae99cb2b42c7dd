"""A few lots moved to bring capped risk norms back under their caps after rounding.

Rounding the continuous optimum to lots moves a risk norm that the optimum holds at its
cap (a tracking-error or volatility limit) by up to a few 1e-7; the sweep and the one-lot
repair cure most such breaches, but not one where every lot that lowers the norm breaks a
linear row that is tight too (a budget, a sector held at its band): curing it takes a
pair of moves, a lot sold here and one bought there. The integer lot search holds the
linear rows jointly but has no row for a norm, so its answer breaks the norm as often as
not (and costs tens of milliseconds at n = 500: every traded name is a variable).

This pass starts from a rounding that breaks a norm and moves at most `MAX_MOVES` trades
by one lot each. Among a few dozen candidate moves (the cheapest, and those that lower each
row that could bind the most, and the most per unit of distance), it takes the cheapest
single move or pair that holds every row, then adds moves that lower the distance while
they hold every row. HiGHS was tried for this choice and dropped: a mixed-integer solve of
even ten binaries costs it 8-15 ms, more than the rest of the rounding. The rows:

* each move's change of the distance to the proposal is exact (the distance is
  separable: a trade moves only its own weight);
* each linear row's change is the sum of the moves' changes made alone (exact for
  affine rows and for absolute terms a single name moves, such as turnover);
* each norm is held through its tangent plus a curvature margin: for `v = s |L y|`,
  `v(y + x) <= v(y) + s (L y).(L x) / |L y| + s |L x|^2 / (2 |L y|)` (from
  `sqrt(1 + u) <= 1 + u / 2`), and `|L x| <= sum |d_k| |L P e_k|` over at most
  `MAX_MOVES` moves bounds the last term.

The answer is a candidate like every other rounding: the adjuster checks it exactly.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from engine.adjust.rounding.linear_rows import LinearRows
from engine.adjust.rounding.norm_rows import NormRows, norm_gradient
from engine.deadline import NO_DEADLINE, Deadline
from engine.weights.portfolio import Snapshot
from models.typing import BoolArray, FloatArray, IntArray

__all__ = ["MAX_MOVES", "norm_fixup"]

MAX_MOVES = 8
"""Trades the fix may move (one lot each). Breaches it is for are a few 1e-7 of a norm
that one lot moves by ~1e-6; the bound keeps the curvature margin ~1e-10."""

CANDIDATES = 12
"""Moves taken per criterion (`_candidates`)."""

MAX_CANDIDATES = 96
"""Moves the fix chooses among, at most: its pairs are scored at once (k^2 per row)."""

ROW_CHUNK = 32
"""Rows whose pairs are scored at once: bounds the scores' memory to ROW_CHUNK k^2."""

COST_FLOOR = 1e-300
"""A move's cost (change of distance) below this counts as this in the per-cost order:
a move that lowers the distance and the row is the best of all there."""


def norm_fixup(
    rows: LinearRows,
    norms: NormRows,
    snap: Snapshot,
    t: FloatArray,
    *,
    shrink_only: bool,
    deadline: Deadline = NO_DEADLINE,
) -> FloatArray | None:
    """Trades `t` with at most `MAX_MOVES` of them moved by one lot, holding every row.

    For a rounding `t` that breaks some norm of `norms` (its linear rows `rows` may be
    broken too); None when it breaks none, and when no single move or pair holds them all.
    """
    w = snap.weights_from_trades(t)
    if norms.total(w) <= 0.0:
        return None
    deadline.check("the risk-norm fix of the rounding")
    lots = snap.lots
    movable = np.flatnonzero((lots > 0) & (t != -snap.q))
    if len(movable) == 0:
        return None
    q, prices = snap.q[movable], snap.prices[movable]
    current = w[movable]
    # A lot down, then a lot up, per movable trade: the weight each move gives its name.
    d_low = (q + (t[movable] - lots[movable])) * prices / snap.nav - current
    d_high = (q + (t[movable] + lots[movable])) * prices / snap.nav - current
    allowed = np.ones((len(movable), 2), dtype=bool)
    if shrink_only:
        proposed = snap.t[movable]
        for side, step in enumerate((-lots[movable], lots[movable])):
            option = t[movable] + step
            allowed[:, side] = (np.abs(option) <= np.abs(proposed)) & (option * proposed >= 0)
    steps = np.stack([d_low, d_high], axis=1)
    gap = current - snap.w_hat[movable]
    cost = (2 * gap[:, None] + steps) * steps  # exact change of (w_i - w_hat_i)^2
    m = len(movable)
    rows_over_moves, room = _rows(rows, norms, w, movable, steps)
    if rows_over_moves is None:
        return None
    chosen_moves = _candidates(cost.ravel(), rows_over_moves, room, allowed.ravel())
    deadline.check("the risk-norm fix of the rounding")
    picked = _cheapest_fix(
        cost.ravel()[chosen_moves],
        rows_over_moves[:, chosen_moves].toarray(),
        room,
        chosen_moves // 2,
    )
    if picked is None:
        return None
    flat = np.zeros(2 * m)
    flat[chosen_moves[picked]] = 1.0
    taken = flat.reshape(m, 2)
    out = np.array(t, dtype=float)
    out[movable] += lots[movable] * (taken[:, 1] - taken[:, 0])
    return out


def _cheapest_fix(
    cost: FloatArray, matrix: FloatArray, room: FloatArray, trade: IntArray
) -> IntArray | None:
    """The cheapest single move or pair that fits every row, then cheaper moves added.

    Every single and every pair of moves on two trades is scored at once (a few thousand
    over the candidates, on the rows a single or a pair can break, `ROW_CHUNK` rows at a
    time to bound memory); the cheapest that fits is kept, and moves that lower the
    distance are then added one at a time, cheapest first, while they fit and fewer than
    `MAX_MOVES` are taken. None when no single or pair fits.
    """
    k = len(cost)
    fits_alone = np.all(matrix <= room[:, None], axis=0)
    pairs = np.triu(np.ones((k, k), dtype=bool), 1) & (trade[:, None] != trade[None, :])
    largest = np.sort(matrix, axis=1)[:, -2:].sum(axis=1) if k > 1 else matrix.max(axis=1)
    breakable = np.flatnonzero(largest > room)
    for first in range(0, len(breakable), ROW_CHUNK):
        chunk = breakable[first : first + ROW_CHUNK]
        part = matrix[chunk]
        pairs &= np.all(part[:, :, None] + part[:, None, :] <= room[chunk, None, None], axis=0)
    pair_cost = np.where(pairs, cost[:, None] + cost[None, :], np.inf)
    best_pair = int(np.argmin(pair_cost))
    single_cost = np.where(fits_alone, cost, np.inf)
    best_single = int(np.argmin(single_cost))
    if min(pair_cost.flat[best_pair], single_cost[best_single]) == np.inf:
        return None
    if single_cost[best_single] <= pair_cost.flat[best_pair]:
        taken = [best_single]
    else:
        taken = [best_pair // k, best_pair % k]
    used = matrix[:, taken].sum(axis=1)
    for j in np.argsort(cost, kind="stable").tolist():
        if len(taken) >= MAX_MOVES or cost[j] >= 0.0:
            break
        if j in taken or trade[j] in trade[taken]:
            continue
        if np.all(used + matrix[:, j] <= room):
            taken.append(j)
            used = used + matrix[:, j]
    return np.array(taken, dtype=np.int64)


def _rows(
    rows: LinearRows, norms: NormRows, w: FloatArray, movable: IntArray, steps: FloatArray
) -> tuple[sp.csr_matrix | None, FloatArray]:
    """The program's rows over the moves (a lot down, a lot up per trade) and their room.

    Linear rows: the excess now plus the moves' changes made alone stays <= 0; only the
    rows some moves could push past their bound. Norms: the tangent plus the curvature
    margin stays under the cap. None when a norm sits at its kink (no tangent).
    """
    m = len(movable)
    parts: list[sp.csr_matrix] = []
    room: list[FloatArray] = []
    excess = rows.excess(w)
    moves = rows.moves(w, movable, steps[:, 0], steps[:, 1], alone=True)
    assert moves is not None  # never None alone
    if len(moves.row):
        rise = np.bincount(
            moves.row,
            np.maximum(np.maximum(moves.low, moves.high), 0.0),
            minlength=len(excess),
        )
        live = np.flatnonzero(excess + rise > 0.0)
        renumber = np.full(len(excess), -1)
        renumber[live] = np.arange(len(live))
        keep = renumber[moves.row] >= 0
        row = np.tile(renumber[moves.row[keep]], 2)
        trade = moves.trade[keep]
        column = np.concatenate([2 * trade, 2 * trade + 1])
        data = np.concatenate([moves.low[keep], moves.high[keep]])
        parts.append(sp.csr_matrix((data, (row, column)), shape=(len(live), 2 * m)))
        room.append(-excess[live])
    reach_of_moves = np.max(np.abs(steps), axis=1)
    for block, bound in norms.norms:
        value, scale, radius, slope, reach = norm_gradient(block, w, movable)
        if radius <= 0.0:
            return None, np.zeros(0)
        largest = np.sort(reach_of_moves * reach)[-MAX_MOVES:]
        margin = scale * float(np.sum(largest)) ** 2 / (2 * radius)
        along = scale * slope / radius
        parts.append(sp.csr_matrix((steps * along[:, None]).reshape(1, 2 * m)))
        room.append(np.array([bound - value - margin]))
    return sp.vstack(parts, format="csr"), np.concatenate(room)


def _candidates(
    cost: FloatArray, rows_over_moves: sp.csr_matrix, room: FloatArray, allowed: BoolArray
) -> IntArray:
    """The moves the fix chooses among: at most `MAX_CANDIDATES`, in order of priority.

    The `CANDIDATES` cheapest; then for each row that `MAX_MOVES` moves could use up (or
    already past its bound: every norm the fix is for), the `CANDIDATES` that lower it
    most and the `CANDIDATES` that lower it most per unit of distance they cost. A breach
    cured by a pair of moves is cured by one that lowers the norm and one that pays for it
    on a tight linear row.
    """
    options = np.flatnonzero(allowed)
    picks = [options[np.argsort(cost[options], kind="stable")[:CANDIDATES]]]
    csr = sp.csr_matrix(rows_over_moves)
    csr = csr[:, options]
    rise = np.asarray(csr.max(axis=1).todense()).ravel()
    needs = np.flatnonzero(room < MAX_MOVES * np.maximum(rise, 0.0))
    # The norms first (the last rows): they are what the fix is for.
    for r in needs[::-1].tolist():
        start, end = csr.indptr[r], csr.indptr[r + 1]
        values, columns = csr.data[start:end], options[csr.indices[start:end]]
        lowering = values < 0.0
        if not lowering.any():
            continue
        values, columns = values[lowering], columns[lowering]
        picks.append(columns[np.argsort(values, kind="stable")[:CANDIDATES]])
        per_cost = values / np.maximum(cost[columns], COST_FLOOR)
        picks.append(columns[np.argsort(per_cost, kind="stable")[:CANDIDATES]])
    ordered = np.concatenate(picks)
    _, first = np.unique(ordered, return_index=True)
    kept: IntArray = ordered[np.sort(first)][:MAX_CANDIDATES]
    return kept
