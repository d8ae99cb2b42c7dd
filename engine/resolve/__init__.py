"""Stage 1, resolve: the effective policies of one request.

Owns policy scope and the firm -> fund -> portfolio hierarchy (overrides), the `when`
conditions on a request's context, per-context limits, and merging registered reference
data into a request. Exposes nothing here: import from the modules (`resolve`, `hierarchy`,
`conditions`, `contextual`, `references`). May import `models`, `engine.errors` and the
top-level helpers of `engine`; no later stage.
"""
