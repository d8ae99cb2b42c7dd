"""Reproducible latency benchmarks of the policy engine and the HTTP service.

Run ``python -m benchmarks`` (or ``pes bench``); see ``benchmarks/run.py`` and the
README's "Performance" section.
"""
