"""Attacks on the target's per-token log-probabilities, from the PLL's own masked passes
(no reference model):

- ``min_k`` (Shi et al. 2024, "Detecting pretraining data from large language models"):
  the mean of the lowest fraction of the token log-probs;
- ``min_k_pp`` (Zhang et al. 2024, "Min-K%++: improved baseline for detecting
  pre-training data from large language models"): the same on log-probs standardised by
  the mean and spread of the model's distribution at each masked position;
- ``zlib`` (Carlini et al. 2021, "Extracting training data from large language
  models"): the target's PLL per token over the zlib-compressed length of the text.
"""

from __future__ import annotations

import zlib as zlib_module

import numpy as np

from .base import Inputs


def min_k_mean(logprobs: np.ndarray, fraction: float) -> float:
    """The mean of the lowest ``fraction`` of the token log-probs (at least one token);
    NaN for a sentence with no scored token."""
    if logprobs.size == 0:
        return float("nan")
    k = max(1, int(np.ceil(fraction * logprobs.size)))
    return float(np.sort(logprobs)[:k].mean())


def min_k_pp_mean(logprobs: np.ndarray, dist_mean: np.ndarray, dist_std: np.ndarray,
                  fraction: float) -> float:
    """Each token's log-prob standardised by the mean and standard deviation of the
    log-probs of the model's distribution at its masked position, then
    :func:`min_k_mean` of those. A position where the model is certain (standard
    deviation 0) counts as 0. NaN when the statistics are unknown."""
    if np.isnan(dist_std).any():
        return float("nan")
    safe = np.where(dist_std > 0, dist_std, 1.0)
    z = np.where(dist_std > 0, (logprobs - dist_mean) / safe, 0.0)
    return min_k_mean(z, fraction)


def min_k(inputs: Inputs) -> np.ndarray:
    fraction = inputs.settings.min_k_fraction
    return np.array([min_k_mean(t.logprobs, fraction) for t in inputs.target_tokens])


def min_k_pp(inputs: Inputs) -> np.ndarray:
    fraction = inputs.settings.min_k_fraction
    return np.array([min_k_pp_mean(t.logprobs, t.dist_mean, t.dist_std, fraction)
                     for t in inputs.target_tokens])


def zlib(inputs: Inputs) -> np.ndarray:
    """Text that compresses well but is predicted badly is ordinary; text predicted well
    for its information content (a long compressed length) is suspect."""
    compressed = np.array([len(zlib_module.compress(t.encode("utf-8"))) for t in inputs.texts], dtype=float)
    return inputs.model_score("target", "mean") / compressed
