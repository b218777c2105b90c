"""Risk metrics of a membership-inference attack.

Scores follow one convention: higher means "more likely a member"; labels are 1 for
members (positives) and 0 for non-members (negatives). Thresholds are always set on the
negatives, so a false-positive rate is what it says, never a quantile of the members.

One private core, :func:`_curves`, gives every ROC curve: one sort of the scores, then
each patient group's cumulative counts of sentences at or above each distinct score. A
curve is a weighting of the groups: all of weight one for the sentences as they are, and
the draw counts of a resample of patients for the bootstrap. A thousand resamples of an
attack then cost one sort and a few small matrix products, and give exactly the curves
of the resampled rows themselves.
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


@dataclass(frozen=True)
class _Curves:
    """One attack on one comparison, by group: ``scored[c]`` ``[T, G_c]`` counts, at each
    of the ``T`` distinct scores (``thresholds``, falling), for each group of class ``c``,
    its sentences with that score, and ``cumulative[c]`` those scored at or above it;
    ``counts[c]`` ``[B, G_c]`` the weight of each group in each of ``B`` curves (one curve
    of weight one without resamples)."""

    thresholds: np.ndarray
    scored: dict[int, np.ndarray]
    cumulative: dict[int, np.ndarray]
    counts: dict[int, np.ndarray]

    def totals(self, label: int) -> np.ndarray:
        """``[B]`` sentences of class ``label`` in each curve (negatives N, positives P)."""
        return self.counts[label] @ self.cumulative[label][-1]

    def at(self, label: int, index: np.ndarray) -> np.ndarray:
        """``[B]`` false (0) or true (1) positives of each curve at its own threshold
        ``index[b]``; 0 where the index is -1 (the origin, above every score)."""
        values = np.einsum("bg,bg->b", self.counts[label], self.cumulative[label][np.maximum(index, 0)])
        return np.where(index >= 0, values, 0.0)


def _curves(y: np.ndarray, s: np.ndarray, resamples: Resamples | None = None) -> _Curves:
    """The ROC curves of scores ``s`` (the core behind every metric here). Every count in
    them is a whole number far below 2**53, so every sum below is exact."""
    order = np.argsort(s, kind="mergesort")[::-1]
    ranked = s[order]
    new = np.r_[True, ranked[1:] != ranked[:-1]]  # the first row of each distinct score
    level = np.empty(s.size, dtype=int)
    level[order] = np.cumsum(new) - 1  # each row's distinct score, 0 the highest
    n_levels = int(new.sum())
    scored, cumulative, counts = {}, {}, {}
    for label in (0, 1):
        if resamples is None:
            rows, group, n_groups = np.flatnonzero(y == label), 0, 1
            counts[label] = np.ones((1, 1))
        else:
            rows, group, counts[label] = resamples.rows[label], resamples.group[label], resamples.counts[label]
            n_groups = counts[label].shape[1]
        scored[label] = np.bincount(level[rows] * n_groups + group, minlength=n_levels * n_groups
                                    ).reshape(n_levels, n_groups).astype(float)
        cumulative[label] = np.cumsum(scored[label], axis=0)
    return _Curves(ranked[new], scored, cumulative, counts)


def _area(curves: _Curves) -> np.ndarray:
    """``[B]`` areas under the curves: the trapezoidal area of a step ROC curve is the
    Mann-Whitney count (a member above a non-member counts 1, a tie one half) over P x N,
    computed group by group: ``M[g, h]`` for members of group g against non-members of
    group h, then ``counts_1 M counts_0`` per curve. Only the final division rounds."""
    negatives = curves.cumulative[0]
    below = negatives[-1:] - negatives  # non-members strictly below each threshold
    wins = curves.scored[1].T @ (below + 0.5 * curves.scored[0])
    count = ((curves.counts[1] @ wins) * curves.counts[0]).sum(axis=1)
    return count / (curves.totals(1) * curves.totals(0))


def _within(curves: _Curves, target: float) -> np.ndarray:
    """``[B]`` the last threshold index whose FPR (``fps / N`` as that float) is at most
    ``target`` (-1: none, only the origin). FPRs never fall along a curve, so each curve's
    index is found by bisection on the group counts, never the whole curve."""
    negatives = curves.totals(0)
    k = np.floor(target * negatives)  # the most false positives allowed, made exact below
    k = np.where((k + 1) / negatives <= target, k + 1, np.where(k / negatives > target, k - 1, k))
    low = np.full(negatives.shape, -1)  # fps(low) <= k always (the origin)
    high = np.full(negatives.shape, curves.thresholds.size)  # fps(high) > k, or past the end
    while np.any(high - low > 1):
        middle = (low + high) // 2
        ok = curves.at(0, np.minimum(middle, curves.thresholds.size - 1)) <= k
        low, high = np.where(ok, middle, low), np.where(ok, high, middle)
    return low


def _tpr_at(curves: _Curves, target: float) -> np.ndarray:
    """``[B]`` each curve's largest TPR at an FPR of at most ``target``."""
    return curves.at(1, _within(curves, target)) / curves.totals(1)


def roc_points(y_true: Sequence, scores: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)``: the ROC curve's points from (0, 0), thresholds falling."""
    curves = _curves(*_validate(y_true, scores))
    fps, tps = curves.cumulative[0][:, 0], curves.cumulative[1][:, 0]
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def auc(y_true: Sequence, scores: Sequence) -> float:
    """Area under the ROC curve (ties count one half)."""
    return float(_area(_curves(*_validate(y_true, scores)))[0])


def tpr_at_fpr(y_true: Sequence, scores: Sequence, fpr: float) -> float:
    """The largest true-positive rate on the ROC curve whose false-positive rate is at most
    ``fpr``. With ``n`` negatives, FPRs below ``1/n`` can only be met with no false positive."""
    return float(_tpr_at(_curves(*_validate(y_true, scores)), fpr)[0])


def _threshold(curves: _Curves, fpr: float) -> float:
    index = int(_within(curves, fpr)[0])
    return float(curves.thresholds[index]) if index >= 0 else float("inf")


def threshold_at_fpr(y_true: Sequence, scores: Sequence, fpr: float) -> float:
    """The lowest threshold ``t`` for which predicting "member" when ``score >= t`` keeps
    the false-positive rate on the negatives at most ``fpr`` (+inf: none does)."""
    return _threshold(_curves(*_validate(y_true, scores)), fpr)


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
    curves = _curves(*_validate(y_true, scores), resamples)
    return {"auc": _area(curves), **{f"tpr@{f}": _tpr_at(curves, f) for f in fprs}}


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
    curves = _curves(y, s)
    n_neg = int((y == 0).sum())
    threshold = _threshold(curves, THRESHOLD_FPR)
    precision, recall, f1 = precision_recall_f1(y, s, threshold)
    result = {
        "auc": float(_area(curves)[0]),
        "tpr_at_fpr": {str(f): float(_tpr_at(curves, f)[0]) for f in fprs},
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
