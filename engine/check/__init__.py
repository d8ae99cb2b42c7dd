"""Stage 4, check: every compiled row before and after the trade, numerically.

Owns the checker (`checker`: breaches, active or passive, tolerance), severity and the
compliance score (`scoring`) and the sensitivity of each binding row (`sensitivity`).
Exposes nothing here: import from the modules. May import the earlier stages (resolve,
weights, compile); never adjust, report, capacity or export (the violations and advice of
a response are `engine.report`, which comes after adjust).
"""
