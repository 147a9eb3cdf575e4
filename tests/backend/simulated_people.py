"""A simulated population of heterogeneous observers, for the tests of `backend.study` (tests/ has no packages).

Each participant has their own threshold alpha_i = alpha0 * exp(sigma * z_i), z_i ~ N(0, 1), in the
psychometric function of `backend.study.psychometric` (shared slope, false-alarm floor and lapse). The population
value of the detection rate at eps is the mean over people, E_z[psi(eps; alpha_i)], computed by Gauss-Hermite
quadrature; the population eps50 is where that mean curve crosses 0.5.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from backend.study.psychometric import psychometric

ALPHA0, SIGMA, BETA, GUESS, LAPSE = 8 / 255, 0.6, 3.0, 0.1, 0.01
LEVELS = np.array([0.0, 4 / 255, 8 / 255, 16 / 255])

_nodes, _weights = np.polynomial.hermite_e.hermegauss(60)
_weights = _weights / _weights.sum()


def population_rate(eps: float, alpha0: float = ALPHA0) -> float:
    alphas = alpha0 * np.exp(SIGMA * _nodes)
    return float(sum(w * psychometric(eps, a, BETA, GUESS, LAPSE) for w, a in zip(_weights, alphas, strict=True)))


def population_eps50(alpha0: float = ALPHA0) -> float:
    return optimize.brentq(lambda e: population_rate(e, alpha0) - 0.5, alpha0 / 20, alpha0 * 20)


def simulate_counts(rng, n_studies: int, n_people: int, n_trials: int, alpha0: float = ALPHA0):
    """Judged-perturbed counts, shape (studies, people, levels), and the trial counts."""
    alphas = alpha0 * np.exp(SIGMA * rng.standard_normal((n_studies, n_people, 1)))
    p = GUESS + (1 - GUESS - LAPSE) / (1 + (alphas / np.maximum(LEVELS, 1e-12)) ** BETA)
    p[..., 0] = GUESS
    n = np.full(p.shape, float(n_trials))
    return rng.binomial(n_trials, p).astype(float), n


def rows_from_counts(k: np.ndarray, n: np.ndarray, masked: bool | None = None, pid0: int = 0) -> list[dict]:
    rows = []
    for i in range(k.shape[0]):
        for j, eps in enumerate(LEVELS):
            if eps == 0 and masked is True:
                continue  # one set of clean trials per person
            kk, nn = int(k[i, j]), int(n[i, j])
            for t in range(nn):
                rows.append(
                    {
                        "eps": float(eps),
                        "masked": masked if eps > 0 else None,
                        "participant_id": pid0 + i,
                        "judgment": "perturbed" if t < kk else "clean",
                    }
                )
    return rows
