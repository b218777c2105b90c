"""Risk metrics of a membership-inference attack.

Scores follow one convention: higher means "more likely a member"; labels are 1 for
members (positives) and 0 for non-members (negatives). Thresholds are always set on the
negatives, so a false-positive rate is what it says, never a quantile of the members.

One private core, :func:`_curves`, gives every ROC curve: one sort of the scores, then
each class's cumulative weight of sentences in score order. A curve is a weighting of the
sentences: all of weight one for the sentences as they are, and the draw counts of their
patients in a resample for the bootstrap. A thousand resamples of an attack then cost one
sort and, per resample, a few passes over the sentences (whatever the number of patients,
in chunks of resamples of bounded memory), and give exactly the curves of the resampled
rows themselves.
scikit-learn's ``roc_curve`` and ``roc_auc_score`` are the reference the tests hold it to.

Longer than most modules (about 340 lines): every curve, interval and paired difference
goes through the one private core, so they are kept beside it (as scikit-learn keeps its
curves in ``metrics/_ranking.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np

FPR_TARGETS = (0.001, 0.01, 0.1)
THRESHOLD_FPR = 0.1
LEVEL = 0.95
# LiRA's (research/mi_lira_2021/plot.py) and MIMIR's code take tpr[np.where(fpr < target)[0][-1]]
# on scikit-learn's ROC curve: with N non-members, a target of k/N allows k - 1 false
# positives, and the numbers compare with their published tables. (Here on every point of
# the curve; scikit-learn's default drops the inner points of straight runs, which only
# tied scores make, and the formula can then read a lower TPR.)
TPR_CONVENTION = "largest TPR (and lowest threshold) with FPR < target, strictly (LiRA, MIMIR)"


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
    ``counts[c]`` ``[B, G_c]``, how many times each group is drawn in each resample (the
    smallest unsigned type that holds ``G_c``)."""

    rows: dict[int, np.ndarray]
    group: dict[int, np.ndarray]
    counts: dict[int, np.ndarray]

    @property
    def n(self) -> int:
        return self.counts[0].shape[0]


# the most numbers an array of one chunk of resampled curves holds ([resamples x sentences],
# 64 MB of int64): bounds the memory whatever the size of the study
_CHUNK = 1 << 23


@dataclass(frozen=True)
class _Curves:
    """ROC curves of one attack on one comparison, ``B`` at once. Per class ``c`` (0
    negatives, 1 positives), its sentences sorted by score, falling: ``level[c]`` each
    one's distinct score (its index in ``thresholds``, falling), and ``cumulative[c]``
    ``[B, n_c + 1]`` the summed weight of its first ``0 .. n_c`` sentences in each curve.
    A sentence weighs one as it is, or its patient's draw count in a resample."""

    thresholds: np.ndarray
    level: dict[int, np.ndarray]
    cumulative: dict[int, np.ndarray]

    def totals(self, label: int) -> np.ndarray:
        """``[B]`` sentences of class ``label`` in each curve (negatives N, positives P)."""
        return self.cumulative[label][:, -1]

    def at(self, label: int, index: np.ndarray) -> np.ndarray:
        """``[B]`` false (0) or true (1) positives of each curve at its own threshold
        ``index[b]``, scores at or above it; 0 where the index is -1 (above every score)."""
        position = np.searchsorted(self.level[label], index, side="right")
        return self.cumulative[label][np.arange(position.size), position]


def _curves(y: np.ndarray, s: np.ndarray, resamples: Resamples | None = None) -> Iterator[_Curves]:
    """The ROC curves of scores ``s`` (the core behind every metric here): one sort, then
    per chunk of resamples the cumulative weights of each class's sentences in score
    order (without resamples, one curve of weight one). Every weight is a whole number far
    below 2**53, so every sum below is exact."""
    order = np.argsort(s, kind="mergesort")[::-1]
    ranked = s[order]
    new = np.r_[True, ranked[1:] != ranked[:-1]]  # the first row of each distinct score
    level = np.cumsum(new) - 1  # each sorted row's distinct score, 0 the highest
    position = np.empty(y.size, dtype=np.intp)
    position[order] = np.arange(y.size)  # each row's place in score order
    levels, groups, counts = {}, {}, {}
    for label in (0, 1):
        if resamples is None:
            rows = np.flatnonzero(y == label)
            group, counts[label] = np.zeros(rows.size, dtype=np.intp), np.ones((1, 1), dtype=np.int64)
        else:
            rows, group, counts[label] = resamples.rows[label], resamples.group[label], resamples.counts[label]
        by_score = np.argsort(position[rows], kind="stable")
        levels[label], groups[label] = level[position[rows[by_score]]], group[by_score]
    n_curves = counts[0].shape[0]
    size = max(1, _CHUNK // y.size)
    for first in range(0, max(n_curves, 1), size):  # one chunk at least, empty for no resample
        cumulative = {}
        for label in (0, 1):
            weights = np.take(counts[label][first:first + size], groups[label], axis=1)  # [chunk, n_c]
            cumulative[label] = np.empty((weights.shape[0], weights.shape[1] + 1), dtype=np.int64)
            cumulative[label][:, 0] = 0
            cumulative[label][:, 1:] = weights
            # in place, along rows, in one integer type: several times faster than casting
            np.cumsum(cumulative[label][:, 1:], axis=1, out=cumulative[label][:, 1:])
        yield _Curves(ranked[new], levels, cumulative)


def _curve(y: np.ndarray, s: np.ndarray) -> _Curves:
    """The one ROC curve of the sentences as they are."""
    return next(_curves(y, s))


def _area(curves: _Curves) -> np.ndarray:
    """``[B]`` areas under the curves: the trapezoidal area of a step ROC curve is the
    Mann-Whitney count over P x N, here weighted: at each distinct score of the members,
    their weight times the non-members' weight strictly below plus half that at it. Only
    the final division rounds."""
    member_level, negative_level = curves.level[1], curves.level[0]
    first = np.flatnonzero(np.r_[True, member_level[1:] != member_level[:-1]])
    levels = member_level[first]  # the members' distinct scores
    weight = np.diff(np.take(curves.cumulative[1], np.r_[first, member_level.size], axis=1), axis=1)
    # 2 x (below + at / 2) = 2 N - above - at_or_above, all whole numbers
    above = np.take(curves.cumulative[0], np.searchsorted(negative_level, levels, side="left"), axis=1)
    above += np.take(curves.cumulative[0], np.searchsorted(negative_level, levels, side="right"), axis=1)
    negatives, positives = curves.totals(0), curves.totals(1)
    count = (2 * negatives * positives - np.einsum("bl,bl->b", weight, above)) / 2
    return count / (positives * negatives)


def _within(curves: _Curves, target: float) -> np.ndarray:
    """``[B]`` the last threshold index whose FPR (``fps / N`` as that float) is below
    ``target`` (-1: none, only the origin): the threshold just above the score of the
    first non-member whose weight takes the false positives past those allowed, found in
    each curve by bisection."""
    if not target > 0:
        raise ValueError(f"an FPR target must be above 0 (the TPR is taken at FPR < target), not {target}")
    negatives = curves.totals(0)
    k = np.ceil(target * negatives) - 1  # the most false positives allowed, made exact below
    k = np.where((k + 1) / negatives < target, k + 1, np.where(k / negatives >= target, k - 1, k))
    cumulative, n = curves.cumulative[0], curves.level[0].size
    curve = np.arange(negatives.size)
    low = np.zeros(negatives.size, dtype=np.intp)  # cumulative[low] <= k (cumulative[0] = 0)
    high = np.full(negatives.size, n + 1)  # cumulative[high] > k, or past the end
    while np.any(high - low > 1):
        middle = (low + high) // 2
        fits = cumulative[curve, middle] <= k
        low, high = np.where(fits, middle, low), np.where(fits, high, middle)
    # non-member ``low`` (from 0) is the first that does not fit
    return np.where(low == n, curves.thresholds.size - 1, curves.level[0][np.minimum(low, n - 1)] - 1)


def _tpr_at(curves: _Curves, target: float) -> np.ndarray:
    """``[B]`` each curve's largest TPR at an FPR below ``target``."""
    return curves.at(1, _within(curves, target)) / curves.totals(1)


def roc_points(y_true: Sequence, scores: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)``: the ROC curve's points from (0, 0), thresholds falling."""
    curves = _curve(*_validate(y_true, scores))
    every = np.arange(curves.thresholds.size)
    fps, tps = (curves.cumulative[c][0, np.searchsorted(curves.level[c], every, side="right")]
                for c in (0, 1))
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def auc(y_true: Sequence, scores: Sequence) -> float:
    """Area under the ROC curve (ties count one half)."""
    return float(_area(_curve(*_validate(y_true, scores)))[0])


def tpr_at_fpr(y_true: Sequence, scores: Sequence, fpr: float) -> float:
    """The largest true-positive rate on the ROC curve whose false-positive rate is below
    ``fpr`` (strictly, as LiRA's and MIMIR's code: :data:`TPR_CONVENTION`). With ``n``
    negatives, a target at or below ``1/n`` allows no false positive at all."""
    return float(_tpr_at(_curve(*_validate(y_true, scores)), fpr)[0])


def _threshold(curves: _Curves, fpr: float) -> float:
    index = int(_within(curves, fpr)[0])
    return float(curves.thresholds[index]) if index >= 0 else float("inf")


def threshold_at_fpr(y_true: Sequence, scores: Sequence, fpr: float) -> float:
    """The lowest threshold ``t`` for which predicting "member" when ``score >= t`` keeps
    the false-positive rate on the negatives below ``fpr``, strictly as the TPR at FPR
    (+inf: only predicting no member at all does)."""
    return _threshold(_curve(*_validate(y_true, scores)), fpr)


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
    # a draw count is at most the number of groups: the smallest type that holds it
    counts = {label: np.zeros((n_boot, sizes[label]), dtype=np.min_scalar_type(sizes[label]))
              for label in (0, 1)}
    for b in range(n_boot):
        for label in (0, 1):
            counts[label][b] = np.bincount(rng.integers(sizes[label], size=sizes[label]),
                                           minlength=sizes[label])
    return Resamples(rows, group, counts)


def bootstrap(y_true: Sequence, scores: Sequence, resamples: Resamples,
              fprs: Sequence[float] = FPR_TARGETS) -> dict[str, np.ndarray]:
    """Each resample's AUC and TPR at each FPR (``{"auc": [B], "tpr@<f>": [B], ...}``)."""
    chunks = [{"auc": _area(curves), **{f"tpr@{f}": _tpr_at(curves, f) for f in fprs}}
              for curves in _curves(*_validate(y_true, scores), resamples)]
    return {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}


def paired_auc_differences(y_true: Sequence, scores: Mapping[str, Sequence], baseline: Sequence | None,
                           resamples: Resamples | None, floor: float = 0.0
                           ) -> dict[str, tuple[float, np.ndarray]]:
    """Per attack, ``(AUC - the baseline's AUC, [B] the same difference in each resample)``:
    attack and baseline scored on the very same resampled patients, so that the interval of
    the differences is paired. The baseline's AUC counts as ``floor`` where it is lower (in
    each resample alike); ``baseline`` None is chance (AUC 0.5 in every resample). Without
    resamples the draws are empty."""
    y = _validate(y_true, next(iter(scores.values())))[0]

    def draws(s: np.ndarray) -> np.ndarray:
        if resamples is None or not resamples.n:
            return np.empty(0)
        return np.concatenate([_area(curves) for curves in _curves(y, s, resamples)])

    if baseline is None:
        base_auc, base_draws = 0.5, 0.5
    else:
        base = _validate(y, baseline)[1]
        base_auc, base_draws = max(floor, float(_area(_curve(y, base))[0])), np.maximum(floor, draws(base))
    result = {}
    for name, values in scores.items():
        s = _validate(y, values)[1]
        result[name] = (float(_area(_curve(y, s))[0]) - base_auc, draws(s) - base_draws)
    return result


def interval(values: np.ndarray, level: float = LEVEL) -> list[float]:
    """Percentile interval of bootstrap values."""
    tail = (1 - level) / 2 * 100
    return [float(v) for v in np.percentile(values, [tail, 100 - tail])]


def bootstrap_ci(y_true: Sequence, scores: Sequence, groups: Sequence, n_boot: int = 1000,
                 seed: int = 0, fprs: Sequence[float] = FPR_TARGETS, level: float = LEVEL) -> dict:
    """Percentile bootstrap intervals for AUC and TPR at each FPR, resampling *groups*
    (see :func:`resample`). Returns ``{"auc": [lo, hi], "tpr_at_fpr": {fpr: [lo, hi]}}``."""
    draws = bootstrap(y_true, scores, resample(y_true, groups, n_boot, seed), fprs)
    return {"auc": interval(draws["auc"], level),
            "tpr_at_fpr": {f: interval(draws[f"tpr@{f}"], level) for f in fprs}}


def evaluate(y_true: Sequence, scores: Sequence, groups: Sequence | None = None,
             n_boot: int = 1000, seed: int = 0, fprs: Sequence[float] = FPR_TARGETS,
             resamples: Resamples | None = None) -> dict:
    """Every metric of one attack on one comparison, as stored in ``metrics.json``;
    ``resamples`` (from :func:`resample`) reuses one comparison's draws."""
    y, s = _validate(y_true, scores)
    curves = _curve(y, s)
    n_neg = int((y == 0).sum())
    threshold = _threshold(curves, THRESHOLD_FPR)
    precision, recall, f1 = precision_recall_f1(y, s, threshold)
    result = {
        "auc": float(_area(curves)[0]),
        "tpr_at_fpr": {str(f): float(_tpr_at(curves, f)[0]) for f in fprs},
        "tpr_at_fpr_convention": TPR_CONVENTION,
        # FPR targets at or below 1/n_neg: the TPR there is the TPR with no false positive at all
        "fpr_below_resolution": [str(f) for f in fprs if f <= 1 / n_neg],
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
