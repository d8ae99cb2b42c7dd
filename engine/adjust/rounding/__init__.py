"""Rounding adjusted trades to whole lots, re-checked row by row.

Owns lot rounding (`lots`), the fallbacks in the order tried (`passes`), sequential
rounding and the one-lot repair set up in numpy over linear rows and capped risk norms
(`sweep` and `repair_rows` over `linear_rows` and `norm_rows`), integer search over lots
(`search`) and the incremental violation tracker (`tracker`) with its parts
(`tracked_linear`, `tracked_parts`, `tracked_scalar`). Exposes nothing here. May import the
earlier stages (weights, compile, check).
"""
