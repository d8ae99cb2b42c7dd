"""Stage 4, check: every compiled row before and after the trade, numerically.

Owns the checker (`checker`: breaches, active or passive, tolerance), severity and the
compliance score (`scoring`), the response's violations and advice (`report`) and the
sensitivity of each binding row (`sensitivity`). Exposes nothing here: import from the
modules. May import the earlier stages (resolve, weights, compile); `report` also reads the
adjuster's result type (`engine.adjust.adjuster.Adjustment`) to describe an adjustment.
Never `engine.capacity` or `engine.export`.
"""
