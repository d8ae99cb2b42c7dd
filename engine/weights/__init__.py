"""Stage 2, weights: the portfolio snapshot of one request (NAV, `w0`, `w_hat`).

Exposes nothing here: import from `engine.weights.portfolio`. May import `models`,
`engine.errors`, `engine.resolve`; no later stage.
"""
