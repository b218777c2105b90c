"""RMIA (Zarifzadeh et al. 2024, "Low-cost high-power membership inference attacks"):
membership from pairwise likelihood ratios against a population of known non-members.

For a sentence ``x``, ``LR(x) = Pr(x | target) / Pr(x)``, where ``Pr(x)`` is the average
of ``Pr(x | model)`` over reference models (or shadow models, IN and OUT alike). The
score is the fraction of population sentences ``z`` that ``x`` dominates:
``#{z : LR(x) / LR(z) >= gamma} / m``. Sorting the population's ratios once makes this
exact in O((n + m) log m), with no n x m matrix.

``Pr(x | model)`` is the model's geometric-mean token probability of ``x`` (the exponential
of its PLL per scored token, whatever ``--reduction`` says; ML Privacy Meter's language-
model signal is likewise per token); everything is computed in log space.

Without shadow models RMIA runs offline, ``Pr(x)`` approximated from OUT models only by
``((1 + a) Pr_OUT(x) + (1 - a)) / 2``. The reference implementation tunes ``a`` by
attacking one of its reference models, whose training data it knows, with the others. A
reference model here (a model of the population, not trained on the sets) has no known
members, so that paired run has nothing to be right about: ``a`` is then
``--rmia-offline-a`` (0.3), recorded as untuned. With shadow models, which do have known
members, ``rmia_offline`` tunes ``a`` that way (shadow model 0 as the paired target) and
records it, and ``rmia`` runs online.
"""

from __future__ import annotations

import numpy as np

from ..common import columns
from .base import Inputs

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


def per_token(inputs: Inputs, model: str) -> np.ndarray:
    """``log Pr(x | model)`` as RMIA takes it: the PLL per scored token (the log of the
    geometric-mean token probability), whatever ``--reduction`` says. Summed PLLs would
    make ``Pr(x)`` vanish for every sentence and the offline ratio a copy of the loss."""
    if model.startswith("shadow_"):
        return inputs.model_values[model, "pll_per_token"]
    return inputs.model_score(model, "mean")


def _shadow_matrix(inputs: Inputs) -> np.ndarray:
    return np.column_stack([per_token(inputs, columns.shadow_name(i)) for i in inputs.shadows])


def _reference_matrix(inputs: Inputs) -> np.ndarray:
    return np.column_stack([per_token(inputs, r) for r in inputs.references])


def rmia(inputs: Inputs) -> np.ndarray:
    """Against the rows of set ``population``. ``Pr(x)`` averages the shadow models when
    there are some (IN and OUT alike: RMIA's online setting), else the reference models
    (all OUT: offline, with ``rmia_offline_a``)."""
    shadows = bool(inputs.shadows)
    log_lr = log_ratio(per_token(inputs, "target"),
                       _shadow_matrix(inputs) if shadows else _reference_matrix(inputs),
                       None if shadows else inputs.settings.rmia_offline_a)
    return rmia_scores(log_lr, log_lr[inputs.in_set("population")])


OFFLINE_A_GRID = tuple(round(0.1 * i, 1) for i in range(11))


def tune_offline_a(inputs: Inputs) -> tuple[float, dict[str, float]]:
    """RMIA's offline ``a`` chosen as the reference implementation does: a model of known
    membership (shadow model 0) is attacked as if it were the target, with the reference
    models as the OUT models, and the ``a`` of the grid 0, 0.1, ..., 1 with the highest
    AUC on its IN and OUT sentences of the members and non-members wins (its population:
    the population sentences it did not see). Returns ``a`` and the AUC of each ``a``."""
    from ..data.sets import SHADOW_SETS
    from ..stats.metrics import auc

    pseudo_target = per_token(inputs, columns.shadow_name(0))
    seen = inputs.table[columns.shadow_in(0)].to_numpy(int)
    tested = inputs.in_set(*[s for s in SHADOW_SETS if s != "population"])
    population = inputs.in_set("population") & (seen == 0)
    aucs = {}
    for a in OFFLINE_A_GRID:
        log_lr = log_ratio(pseudo_target, _reference_matrix(inputs), a)
        aucs[str(a)] = auc(seen[tested], rmia_scores(log_lr[tested], log_lr[population]))
    best = max(OFFLINE_A_GRID, key=lambda a: aucs[str(a)])
    return best, aucs


def rmia_offline(inputs: Inputs) -> np.ndarray:
    """Offline RMIA from the reference models, its ``a`` tuned on the shadow models
    (:func:`tune_offline_a`) instead of taken from ``--rmia-offline-a``."""
    a, _ = tune_offline_a(inputs)
    log_lr = log_ratio(per_token(inputs, "target"), _reference_matrix(inputs), a)
    return rmia_scores(log_lr, log_lr[inputs.in_set("population")])
