"""Stress tests and scenario risk over many portfolios at once (docs/stress.md).

Owns the scenarios (`scenarios`: a historical returns table, named factor shocks mapped
through the exposures, Monte Carlo draws from the factor model, seeded, with `jax.random`
on JAX and NumPy's generator otherwise), the loss distribution and its measures
(`measures`: losses `-R w` per portfolio and firm-wide, VaR and CVaR at chosen levels with
the checker's conventions, worst scenarios; JAX `jit` in 64 bits or NumPy, chunked over
scenarios), the policies' stress, VaR and CVaR rules evaluated through the batch checker
(`rules`), registered reference data a request names (`references`) and the request's run
(`run`: `run_stress`). Exposes `run_stress`, `resolve_stress_references`,
`names_stress_references`, `Scenarios`, `build_scenarios`, `loss_matrix`, `risk_measures`,
`var_of_losses`. May import every stage up to and including `engine.batch`; nothing imports
it but the front door and the edges.
"""

from engine.stress.measures import Measures, loss_matrix, risk_measures, var_of_losses
from engine.stress.references import names_stress_references, resolve_stress_references
from engine.stress.run import run_stress
from engine.stress.scenarios import Scenarios, build_scenarios

__all__ = [
    "Measures",
    "Scenarios",
    "build_scenarios",
    "loss_matrix",
    "names_stress_references",
    "resolve_stress_references",
    "risk_measures",
    "run_stress",
    "var_of_losses",
]
