"""Likelihood-ratio attacks from shadow models (LiRA, Carlini et al. 2022) and per-sentence
memorization (Choi et al. 2023).

Inputs are one row per sentence: the target's score ``s`` (higher = more likely a member;
here the PLL per token), each shadow model's score of the same sentence and whether that
shadow model trained on it (IN) or not (OUT).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy.stats import norm

from . import metrics

# With fewer shadow models than this, per-sentence variances are too noisy: one global
# variance, shared by IN and OUT (Carlini et al.'s fixed variance), is used instead.
GLOBAL_VARIANCE_BELOW = 16
SHADOW_COLUMN = re.compile(r"shadow_(\d+)_score")
SHADOW_COUNTS = (1, 2, 4, 8, 16, 32, 64)  # the numbers of shadow models compared


def shadow_arrays(table: pd.DataFrame, n_models: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``[n, K]`` shadow scores and IN flags from the ``shadow_<i>_score`` and
    ``shadow_<i>_in`` columns (the first ``n_models`` models, all by default)."""
    indices = sorted(int(m.group(1)) for c in table.columns if (m := SHADOW_COLUMN.fullmatch(c)))
    indices = indices[:n_models]
    scores = np.column_stack([table[f"shadow_{i}_score"].to_numpy(float) for i in indices])
    inside = np.column_stack([table[f"shadow_{i}_in"].to_numpy(int) for i in indices]).astype(bool)
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


def lira_online(target: np.ndarray, scores: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """log N(s; mu_in, sd_in) - log N(s; mu_out, sd_out) for each sentence's target score."""
    mu_in, mu_out = _side_means(scores, inside)
    sd_in, sd_out = _side_stds(scores, inside, mu_in, mu_out)
    tiny = 1e-12
    return (norm.logpdf(target, mu_in, np.maximum(sd_in, tiny))
            - norm.logpdf(target, mu_out, np.maximum(sd_out, tiny)))


def lira_offline(target: np.ndarray, scores: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The one-sided test under OUT alone: (s - mu_out) / sd_out, of which the p-value
    ``Phi`` Carlini et al. report is a monotone function (same ROC, no saturation)."""
    mu_in, mu_out = _side_means(scores, inside)
    _, sd_out = _side_stds(scores, inside, mu_in, mu_out)
    return (target - mu_out) / np.maximum(sd_out, 1e-12)


def lira_columns(table: pd.DataFrame, n_models: int | None = None) -> pd.DataFrame:
    """``score_lira_online``, ``score_lira_offline`` and ``memorization`` from the
    ``score_loss`` and shadow columns."""
    out = table.copy()
    scores, inside = shadow_arrays(table, n_models)
    target = table["score_loss"].to_numpy(float)
    out["score_lira_online"] = lira_online(target, scores, inside)
    out["score_lira_offline"] = lira_offline(target, scores, inside)
    out["memorization"] = memorization(scores, inside)
    return out


def _compact(y: np.ndarray, s: np.ndarray) -> dict | None:
    """AUC and TPR at each FPR target of one attack on one subset (None with one class)."""
    if np.unique(y).size < 2:
        return None
    return {"auc": metrics.auc(y, s),
            "tpr_at_fpr": {str(f): metrics.tpr_at_fpr(y, s, f) for f in metrics.FPR_TARGETS},
            "n_pos": int(y.sum()), "n_neg": int((y == 0).sum())}


def memorization_report(table: pd.DataFrame, positive: str = "members",
                        negative: str = "non_members") -> dict:
    """Members vs non-members split by memorization quartile (computed on both sets together,
    ``q1`` least memorized to ``q4`` most):

    - ``by_quartile``: every attack's AUC and TPRs within each quartile;
    - ``by_shadow_models``: LiRA with the first 1, 2, 4, 8 ... shadow models, on the least
      and the most memorized quartiles (memorization always from all the models).
    """
    rows = table[table["set"].isin([positive, negative])]
    y = (rows["set"] == positive).to_numpy(int)
    quartile = pd.qcut(rows["memorization"].rank(method="first"), 4, labels=False).to_numpy()
    attacks = [c for c in table.columns if c.startswith("score_")]
    by_quartile = {
        column[len("score_"):]: {f"q{q + 1}": _compact(y[quartile == q], rows[column].to_numpy(float)[quartile == q])
                                 for q in range(4)}
        for column in attacks}
    n_models = shadow_arrays(table)[0].shape[1]
    by_k = {}
    for k in SHADOW_COUNTS:
        if k > n_models:
            break
        scored = lira_columns(table, k).loc[rows.index]
        by_k[str(k)] = {
            attack: {name: _compact(y[quartile == q], scored[f"score_{attack}"].to_numpy(float)[quartile == q])
                     for name, q in (("least", 0), ("most", 3))}
            for attack in ("lira_online", "lira_offline")}
    edges = np.quantile(rows["memorization"], [0.25, 0.5, 0.75]).tolist()
    return {"comparison": f"{positive}_vs_{negative}", "quartile_edges": edges,
            "by_quartile": by_quartile, "by_shadow_models": by_k}
