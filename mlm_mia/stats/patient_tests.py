"""A membership test per patient: "was any of this patient's notes in the training data?"

After dataset inference (Maini et al. 2024, "LLM dataset inference: did you train on my
dataset?"), adapted to patients, with p-values that are valid whatever the scores'
distribution:

1. The attack scores of each sentence (every attack but the blind baselines) are combined
   linearly: Fisher's discriminant of members against non-members (ridge-regularised),
   learned *cross-fitted*: the weights applied to a fold's patients were learned on the
   other folds' members and non-members, never on the patient itself nor on any null
   (population or external) patient.
2. A patient's statistic is the mean combined score of its sentences, standardised by a
   random-effects null fitted on the *other* patients of its comparison group: ``(mean -
   centre) / sqrt(sigma_b^2 + sigma_w^2 / n)`` (method of moments: a centre, a between- and
   a within-patient variance), so that patients with 1 or 40 sentences are comparable.
3. Conformal p-value: the rank of a tested patient's statistic among those of the ``N``
   null patients, ``(1 + #{null >= tested}) / (N + 1)``, with every statistic of the
   ``N + 1`` computed alike (each standardised by the null fitted on all ``N + 1``; the
   null patients' weights, like the tested one's, never saw them). Null patients: the population set's
   for MIMIC patients (members and non-members), every other external patient for an
   external one.

Validity assumes exchangeability: a patient who was not trained on is drawn like the null
patients (same hospital, same way of choosing patients and sentences, the number of
sentences included). Then the p-value is exact for any score distribution and any
correlation of one patient's sentences, with resolution ``1 / (N + 1)``: with 20 null
patients no p-value is below 1/21, and Benjamini-Hochberg at 5% over many patients finds
nothing unless almost all of them reach it; 100 or more null patients are needed.

Benjamini-Hochberg q-values over the patients whose membership is in question (members and
non-members); externals (another hospital, another question) get their own.

The calibration check asks whether the non-member patients rank like the population's:
in each fold, that fold's non-members and every population patient (none of them trained
the fold's weights; each standardised by all the others) by a rank-sum test with its null
by permuting set labels, exact under exchangeability; the folds' weights depend on the
other folds' non-members, so the folds' tests are combined by Bonferroni (five times the
smallest p-value), which holds its level whatever their dependence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..common import columns
from ..attacks import is_blind

FOLDS = 5
RIDGE = 1e-3  # of the mean variance, added to the covariance's diagonal
FDR = 0.05
MIN_NULL_PATIENTS = 20
RECOMMENDED_NULL_PATIENTS = 100
CALIBRATION_PERMUTATIONS = 999
TESTED_SETS = ("members", "non_members", "population", "externals")  # the rows the tests read


def fisher_weights(members: np.ndarray, non_members: np.ndarray) -> np.ndarray:
    """Fisher's linear discriminant of two ``[n, d]`` samples, ridge-regularised on the
    features standardised by their pooled spread, returned for the raw features (the
    scale of the combined score is irrelevant: it is standardised later)."""
    spread = np.concatenate([members, non_members]).std(0)
    spread = np.where(spread > 0, spread, 1.0)
    members, non_members = members / spread, non_members / spread
    covariance = np.atleast_2d((np.cov(members, rowvar=False) + np.cov(non_members, rowvar=False)) / 2)
    covariance = covariance + RIDGE * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    weights = np.linalg.solve(covariance, members.mean(0) - non_members.mean(0))
    return weights / np.linalg.norm(weights) / spread


def _contributions(mean: np.ndarray, var: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``[..., 6]`` sufficient sums of each patient for the random-effects null: count,
    mean, squared mean, within sum of squares, within degrees of freedom, 1/n."""
    return np.stack([np.ones_like(mean), mean, mean ** 2, var * (n - 1), n - 1, 1 / n], -1)


def null_model(totals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(centre, between-patient variance, within-patient variance)`` from the summed
    contributions of the null patients (method-of-moments random effects). With one
    sentence per null patient the whole variance counts as between patients, which
    overstates the spread of a longer patient's mean (less power, never invalid)."""
    count, total, squares, within_ss, within_df, inverse_n = np.moveaxis(totals, -1, 0)
    centre = total / count
    variance = (squares - total * centre) / (count - 1)
    within = np.divide(within_ss, within_df, out=np.zeros_like(within_ss), where=within_df > 0)
    return centre, np.maximum(0.0, variance - within * inverse_n / count), within


def standardised(mean: np.ndarray, n: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``(mean - centre) / sqrt(between + within / n)``, the null fitted on ``others`` (the
    summed contributions of the patients it is fitted on); a zero spread gives +-inf, or 0
    at the centre."""
    centre, between, within = null_model(others)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mean - centre) / np.sqrt(between + within / n)
    return np.where(np.isnan(t), 0.0, t)


def conformal_p_values(tested: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One p-value per tested patient, ``(1 + #{null >= tested}) / (N + 1)``: ``tested`` and
    ``null`` are ``[patients, 3]`` (mean, variance, sentences). Each tested patient joins
    the ``N`` null patients and all ``N + 1`` are standardised by the null fitted on the
    ``N + 1`` (a symmetric function of them), so that their statistics are exchangeable
    when the patient is drawn like them.

    Near-linear: a statistic rises with the patient's mean among patients of one number
    of sentences, so the null patients that reach the tested one's statistic are found
    by bisection over each such group's sorted means, with the very formula of
    :func:`standardised` (no rounding differs from computing every statistic)."""
    own = _contributions(*tested.T)
    pools = _contributions(*null.T).sum(0) + own  # [tested, 6]
    t = standardised(tested[:, 0], tested[:, 2], pools)
    at_least = np.zeros(len(tested))
    for n in np.unique(null[:, 2]):
        means = np.sort(null[null[:, 2] == n, 0])
        low, high = np.zeros(len(tested), int), np.full(len(tested), means.size)
        while np.any(low < high):  # the first sorted mean whose statistic reaches t
            middle = (low + high) // 2
            reach = standardised(means[np.minimum(middle, means.size - 1)], n, pools) >= t
            searching = low < high
            high = np.where(searching & reach, middle, high)
            low = np.where(searching & ~reach, middle + 1, low)
        at_least += means.size - low
    return (1 + at_least) / (len(null) + 1)


def leave_one_out_statistics(patients: np.ndarray) -> np.ndarray:
    """Each patient's statistic standardised by all the others (``[patients, 3]``: mean,
    variance, sentences)."""
    own = _contributions(*patients.T)
    return standardised(patients[:, 0], patients[:, 2], own.sum(0) - own)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (adjusted p-values)."""
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


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their mean rank (scipy's ``rankdata``, without importing
    ``scipy.stats``: a second of metrics.py's start-up)."""
    distinct, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # the rank of each distinct value's last occurrence
    return (last - (counts - 1) / 2)[inverse]


def rank_sum(statistic: np.ndarray, labelled: np.ndarray, permutations: int, rng: np.random.Generator
             ) -> tuple[float, float]:
    """``(mean relative rank, p-value)``: do the ``labelled`` units rank differently from the
    others? The labelled units' mean rank over (units + 1), 0.5 expected, against its null
    by permuting the labels; two-sided Monte-Carlo p-value ``(1 + #{|perm - 0.5| >= |obs -
    0.5|}) / (B + 1)``."""
    relative = average_ranks(statistic) / (statistic.size + 1)
    observed = relative[labelled].mean()
    null = rng.permuted(np.tile(labelled, (permutations, 1)), axis=1) @ relative / labelled.sum()
    extreme = np.abs(null - 0.5) >= abs(observed - 0.5) - 1e-12
    return float(observed), float((1 + extreme.sum()) / (permutations + 1))


def membership_tests(table: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, dict] | None:
    """``(patients.csv's table, metrics.json's summary)``, or None without the sets it
    needs (members, non-members, and enough population patients). Canaries and canary
    patients are left out: they have audits of their own, and counted here they would be
    "found" members that no false discovery proportion accounts for."""
    table = table[table["set"].isin(TESTED_SETS)].reset_index(drop=True)
    present = set(table["set"])
    null_patients = table.loc[table["set"] == "population", "patient_id"].nunique()
    if not {"members", "non_members", "population"} <= present or null_patients < MIN_NULL_PATIENTS:
        return None
    names = [a for a in columns.attack_names(table) if not is_blind(a)]
    features = table[[columns.score(a) for a in names]].to_numpy(float)
    fold = _folds(table["patient_id"], seed).to_numpy()
    sets = table["set"].to_numpy()
    # one group per (set, patient), in sorted order, found once for every fold
    grouped = table[["set", "patient_id"]].assign(fold=fold).groupby(["set", "patient_id"], sort=True)
    group = grouped.ngroup().to_numpy()
    patients = grouped.agg(fold=("fold", "first"), n=("fold", "size")).reset_index()
    n = patients["n"].to_numpy(float)
    patient_set, patient_fold = patients["set"].to_numpy(), patients["fold"].to_numpy()
    population, externals = patient_set == "population", patient_set == "externals"
    statistic, p_value = np.full(n.size, np.nan), np.full(n.size, np.nan)
    checks = []  # (mean relative rank, p-value) of each fold's calibration check
    rng = np.random.default_rng([seed, 11])
    for k in range(FOLDS):
        train = fold != k
        weights = fisher_weights(features[train & (sets == "members")],
                                 features[train & (sets == "non_members")])
        score = features @ weights
        mean, var = _group_moments(group, n, score - score[sets == "population"].mean())
        moments = np.stack([mean, var, n], 1)
        tested = ~population & ~externals & (patient_fold == k)
        p_value[tested] = conformal_p_values(moments[tested], moments[population])
        statistic[tested] = standardised(mean[tested], n[tested],
                                         _contributions(*moments[population].T).sum(0))
        pool = population | ((patient_set == "non_members") & (patient_fold == k))
        if (pool & ~population).any():
            checks.append(rank_sum(leave_one_out_statistics(moments[pool]), ~population[pool],
                                   CALIBRATION_PERMUTATIONS, rng))
        outside = externals & (patient_fold == k)
        if outside.any() and externals.sum() > MIN_NULL_PATIENTS:
            # every other external patient is the null: none of them trained the weights
            t = leave_one_out_statistics(moments[externals])
            mine = patient_fold[externals] == k
            at_least = t.size - np.searchsorted(np.sort(t), t[mine], side="left")  # itself included
            p_value[outside], statistic[outside] = at_least / t.size, t[mine]
    ranks, p = np.array(checks).T
    calibration = {"mean_relative_rank": float(ranks.mean()), "p_value": float(min(1.0, ranks.size * p.min())),
                   "folds": int(ranks.size), "permutations": CALIBRATION_PERMUTATIONS}
    patients = patients.assign(statistic=statistic, p_value=p_value)
    patients = patients[~population & np.isfinite(p_value)].reset_index(drop=True)
    in_question = (patients["set"] != "externals").to_numpy()
    q = np.full(len(patients), np.nan)
    for subset in (in_question, ~in_question):
        if subset.any():
            q[subset] = benjamini_hochberg(patients["p_value"].to_numpy()[subset])
    patients["q_value"] = q
    patients = patients.rename(columns={"n": "n_sentences"})[
        ["patient_id", "set", "n_sentences", "statistic", "p_value", "q_value"]]
    return patients, summarise(patients, names, null_patients, calibration)


def summarise(patients: pd.DataFrame, attacks: list[str], null_patients: int, calibration: dict) -> dict:
    """What metrics.json reports of the per-patient tests."""
    flagged = patients["q_value"] <= FDR
    share = lambda name: float(flagged[patients["set"] == name].mean()) if (patients["set"] == name).any() else None  # noqa: E731
    in_question = patients["set"] != "externals"
    found = flagged & in_question
    return {
        "fdr": FDR, "attacks_combined": attacks, "null_population_patients": int(null_patients),
        "smallest_p_value": 1 / (null_patients + 1),
        "members_found": share("members"), "non_members_flagged": share("non_members"),
        "externals_flagged": share("externals"),
        "false_discovery_proportion": float((found & (patients["set"] == "non_members")).sum() / found.sum())
        if found.any() else 0.0,
        "calibration": calibration,
    }
