"""HiGHS's copyright banner kept off standard output.

A light module (no cvxpy): the `solvers` package calls `silence_banner` when it is first
imported, before any adapter is loaded, so whatever solves through HiGHS later (an adapter,
`highs_direct`, or cvxpy's own HiGHS interface) finds the banner already printed.
"""

from __future__ import annotations

import os
import sys

__all__ = ["silence_banner"]


def silence_banner() -> None:
    """Construct HiGHS once with the process's standard output closed.

    The library prints its copyright banner to file descriptor 1 the first time a solver
    object is built, whatever the options; `pes validate` writes JSON there, so the banner
    would corrupt it. Later constructions print nothing.
    """
    try:
        import highspy
    except ImportError:  # HiGHS is optional at run time; the chain skips it
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()  # type: ignore[no-untyped-call]
    finally:
        os.dup2(saved, 1)
        os.close(saved)
