"""Square-root factors of the risk model over a universe: Sigma = F F' + diag(d^2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import MissingDataError
from engine.tolerances import PSD_TOLERANCE, SYMMETRY_ATOL, SYMMETRY_RTOL
from models import RiskModel
from models.typing import FloatArray

__all__ = ["RiskFactors", "psd_sqrt", "risk_factors"]


@dataclass(frozen=True)
class RiskFactors:
    """`F` (|U| x k) and specific volatilities `d` (|U|, or None for a full covariance).

    For a factor model also `F = loadings @ root` apart: the loadings (|U| x k) and a
    square root of the factor covariance (k x k); None for a full covariance.
    """

    F: FloatArray
    d: FloatArray | None
    loadings: FloatArray | None = None
    root: FloatArray | None = None

    def covariance(self) -> FloatArray:
        """The covariance these factors represent."""
        cov = self.F @ self.F.T
        return cov + np.diag(self.d**2) if self.d is not None else cov


def psd_sqrt(matrix: FloatArray, *, field: str, needed_by: str = "") -> FloatArray:
    """A square root C with C C' = matrix, for a symmetric positive semidefinite matrix."""
    if not np.allclose(matrix, matrix.T, atol=SYMMETRY_ATOL, rtol=SYMMETRY_RTOL):
        raise MissingDataError(field, f"the matrix must be symmetric{_for(needed_by)}")
    eigenvalues, vectors = np.linalg.eigh(matrix)
    scale = max(1.0, float(np.abs(eigenvalues).max(initial=0.0)))
    if eigenvalues.min(initial=0.0) < -PSD_TOLERANCE * scale:
        raise MissingDataError(
            field,
            f"the matrix is not positive semidefinite (eigenvalue {eigenvalues.min():.3g})"
            f"{_for(needed_by)}",
        )
    return np.asarray(vectors * np.sqrt(np.clip(eigenvalues, 0.0, None)), dtype=float)


def _for(needed_by: str) -> str:
    return f" (needed by {needed_by})" if needed_by else ""


def risk_factors(model: RiskModel, universe: tuple[str, ...], *, needed_by: str) -> RiskFactors:
    """Factor the model's covariance over `universe`, or name the symbols it lacks."""
    absent = [s for s in universe if s not in model.covered()]
    if absent:
        raise MissingDataError(
            "portfolio_state.risk_model",
            f"{needed_by} needs a risk model covering {', '.join(absent)}",
        )
    if model.covariance is not None:
        position = {s: i for i, s in enumerate(model.covariance.symbols)}
        idx = [position[s] for s in universe]
        cov = np.asarray(model.covariance.matrix, dtype=float)[np.ix_(idx, idx)]
        root = psd_sqrt(cov, field="portfolio_state.risk_model.covariance", needed_by=needed_by)
        return RiskFactors(F=root, d=None)
    assert model.factor_loadings is not None and model.factor_covariance is not None
    loadings = np.array([model.factor_loadings[s] for s in universe], dtype=float)
    root = psd_sqrt(
        np.asarray(model.factor_covariance, dtype=float),
        field="portfolio_state.risk_model.factor_covariance",
        needed_by=needed_by,
    )
    specific = model.specific_variance or {}
    d = np.sqrt(np.array([specific.get(s, 0.0) for s in universe], dtype=float))
    return RiskFactors(F=loadings @ root, d=d, loadings=loadings, root=root)
