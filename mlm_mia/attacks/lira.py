"""Likelihood-ratio attacks from shadow models (LiRA: Carlini et al. 2022, "Membership
inference attacks from first principles") and per-sentence memorization (Choi et al.
2023, "Why train more? Effective and efficient membership inference via memorization").

Inputs are one row per sentence: the target's statistic ``s`` (higher = more likely a
member), each shadow model's statistic of the same sentence and whether that shadow model
trained on it (IN) or not (OUT). The statistic (``--lira-statistic``) is

- ``pll``: the model's PLL, reduced as ``--reduction`` says (the loss attack's score);
- ``logit``: the mean over the sentence's tokens of ``log(p / (1 - p))``, ``p`` the
  token's masked probability: Carlini et al.'s logit-scaled confidence, per token. Raw
  probabilities are far from normal; their logits much less so.

- ``lira_online``: Gaussians fitted to the IN and the OUT statistics; the log-likelihood
  ratio of ``s``.
- ``lira_offline``: the one-sided test under OUT alone, ``(s - mu_out) / sd_out``, as the
  paper describes it: a target statistic far *above* the OUT mean says member. (The LiRA
  research code scores offline with the two-sided ``-logpdf`` of the OUT Gaussian, which
  also flags statistics far below it: do not compare the two blindly.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..common import columns
from .base import Inputs

# With fewer shadow models than this, per-sentence variances are too noisy: one global
# variance, shared by IN and OUT (Carlini et al.'s fixed variance), is used instead.
GLOBAL_VARIANCE_BELOW = 16
# the Shapiro-Wilk check of the Gaussians needs this many statistics on each side
NORMALITY_MIN_PER_SIDE = 8


def token_logit_mean(logprobs: np.ndarray) -> float:
    """The mean over tokens of ``log(p / (1 - p))`` for token log-probs ``log p``; NaN for
    a sentence with no scored token. ``p`` is kept below 1 - 1e-12 (a token the model is
    certain of would have an infinite logit)."""
    if logprobs.size == 0:
        return float("nan")
    logp = np.minimum(np.asarray(logprobs, dtype=float), np.log1p(-1e-12))
    return float(np.mean(logp - np.log(-np.expm1(logp))))


def normality(scores: np.ndarray, inside: np.ndarray, level: float = 0.05) -> dict | None:
    """The share of sentences whose IN statistics, and whose OUT statistics, a Shapiro-Wilk
    test rejects as normal at ``level`` (about ``level`` when they are normal), over the
    sentences with at least :data:`NORMALITY_MIN_PER_SIDE` on each side; None when there
    are none (too few shadow models)."""
    from scipy.stats import shapiro

    counts = inside.sum(1)
    enough = (counts >= NORMALITY_MIN_PER_SIDE) & (inside.shape[1] - counts >= NORMALITY_MIN_PER_SIDE)
    if not enough.any():
        return None
    rejected = {"in": [], "out": []}
    for row, mask in zip(scores[enough], inside[enough]):
        for side, values in (("in", row[mask]), ("out", row[~mask])):
            rejected[side].append(np.ptp(values) > 0 and shapiro(values).pvalue < level)
    return {"sentences": int(enough.sum()), "level": level,
            **{f"rejected_{side}": float(np.mean(flags)) for side, flags in rejected.items()}}


def shadow_arrays(table: pd.DataFrame, n_models: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``[n, K]`` shadow statistics and IN flags from the shadow columns (the first
    ``n_models`` models, all by default)."""
    indices = columns.shadow_indices(table)[:n_models]
    scores = np.column_stack([table[columns.shadow_score(i)].to_numpy(float) for i in indices])
    inside = np.column_stack([table[columns.shadow_in(i)].to_numpy(int) for i in indices]).astype(bool)
    return scores, inside


def _side_means(scores: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sentence mean score under IN and under OUT models. A sentence with no model on
    one side (one model only, say) takes its other side's mean shifted by the average
    IN - OUT gap over all scores: halves are random, so that gap is unbiased."""
    with np.errstate(invalid="ignore"):
        n_in, n_out = inside.sum(1), (~inside).sum(1)
        mu_in = np.where(inside, scores, 0).sum(1) / np.where(n_in > 0, n_in, np.nan)
        mu_out = np.where(~inside, scores, 0).sum(1) / np.where(n_out > 0, n_out, np.nan)
    if not inside.any() or inside.all():
        raise ValueError("every shadow score is on one side (IN or OUT); train at least one "
                         "model on each half of the patients")
    gap = scores[inside].mean() - scores[~inside].mean()
    return np.where(n_in > 0, mu_in, mu_out + gap), np.where(n_out > 0, mu_out, mu_in - gap)


def _side_stds(scores: np.ndarray, inside: np.ndarray, mu_in: np.ndarray, mu_out: np.ndarray
               ) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Per-sentence standard deviations (IN, OUT), or with few models one global value for
    both: the spread of all shadow scores. Shared, it cancels from the ranking of both
    tests, which then rest on the means alone. With many models, a sentence with fewer
    than two scores on a side (the externals, IN for none) takes the global value there."""
    spread = float(scores.std())
    if scores.shape[1] < GLOBAL_VARIANCE_BELOW:
        return spread, spread

    def side(mask: np.ndarray, mu: np.ndarray) -> np.ndarray:
        count = mask.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.sqrt((np.where(mask, scores - mu[:, None], 0) ** 2).sum(1) / count)
        return np.where(count >= 2, std, spread)

    return side(inside, mu_in), side(~inside, mu_out)


def memorization(scores: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Per sentence E[score | IN] - E[score | OUT] over the shadow models."""
    mu_in, mu_out = _side_means(scores, inside)
    return mu_in - mu_out


def online(target: np.ndarray, scores: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """log N(s; mu_in, sd_in) - log N(s; mu_out, sd_out) for each sentence's target score."""
    from scipy.stats import norm

    mu_in, mu_out = _side_means(scores, inside)
    sd_in, sd_out = _side_stds(scores, inside, mu_in, mu_out)
    tiny = 1e-12
    return (norm.logpdf(target, mu_in, np.maximum(sd_in, tiny))
            - norm.logpdf(target, mu_out, np.maximum(sd_out, tiny)))


def offline(target: np.ndarray, scores: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The one-sided test under OUT alone: (s - mu_out) / sd_out, of which the p-value
    ``Phi`` Carlini et al. report is a monotone function (same ROC, no saturation)."""
    mu_in, mu_out = _side_means(scores, inside)
    _, sd_out = _side_stds(scores, inside, mu_in, mu_out)
    return (target - mu_out) / np.maximum(sd_out, 1e-12)


def target_statistic(table: pd.DataFrame) -> np.ndarray:
    """The target's LiRA statistic, the one the shadow columns hold for the shadow models."""
    return table[columns.TARGET_STATISTIC].to_numpy(float)


def lira_online(inputs: Inputs) -> np.ndarray:
    return online(target_statistic(inputs.table), *shadow_arrays(inputs.table))


def lira_offline(inputs: Inputs) -> np.ndarray:
    return offline(target_statistic(inputs.table), *shadow_arrays(inputs.table))
