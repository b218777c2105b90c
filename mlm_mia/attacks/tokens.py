"""Attacks on the target's per-token log-probabilities, from the PLL's own masked passes
(no reference model):

- ``min_k`` (Shi et al. 2024, "Detecting pretraining data from large language models"):
  the mean of the lowest fraction (``--min-k-fraction``, 0.2) of the token log-probs;
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
    """The mean of the ``k = int(n * fraction)`` lowest of the ``n`` token log-probs, as
    both reference implementations (MIMIR's and the Min-K%++ authors') take it. Where they
    take no token at all (``n * fraction < 1``: under 5 tokens at 20%) and their mean is
    undefined, the lowest one is taken. NaN for a sentence with no scored token."""
    if logprobs.size == 0:
        return float("nan")
    k = max(1, int(logprobs.size * fraction))
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
    """The PLL per token (negative) over the compressed length: the score is high (near 0)
    for text the target predicts well although it is hard to compress (much information),
    which is what memorised text looks like; text that is easy to compress (repetitive,
    boilerplate) gets a low score, whatever its PLL, since such text is predictable anyway.
    Carlini et al.'s ratio of log-perplexity to zlib entropy, negated (higher = member)."""
    compressed = np.array([len(zlib_module.compress(t.encode("utf-8"))) for t in inputs.texts], dtype=float)
    return inputs.model_score("target", "mean") / compressed
