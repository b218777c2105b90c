"""RMIA (Zarifzadeh et al. 2024): membership from pairwise likelihood ratios against a
population of known non-members.

For a sentence ``x``, ``LR(x) = Pr(x | target) / Pr(x)``, where ``Pr(x)`` is the average
of ``Pr(x | model)`` over reference models (or shadow models, IN and OUT alike). The
score is the fraction of population sentences ``z`` that ``x`` dominates:
``#{z : LR(x) / LR(z) >= gamma} / m``. Sorting the population's ratios once makes this
exact in O((n + m) log m), with no n x m matrix.

``Pr(x | model)`` is the exponential of the model's PLL score of ``x`` (per token by
default, a geometric-mean token probability); everything is computed in log space.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from .lira import SHADOW_COLUMN

GAMMA = 1.0
OFFLINE_A = 0.3  # the offline approximation's a (Zarifzadeh et al. tune it per dataset)


def log_ratio(target: np.ndarray, others: np.ndarray, offline_a: float | None = None) -> np.ndarray:
    """``log LR = log Pr(x | target) - log Pr(x)``, ``Pr(x)`` the mean likelihood under the
    ``[n, R]`` other models. ``offline_a`` (the others are all OUT models): Pr(x) is
    approximated by ``((1 + a) Pr_OUT(x) + (1 - a)) / 2``, RMIA's offline setting."""
    others = np.asarray(others, dtype=float)
    if others.ndim != 2 or others.shape[1] == 0:
        raise ValueError("others must be an [n, R] array of scores, R >= 1")
    log_mean = logsumexp(others, axis=1) - np.log(others.shape[1])
    if offline_a is not None:
        log_mean = np.log(0.5 * ((1 + offline_a) * np.exp(log_mean) + (1 - offline_a)))
    return np.asarray(target, dtype=float) - log_mean


def rmia_scores(log_lr: np.ndarray, population_log_lr: np.ndarray, gamma: float = GAMMA
                ) -> np.ndarray:
    """For each ``x``, the fraction of population ``z`` with ``LR(x) / LR(z) >= gamma``."""
    population = np.sort(np.asarray(population_log_lr, dtype=float))
    if population.size == 0:
        raise ValueError("RMIA needs a non-empty population")
    threshold = np.asarray(log_lr, dtype=float) - np.log(gamma)
    return np.searchsorted(population, threshold, side="right") / population.size


def rmia_column(table: pd.DataFrame, offline_a: float = OFFLINE_A) -> pd.DataFrame:
    """``score_rmia`` for every row, against the rows of set ``population``. ``Pr(x)``
    averages the shadow models when there are some (IN and OUT alike: RMIA's online
    setting), else the reference models (``score_reference_only*``, all OUT: offline, with
    ``offline_a``)."""
    shadows = [c for c in table.columns if SHADOW_COLUMN.fullmatch(c)]
    others = shadows or [c for c in table.columns if c.startswith("score_reference_only")]
    log_lr = log_ratio(table["score_loss"].to_numpy(float), table[others].to_numpy(float),
                       None if shadows else offline_a)
    out = table.copy()
    out["score_rmia"] = rmia_scores(log_lr, log_lr[(table["set"] == "population").to_numpy()])
    return out
