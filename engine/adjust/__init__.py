"""Stage 5, adjust: suggested adjustments of a non-compliant decision.

Owns the adjuster (`adjuster`: scale_back and project), the solver bounds, the compiled
adjustment problems and their polish, conflict finding (elastic solve), the rows the traded
names move, the separable QP solver (`separable`) and rounding to whole lots (`rounding`).
Exposes nothing here: import from the modules. May import every earlier stage and
`solvers`; `engine.capacity` and `engine.export` sit beside it and may import it, not the
other way round.
"""
