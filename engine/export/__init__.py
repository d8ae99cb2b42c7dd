"""Export, beside adjust: the compiled constraint set of a portfolio's policies, as data.

Owns the export entry point (`constraints`) and its parts: linear rows (`rows`), block
forms (`blocks`, `forms`), piecewise-linear rules (`piecewise`) and second-order cones
(`conic`). Exposes nothing here. May import every stage up to and including
`engine.adjust` (its bounds); nothing in the engine imports it (the API does).
"""
