"""A membership test per patient: "was any of this patient's notes in the training data?"

After dataset inference (Maini et al. 2024, "LLM dataset inference: did you train on my
dataset?"), adapted to patients:

1. The attack scores of each sentence (every attack but the blind baselines),
   standardised on the population set, are combined linearly: Fisher's discriminant of
   members against non-members (ridge-regularised), learned *cross-fitted*: the weights
   applied to a patient were learned on the other folds' patients, never with its own
   label.
2. A patient's statistic is the mean combined score of its sentences.
3. The null is calibrated on *patients* known not to be in the training data, of the
   tested patient's own population: the population set's patients for MIMIC patients
   (members and non-members), the other folds' external patients for an external one.
   Sentences of one patient are correlated (same facts, same style), so they are not
   independent draws: a random-effects model of the null patients' statistics (a mean,
   a between-patient and a within-patient variance) gives the spread of a mean of ``n``
   sentences, ``sigma_b^2 + sigma_w^2 / n``.
4. The one-sided p-value of ``(statistic - mean) / spread`` under Student's t with one
   degree of freedom fewer than the null patients; Benjamini-Hochberg q-values over every
   tested patient.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import columns
from .attacks import is_blind

FOLDS = 5
RIDGE = 1e-3  # of the mean variance, added to the covariance's diagonal
FDR = 0.05
MIN_NULL_PATIENTS = 20
RECOMMENDED_NULL_PATIENTS = 100


def _features(table: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """The attack score columns the statistic combines (no blind baseline), standardised
    on the population sentences."""
    names = [a for a in columns.attack_names(table) if not is_blind(a)]
    values = table[[columns.score(a) for a in names]].to_numpy(float)
    null = values[(table["set"] == "population").to_numpy()]
    spread = null.std(0)
    return names, (values - null.mean(0)) / np.where(spread > 0, spread, 1.0)


def fisher_weights(members: np.ndarray, non_members: np.ndarray) -> np.ndarray:
    """Fisher's linear discriminant of two ``[n, d]`` samples, ridge-regularised, scaled
    to unit length."""
    covariance = np.atleast_2d((np.cov(members, rowvar=False) + np.cov(non_members, rowvar=False)) / 2)
    covariance = covariance + RIDGE * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    weights = np.linalg.solve(covariance, members.mean(0) - non_members.mean(0))
    return weights / np.linalg.norm(weights)


def null_model(mean: np.ndarray, var: np.ndarray, n: np.ndarray) -> tuple[float, float, float]:
    """``(mean, between-patient variance, within-patient variance)`` of the null patients,
    from each one's mean score, the variance of its scores and its number of sentences:
    method-of-moments random effects. With one sentence per null patient the whole
    variance counts as between patients, which overstates the spread of a longer
    patient's mean: conservative."""
    several = n > 1
    if not several.any():  # one sentence each: no way to split the variance; all of it between
        return float(mean.mean()), float(mean.var(ddof=1)), 0.0
    within = float((var[several] * (n[several] - 1)).sum() / (n[several] - 1).sum())
    between = max(0.0, float(mean.var(ddof=1) - (within / n).mean()))
    return float(mean.mean()), between, within


def t_sf(t: np.ndarray, df: int) -> np.ndarray:
    """P(T >= t) under Student's t with ``df`` degrees of freedom."""
    from scipy.special import stdtr
    return stdtr(df, -np.asarray(t, dtype=float))


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (adjusted p-values) of independent p-values."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="mergesort")
    scaled = p[order] * p.size / np.arange(1, p.size + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.minimum(q, 1.0)
    return out


def _folds(patients: pd.Series, seed: int) -> pd.Series:
    """A seeded fold per patient (sorted ids, so the same on every machine)."""
    ids = np.sort(patients.unique())
    order = np.random.default_rng([seed, 7]).permutation(ids.size)
    return patients.map(dict(zip(ids[order], np.arange(ids.size) % FOLDS)))


def _group_moments(group: np.ndarray, n: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each group's mean score and the variance of its scores (0 for a single sentence),
    in two passes, as pandas computes them."""
    mean = np.bincount(group, score, minlength=n.size) / n
    squares = np.bincount(group, (score - mean[group]) ** 2, minlength=n.size)
    return mean, np.where(n > 1, squares / np.maximum(n - 1, 1), 0.0)


def membership_tests(table: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, dict] | None:
    """``(patients.csv's table, metrics.json's summary)``, or None without the sets it
    needs (members, non-members, and enough population patients)."""
    present = set(table["set"])
    null_patients = table.loc[table["set"] == "population", "patient_id"].nunique()
    if not {"members", "non_members", "population"} <= present or null_patients < MIN_NULL_PATIENTS:
        return None
    names, features = _features(table)
    fold = _folds(table["patient_id"], seed).to_numpy()
    sets = table["set"].to_numpy()
    # one group per (set, patient), in sorted order, found once for every fold
    grouped = table[["set", "patient_id"]].assign(fold=fold).groupby(["set", "patient_id"], sort=True)
    group = grouped.ngroup().to_numpy()
    patients = grouped.agg(fold=("fold", "first"), n=("fold", "size")).reset_index()
    n = patients["n"].to_numpy(float)
    patient_set, patient_fold = patients["set"].to_numpy(), patients["fold"].to_numpy()
    population = patient_set == "population"
    statistic, p_value = np.full(n.size, np.nan), np.full(n.size, np.nan)
    for k in range(FOLDS):
        train = fold != k
        weights = fisher_weights(features[train & (sets == "members")],
                                 features[train & (sets == "non_members")])
        mean, var = _group_moments(group, n, features @ weights)
        mimic_null = null_model(mean[population], var[population], n[population])
        for name in ("members", "non_members", "externals"):
            tested = (patient_set == name) & (patient_fold == k)
            if not tested.any():
                continue
            if name == "externals":  # another hospital: calibrated on its other patients
                others = (patient_set == "externals") & (patient_fold != k)
                if others.sum() < MIN_NULL_PATIENTS:
                    continue
                (centre, between, within), df = null_model(mean[others], var[others], n[others]), others.sum() - 1
            else:
                (centre, between, within), df = mimic_null, null_patients - 1
            statistic[tested] = (mean[tested] - centre) / np.sqrt(between + within / n[tested])
            p_value[tested] = t_sf(statistic[tested], df)
    patients = patients.assign(statistic=statistic, p_value=p_value)
    patients = patients[~population & np.isfinite(p_value)].reset_index(drop=True)
    patients["q_value"] = benjamini_hochberg(patients["p_value"].to_numpy())
    patients = patients.rename(columns={"n": "n_sentences"})[
        ["patient_id", "set", "n_sentences", "statistic", "p_value", "q_value"]]
    return patients, summarise(patients, names, null_patients)


def ks_uniform(p: np.ndarray) -> dict:
    """Kolmogorov-Smirnov distance of p-values from the uniform law, and its asymptotic
    p-value (a small one: the p-values are not uniform)."""
    from scipy.special import kolmogorov
    p = np.sort(np.asarray(p, dtype=float))
    n = p.size
    steps = np.arange(1, n + 1) / n
    distance = float(max((steps - p).max(), (p - (steps - 1 / n)).max()))
    return {"n": int(n), "distance": distance, "p_value": float(kolmogorov(np.sqrt(n) * distance))}


def summarise(patients: pd.DataFrame, attacks: list[str], null_patients: int) -> dict:
    """What metrics.json reports of the per-patient tests."""
    flagged = patients["q_value"] <= FDR
    share = lambda name: float(flagged[patients["set"] == name].mean()) if (patients["set"] == name).any() else None  # noqa: E731
    nulls = patients["set"] != "members"
    return {
        "fdr": FDR, "attacks_combined": attacks, "null_population_patients": int(null_patients),
        "members_found": share("members"), "non_members_flagged": share("non_members"),
        "externals_flagged": share("externals"),
        "false_discovery_proportion": float((flagged & nulls).sum() / flagged.sum()) if flagged.any() else 0.0,
        "uniformity": {name: ks_uniform(patients.loc[patients["set"] == name, "p_value"].to_numpy())
                       for name in ("non_members", "externals") if (patients["set"] == name).any()},
    }
