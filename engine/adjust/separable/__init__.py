"""The separable QP solver of the adjustment problem, tried before the solver chain.

Owns the fold of row sets into per-name intervals and coupling rows (`fold`), the dual of
the folded problem (`dual`), its maximization (`newton`) and the solver's entry point
(`qp`). Exposes nothing here. May import `engine.compile` (blocks and layout); the adjuster
calls it, not the other way round.
"""
