"""Risk metrics of a membership-inference attack.

Scores follow one convention: higher means "more likely a member"; labels are 1 for
members (positives) and 0 for non-members (negatives). Thresholds are always set on the
negatives, so a false-positive rate is what it says, never a quantile of the members.

One private core, :func:`_counts`, gives every ROC curve: one sort of the scores, then
cumulative counts of true and false positives at each distinct threshold. A
patient bootstrap is the same computation with the resamples' patient draw counts, so a
thousand resamples of every attack cost one sort and two matrix products per attack, and
give exactly the resampled rows' own curves.
scikit-learn's ``roc_curve`` and ``roc_auc_score`` are the reference the tests hold it to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

FPR_TARGETS = (0.001, 0.01, 0.1)
THRESHOLD_FPR = 0.1
LEVEL = 0.95


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


@dataclass(frozen=True)
class Resamples:
    """Patient resamples of one comparison, per class (0: non-members, 1: members):
    ``group[c]`` the group index of each of the class's sentences (``rows[c]``) and
    ``counts[c]`` ``[B, G_c]``, how many times each group is drawn in each resample."""

    rows: dict[int, np.ndarray]
    group: dict[int, np.ndarray]
    counts: dict[int, np.ndarray]

    @property
    def n(self) -> int:
        return self.counts[0].shape[0]


def _counts(y: np.ndarray, s: np.ndarray, resamples: Resamples | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curves in counts, thresholds falling: ``(fps, tps, thresholds)``, the false
    and true positives ``[B, T]`` when predicting "member" for scores at or above each of
    the ``T`` distinct scores, for the ``B`` resamples (one row, the sentences as they are,
    without). The curve of a row is (0, 0) then ``(fps / fps[-1], tps / tps[-1])``, as
    scikit-learn's ``roc_curve(..., drop_intermediate=False)``.

    With resamples, the counts are the group draw counts times each group's cumulative
    counts: one matrix product per class, exact (whole numbers far below 2**53). A
    threshold no drawn sentence has repeats the point before it, which changes neither the
    area nor a TPR at an FPR."""
    order = np.argsort(s, kind="mergesort")[::-1]
    ranked = s[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]  # last row of each tie
    rank = np.empty(s.size, dtype=int)
    rank[order] = np.arange(s.size)
    counts = []
    for label in (0, 1):
        if resamples is None:
            rows, group, n_groups = np.flatnonzero(y == label), 0, 1
        else:
            rows, group, n_groups = resamples.rows[label], resamples.group[label], resamples.counts[label].shape[1]
        indicator = np.zeros((n_groups, s.size))
        indicator[group, rank[rows]] = 1.0
        cumulative = np.cumsum(indicator, axis=1)[:, ends]
        counts.append(cumulative if resamples is None else resamples.counts[label] @ cumulative)
    return counts[0], counts[1], ranked[ends]


def _area(fps: np.ndarray, tps: np.ndarray) -> np.ndarray:
    """Trapezoidal area under each row's curve, from (0, 0). In counts, every term is a
    whole number, so the sum is exact and only the final division rounds."""
    twice = fps[:, 0] * tps[:, 0] + np.einsum("ij,ij->i", np.diff(fps, axis=1), tps[:, 1:] + tps[:, :-1])
    return twice / (2 * fps[:, -1] * tps[:, -1])


def _last_within(fps: np.ndarray, target: float) -> np.ndarray:
    """Per row, how many thresholds keep the FPR (``fps / fps[-1]``, as that float) at most
    ``target``: the curve's rates never fall, so they are the first ones."""
    negatives = fps[:, -1]
    k = np.floor(target * negatives)  # the most false positives allowed, made exact below
    k = np.where((k + 1) / negatives <= target, k + 1, np.where(k / negatives > target, k - 1, k))
    return (fps <= k[:, None]).sum(axis=1)


def _tpr_at(fps: np.ndarray, tps: np.ndarray, target: float) -> np.ndarray:
    """Each row's largest TPR at an FPR of at most ``target`` (0 at the origin)."""
    within = _last_within(fps, target)
    rows = np.arange(tps.shape[0])
    return np.where(within > 0, tps[rows, np.maximum(within - 1, 0)], 0.0) / tps[:, -1]


def auc(y_true: Sequence, scores: Sequence) -> float:
    """Area under the ROC curve (ties count one half)."""
    return float(_area(*_counts(*_validate(y_true, scores))[:2])[0])


def tpr_at_fpr(y_true: Sequence, scores: Sequence, fpr: float) -> float:
    """The largest true-positive rate on the ROC curve whose false-positive rate is at most
    ``fpr``. With ``n`` negatives, FPRs below ``1/n`` can only be met with no false positive."""
    fps, tps, _ = _counts(*_validate(y_true, scores))
    return float(_tpr_at(fps, tps, fpr)[0])


def threshold_at_fpr(y_true: Sequence, scores: Sequence, fpr: float) -> float:
    """The lowest threshold ``t`` for which predicting "member" when ``score >= t`` keeps
    the false-positive rate on the negatives at most ``fpr`` (+inf: none does)."""
    fps, _, thresholds = _counts(*_validate(y_true, scores))
    within = int(_last_within(fps, fpr)[0])
    return float(thresholds[within - 1]) if within else float("inf")


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


def resample(y_true: Sequence, groups: Sequence, n_boot: int, seed: int = 0) -> Resamples:
    """``n_boot`` patient resamples of one comparison.

    Sentences of one patient are not independent, so whole patients (``groups``) are
    drawn with replacement, members' and non-members' patients separately (each class
    keeps its number of patients). The draws are the same for every attack of a
    comparison, and for every run compared on the same sets.
    """
    y = np.asarray(y_true).astype(int)
    groups = np.asarray(groups)
    if groups.shape != y.shape:
        raise ValueError(f"groups ({groups.size}) and labels ({y.size}) differ in length")
    rng = np.random.default_rng(seed)
    rows, group, sizes = {}, {}, {}
    for label in (0, 1):
        rows[label] = np.flatnonzero(y == label)
        keys, group[label] = np.unique(groups[rows[label]], return_inverse=True)
        sizes[label] = keys.size
    counts = {label: np.zeros((n_boot, sizes[label])) for label in (0, 1)}
    for b in range(n_boot):
        for label in (0, 1):
            counts[label][b] = np.bincount(rng.integers(sizes[label], size=sizes[label]),
                                           minlength=sizes[label])
    return Resamples(rows, group, counts)


def bootstrap(y_true: Sequence, scores: Sequence, resamples: Resamples,
              fprs: Sequence[float] = FPR_TARGETS) -> dict[str, np.ndarray]:
    """Each resample's AUC and TPR at each FPR (``{"auc": [B], "tpr@<f>": [B], ...}``)."""
    fps, tps, _ = _counts(*_validate(y_true, scores), resamples)
    return {"auc": _area(fps, tps), **{f"tpr@{f}": _tpr_at(fps, tps, f) for f in fprs}}


def interval(values: np.ndarray, level: float = LEVEL) -> list[float]:
    """Percentile interval of bootstrap values."""
    tail = (1 - level) / 2 * 100
    return [float(v) for v in np.percentile(values, [tail, 100 - tail])]


def bootstrap_ci(y_true: Sequence, scores: Sequence, groups: Sequence, n_boot: int = 1000,
                 seed: int = 0, fprs: Sequence[float] = FPR_TARGETS, level: float = LEVEL) -> dict:
    """Percentile bootstrap intervals for AUC and TPR at each FPR, resampling *groups*
    (see :func:`resample_weights`). Returns ``{"auc": [lo, hi], "tpr_at_fpr": {fpr: [lo, hi]}}``."""
    draws = bootstrap(y_true, scores, resample(y_true, groups, n_boot, seed), fprs)
    return {"auc": interval(draws["auc"], level),
            "tpr_at_fpr": {f: interval(draws[f"tpr@{f}"], level) for f in fprs}}


def evaluate(y_true: Sequence, scores: Sequence, groups: Sequence | None = None,
             n_boot: int = 1000, seed: int = 0, fprs: Sequence[float] = FPR_TARGETS,
             resamples: Resamples | None = None) -> dict:
    """Every metric of one attack on one comparison, as stored in ``metrics.json``;
    ``resamples`` (from :func:`resample`) reuses one comparison's draws."""
    y, s = _validate(y_true, scores)
    fps, tps, thresholds = _counts(y, s)
    n_neg = int((y == 0).sum())
    within = int(_last_within(fps, THRESHOLD_FPR)[0])
    threshold = float(thresholds[within - 1]) if within else float("inf")
    precision, recall, f1 = precision_recall_f1(y, s, threshold)
    result = {
        "auc": float(_area(fps, tps)[0]),
        "tpr_at_fpr": {str(f): float(_tpr_at(fps, tps, f)[0]) for f in fprs},
        # FPR targets below 1/n_neg: the TPR there is the TPR with no false positive at all
        "fpr_below_resolution": [str(f) for f in fprs if f < 1 / n_neg],
        "threshold": threshold if np.isfinite(threshold) else None,
        "threshold_fpr": THRESHOLD_FPR,
        "precision": precision, "recall": recall, "f1": f1,
        "n_pos": int((y == 1).sum()), "n_neg": n_neg,
    }
    if resamples is None and groups is not None and n_boot > 0:
        resamples = resample(y, groups, n_boot, seed)
    if resamples is not None and resamples.n:
        draws = bootstrap(y, s, resamples, fprs)
        result["auc_ci"] = interval(draws["auc"])
        result["tpr_at_fpr_ci"] = {str(f): interval(draws[f"tpr@{f}"]) for f in fprs}
        result["ci_resamples"] = "patients"
    return result


def evaluate_all(y_true: Sequence, scores: Mapping[str, Sequence], groups: Sequence,
                 n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
    """:func:`evaluate` of several attacks on one comparison, on the same resamples."""
    resamples = resample(y_true, groups, n_boot, seed) if n_boot > 0 else None
    return {name: evaluate(y_true, s, resamples=resamples) for name, s in scores.items()}
