"""Risk metrics of a membership-inference attack.

Scores follow one convention: higher means "more likely a member"; labels are 1 for
members (positives) and 0 for non-members (negatives). Thresholds are always set on the
negatives, so a false-positive rate is what it says, never a quantile of the members.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import auc as area_under_curve
from sklearn.metrics import roc_auc_score, roc_curve

FPR_TARGETS = (0.001, 0.01, 0.1)
THRESHOLD_FPR = 0.1


def _validate(y_true: Sequence, scores: Sequence) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError("labels and scores must be one-dimensional")
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (non-member) or 1 (member)")
    if np.unique(y).size < 2:
        raise ValueError("both members (1) and non-members (0) are needed; got one class")
    if not np.isfinite(s).all():
        raise ValueError(f"{int((~np.isfinite(s)).sum())} scores are NaN or infinite")
    return y.astype(int), s


def auc(y_true: Sequence, scores: Sequence) -> float:
    """Area under the ROC curve (ties count one half)."""
    y, s = _validate(y_true, scores)
    return float(roc_auc_score(y, s))


def _roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full ROC curve (no point dropped): FPRs, TPRs, thresholds, thresholds falling."""
    return roc_curve(y, s, drop_intermediate=False)


def tpr_at_fpr(y_true: Sequence, scores: Sequence, fpr: float) -> float:
    """The largest true-positive rate on the ROC curve whose false-positive rate is at most
    ``fpr``. With ``n`` negatives, FPRs below ``1/n`` can only be met with no false positive."""
    fprs, tprs, _ = _roc(*_validate(y_true, scores))
    return float(tprs[fprs <= fpr].max())


def threshold_at_fpr(y_true: Sequence, scores: Sequence, fpr: float) -> float:
    """The lowest threshold ``t`` for which predicting "member" when ``score >= t`` keeps
    the false-positive rate on the negatives at most ``fpr``."""
    fprs, _, thresholds = _roc(*_validate(y_true, scores))
    return float(thresholds[fprs <= fpr][-1])


def precision_recall_f1(y_true: Sequence, scores: Sequence, threshold: float
                        ) -> tuple[float, float, float]:
    """Precision, recall and F1 of predicting "member" when ``score >= threshold``."""
    y, s = _validate(y_true, scores)
    predicted = s >= threshold
    tp = int((predicted & (y == 1)).sum())
    precision = tp / predicted.sum() if predicted.any() else 0.0
    recall = tp / (y == 1).sum()
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def bootstrap_ci(y_true: Sequence, scores: Sequence, groups: Sequence, n_boot: int = 1000,
                 seed: int = 0, fprs: Sequence[float] = FPR_TARGETS, level: float = 0.95
                 ) -> dict:
    """Percentile bootstrap intervals for AUC and TPR at each FPR, resampling *groups*.

    Sentences of one patient are not independent, so whole patients (``groups``) are
    drawn with replacement, members' and non-members' patients separately (each class
    keeps its number of patients). Returns ``{"auc": [lo, hi], "tpr_at_fpr": {fpr: [lo, hi]}}``.
    """
    y, s = _validate(y_true, scores)
    groups = np.asarray(groups)
    if groups.shape != y.shape:
        raise ValueError(f"groups ({groups.size}) and labels ({y.size}) differ in length")
    rng = np.random.default_rng(seed)
    members_of = {}
    for label in (0, 1):
        keys, inverse = np.unique(groups[y == label], return_inverse=True)
        rows = np.flatnonzero(y == label)
        members_of[label] = [rows[inverse == k] for k in range(keys.size)]
    aucs, tprs = [], {f: [] for f in fprs}
    for _ in range(n_boot):
        picked = []
        for label in (0, 1):
            draws = rng.integers(len(members_of[label]), size=len(members_of[label]))
            picked.extend(members_of[label][d] for d in draws)
        index = np.concatenate(picked)
        fpr_curve, tpr_curve, _ = _roc(y[index], s[index])  # one curve for AUC and TPRs
        aucs.append(area_under_curve(fpr_curve, tpr_curve))
        for f in fprs:
            tprs[f].append(tpr_curve[fpr_curve <= f].max())
    tail = (1 - level) / 2 * 100
    interval = lambda values: [float(v) for v in np.percentile(values, [tail, 100 - tail])]  # noqa: E731
    return {"auc": interval(aucs), "tpr_at_fpr": {f: interval(tprs[f]) for f in fprs}}


def evaluate(y_true: Sequence, scores: Sequence, groups: Sequence | None = None,
             n_boot: int = 1000, seed: int = 0, fprs: Sequence[float] = FPR_TARGETS) -> dict:
    """Every metric of one attack on one comparison, as stored in ``metrics.json``."""
    y, s = _validate(y_true, scores)
    n_neg = int((y == 0).sum())
    threshold = threshold_at_fpr(y, s, THRESHOLD_FPR)
    precision, recall, f1 = precision_recall_f1(y, s, threshold)
    result = {
        "auc": auc(y, s),
        "tpr_at_fpr": {str(f): tpr_at_fpr(y, s, f) for f in fprs},
        # FPR targets below 1/n_neg: the TPR there is the TPR with no false positive at all
        "fpr_below_resolution": [str(f) for f in fprs if f < 1 / n_neg],
        "threshold": threshold if np.isfinite(threshold) else None,
        "threshold_fpr": THRESHOLD_FPR,
        "precision": precision, "recall": recall, "f1": f1,
        "n_pos": int((y == 1).sum()), "n_neg": n_neg,
    }
    if groups is not None and n_boot > 0:
        ci = bootstrap_ci(y, s, groups, n_boot=n_boot, seed=seed, fprs=fprs)
        result["auc_ci"] = ci["auc"]
        result["tpr_at_fpr_ci"] = {str(f): v for f, v in ci["tpr_at_fpr"].items()}
        result["ci_resamples"] = "patients"
    return result
