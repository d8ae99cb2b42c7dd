"""Capacity, beside adjust: how much more of each symbol can be bought or sold.

Owns the analyzer (`analyzer`: exact to the lot, checked against validate itself) and its
compiled LP estimate (`lp`). Exposes nothing here. May import every stage up to and
including `engine.adjust`; nothing imports it but `engine.engine`.
"""
