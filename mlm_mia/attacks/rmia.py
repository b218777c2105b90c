"""RMIA (Zarifzadeh et al. 2024, "Low-cost high-power membership inference attacks"):
membership from pairwise likelihood ratios against a population of known non-members.

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

from .. import columns
from .base import Inputs
from .reference import loss

GAMMA = 1.0


def log_ratio(target: np.ndarray, others: np.ndarray, offline_a: float | None = None) -> np.ndarray:
    """``log LR = log Pr(x | target) - log Pr(x)``, ``Pr(x)`` the mean likelihood under the
    ``[n, R]`` other models. ``offline_a`` (the others are all OUT models): Pr(x) is
    approximated by ``((1 + a) Pr_OUT(x) + (1 - a)) / 2``, RMIA's offline setting."""
    from scipy.special import logsumexp

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


def rmia(inputs: Inputs) -> np.ndarray:
    """Against the rows of set ``population``. ``Pr(x)`` averages the shadow models when
    there are some (IN and OUT alike: RMIA's online setting), else the reference models
    (all OUT: offline, with ``rmia_offline_a``)."""
    shadows = inputs.shadows
    if shadows:
        others = inputs.table[[columns.shadow_score(i) for i in shadows]].to_numpy(float)
    else:
        others = np.column_stack([inputs.model_score(r) for r in inputs.references])
    log_lr = log_ratio(loss(inputs), others, None if shadows else inputs.settings.rmia_offline_a)
    return rmia_scores(log_lr, log_lr[inputs.in_set("population")])
