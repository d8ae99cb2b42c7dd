"""Stage 3, compile: policies to constraint rows, cached per policy set and universe.

Owns the typed compile context, the constraint kinds (`kinds`, one small class each), the
custom-expression language (`language`), the constraint blocks and their numeric rows, the
row layout and row stacks, piecewise-linear rules and risk models. Exposes nothing here:
import from the modules. May import `models`, `solvers`, `engine.errors`, `engine.resolve`
and `engine.weights`; never `engine.check`, `engine.adjust` or later.
"""
