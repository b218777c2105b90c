"""Are the attack numbers measuring membership at all? A model-free blind baseline.

Das, Zhang & Tramèr (2024, "Blind baselines beat membership inference attacks for
foundation models") and Meeus et al. (2024, "SoK: membership inference attacks on LLMs
are rushing nowhere") found that on many published benchmarks a classifier that never
sees the model tells members from non-members, because the two sets were drawn from
different distributions. This is that classifier: word uni- and bigrams (TF-IDF) and a
logistic regression, on the sentence text alone, cross-validated with every patient's
sentences in one fold (a patient's names and facts cannot carry over from training to
test folds). Its out-of-fold probability of "member" is a score like any other, kept per
comparison in the score table (``text_only_<comparison>``; no text), so its AUC and
patient-bootstrap interval come from the same code as the attacks'. Clearly above 0.5,
every attack's number on that comparison is inflated by the shift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PREFIX = "text_only_"
FOLDS = 5


def column(comparison: str) -> str:
    return PREFIX + comparison


def comparison_of(name: str) -> str | None:
    return name[len(PREFIX):] if name.startswith(PREFIX) else None


def out_of_fold_scores(texts: list[str], labels: np.ndarray, patients: np.ndarray, seed: int = 0
                       ) -> np.ndarray:
    """Each sentence's probability of label 1 from a text classifier that never saw its
    patient (``FOLDS`` folds grouped by patient, stratified by label)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline

    folds = StratifiedGroupKFold(n_splits=min(FOLDS, len(np.unique(patients))), shuffle=True,
                                 random_state=seed)
    scores = np.full(len(texts), np.nan)
    texts = np.asarray(texts, dtype=object)
    for train, test in folds.split(texts, labels, groups=patients):
        model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                              LogisticRegression(max_iter=2000))
        model.fit(texts[train], labels[train])
        scores[test] = model.predict_proba(texts[test])[:, 1]
    return scores


def text_only_columns(sets: pd.DataFrame, comparisons: dict[str, tuple[str, str]], seed: int = 0
                      ) -> dict[str, np.ndarray]:
    """``text_only_<comparison>`` for each comparison whose two sets are present: the
    out-of-fold score on that comparison's rows, NaN on the others."""
    result = {}
    for name, (positive, negative) in comparisons.items():
        rows = sets["set"].isin([positive, negative]).to_numpy()
        if not {positive, negative} <= set(sets["set"]):
            continue
        values = np.full(len(sets), np.nan)
        values[rows] = out_of_fold_scores(sets.loc[rows, "text"].tolist(),
                                          (sets.loc[rows, "set"] == positive).to_numpy(int),
                                          sets.loc[rows, "patient_id"].to_numpy(), seed)
        result[column(name)] = values
    return result
