"""Are the attack numbers measuring membership at all? A model-free blind baseline.

Das, Zhang & Tramèr (2024, "Blind baselines beat membership inference attacks for
foundation models") and Meeus et al. (2024, "SoK: membership inference attacks on LLMs
are rushing nowhere") found that on many published benchmarks a classifier that never
sees the model tells members from non-members, because the two sets were drawn from
different distributions. This is that classifier: word uni- and bigrams (TF-IDF, reduced
to ``COMPONENTS`` latent dimensions; both fitted without labels) and a ridge classifier,
on the sentence text alone, cross-validated with every patient's sentences in one fold (a
patient's names and facts cannot carry over from training to test folds). Its
out-of-fold score of "member" is kept per comparison in the score table
(``text_only_<comparison>``; no text), and its AUC is reported.

Whether the sets differ is a permutation test: set labels permuted by whole patients, the
classifier refitted on the same folds, the cross-validated AUC computed again;
``p = (1 + #{permuted AUC >= observed}) / (B + 1)``, exact when the two sets' patients are
exchangeable (drawn alike), whatever the refitting does. The ridge fit is linear in the
labels, so all ``B`` refits of a fold are one solve.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PREFIX = "text_only_"
FOLDS = 5
COMPONENTS = 200
RIDGE = 1.0
PERMUTATIONS = 999
_CHUNK = 250  # label vectors refitted at once


def column(comparison: str) -> str:
    return PREFIX + comparison


def comparison_of(name: str) -> str | None:
    return name[len(PREFIX):] if name.startswith(PREFIX) else None


def text_features(texts: list[str], seed: int = 0) -> np.ndarray:
    """TF-IDF word uni- and bigrams reduced by a truncated SVD (latent semantic analysis),
    ``[sentences, <= COMPONENTS]``; no label is used."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit_transform(texts)
    k = min(COMPONENTS, min(words.shape) - 1)
    if k < 1:
        return np.zeros((len(texts), 1))
    return TruncatedSVD(k, random_state=seed).fit_transform(words)


def group_folds(patients: np.ndarray, seed: int = 0) -> np.ndarray:
    """A seeded fold per patient id (sorted ids: the same on every machine)."""
    ids = np.unique(patients)
    order = np.random.default_rng([seed, 13]).permutation(ids.size)
    fold_of = np.empty(ids.size, int)
    fold_of[order] = np.arange(ids.size) % min(FOLDS, ids.size)
    return fold_of[np.searchsorted(ids, patients)]


def fold_fits(features: np.ndarray, fold: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per fold ``(test rows, training rows, hat)``: ridge regression with an intercept is
    linear in the labels, the test rows' scores ``hat @ (y - mean)`` of the training labels
    ``y`` (the intercept left out: it would only carry each fold's share of positives,
    which anti-correlates with the test fold's and pulls the pooled AUC below 0.5)."""
    fits = []
    for k in np.unique(fold):
        test, train = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        centre = features[train].mean(0)
        x = features[train] - centre
        solved = np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T)
        fits.append((test, train, (features[test] - centre) @ solved))
    return fits


def out_of_fold(fits: list[tuple[np.ndarray, np.ndarray, np.ndarray]], labels: np.ndarray) -> np.ndarray:
    """Each sentence's score for each label column (``[sentences, k]``) from the fit on the
    other folds."""
    scores = np.empty(labels.shape)
    for test, train, hat in fits:
        scores[test] = hat @ (labels[train] - labels[train].mean(0))
    return scores


def _auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each column (ties counted half)."""
    from scipy.stats import rankdata
    ranks = rankdata(scores, axis=0)
    positives = labels.sum(0)
    negatives = labels.shape[0] - positives
    return ((ranks * labels).sum(0) - positives * (positives + 1) / 2) / (positives * negatives)


def permutation_test(features: np.ndarray, labels: np.ndarray, patients: np.ndarray, seed: int = 0,
                     permutations: int = PERMUTATIONS) -> tuple[np.ndarray, dict]:
    """``(out-of-fold scores, test)`` of "the two sets differ": ``labels`` per sentence
    (1 positive set), permuted by (set, patient); the folds come from the patient ids
    alone, never from the labels, so every permutation is refitted on the same folds."""
    _, unit = np.unique(np.stack([labels.astype(str), patients.astype(str)], 1), axis=0, return_inverse=True)
    unit = unit.ravel()
    unit_label = np.zeros(unit.max() + 1)
    unit_label[unit] = labels
    fits = fold_fits(features, group_folds(patients.astype(str), seed))
    observed = out_of_fold(fits, labels[:, None].astype(float))
    auc = float(_auc(labels[:, None], observed)[0])
    rng = np.random.default_rng([seed, 17])
    null = []
    for start in range(0, permutations, _CHUNK):
        shuffled = rng.permuted(np.tile(unit_label, (min(_CHUNK, permutations - start), 1)), axis=1)
        y = shuffled[:, unit].T
        null.append(_auc(y, out_of_fold(fits, y)))
    null = np.concatenate(null)
    return observed[:, 0], {"auc": auc, "p_value": float((1 + (null >= auc - 1e-12).sum()) / (permutations + 1)),
                            "permutations": permutations, "null_auc_median": float(np.median(null)),
                            "null_auc_95": float(np.quantile(null, 0.95))}


def text_only(sets: pd.DataFrame, comparisons: dict[str, tuple[str, str]], seed: int = 0
              ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """``(columns, tests)``: ``text_only_<comparison>`` for each comparison whose two sets
    are present (the out-of-fold score on that comparison's rows, NaN on the others), and
    each comparison's permutation test."""
    result, tests = {}, {}
    for name, (positive, negative) in comparisons.items():
        if not {positive, negative} <= set(sets["set"]):
            continue
        rows = sets["set"].isin([positive, negative]).to_numpy()
        chosen = sets[rows]
        values = np.full(len(sets), np.nan)
        values[rows], tests[name] = permutation_test(
            text_features(chosen["text"].tolist(), seed), (chosen["set"] == positive).to_numpy(int),
            chosen["patient_id"].to_numpy(), seed)
        result[column(name)] = values
    return result, tests
