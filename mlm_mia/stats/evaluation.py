"""From the score table to ``metrics.json``: every attack on every comparison of the sets,
at sentence and patient level, and the report by memorization when there are shadow
models."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from . import audit, metrics, patient_tests, verdict as verdict_module
from ..common import columns
from . import validity as validity_module
from ..attacks import is_blind, lira
from ..common.errors import InputError

log = logging.getLogger(__name__)

COMPARISONS = {
    "members_vs_non_members": ("members", "non_members"),
    "members_vs_externals": ("members", "externals"),
}
PATIENT_COMPARISON = "patient_members_vs_non_members"
MEMORIZATION = "by_memorization"  # metrics.json key of memorization_report
VALIDITY = "validity"  # the model-free text-only classifier, per comparison
PATIENT_TESTS = "patient_tests"
PATIENT_TESTS_LEFT_OUT = "patient_tests_left_out"  # why they are not there, when a population is
CANARIES = "canaries"
CANARY_PATIENTS = "canary_patients"
NAME_PROBE = "name_probe"  # score_MIA.py --name-probe
VERDICT = "verdict"  # what the numbers mean: stats/verdict.py
# the keys of metrics.json that are not one table of attacks
SECTIONS = (VERDICT, MEMORIZATION, VALIDITY, PATIENT_TESTS, PATIENT_TESTS_LEFT_OUT, CANARIES, CANARY_PATIENTS,
            NAME_PROBE)
SHADOW_COUNTS = (1, 2, 4, 8, 16, 32, 64)  # the numbers of shadow models compared


def compare(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0, audit_delta: float = 0.0,
            validity_tests: dict | None = None, name_probe: dict | None = None
            ) -> tuple[dict, pd.DataFrame | None]:
    """``metrics.json``: every attack on every comparison whose sets are present, the
    validity check (with its permutation tests ``validity_tests``, which need the text:
    score_MIA.py records them in settings.json), the per-patient tests, the canary audits
    (with canaries, with canary patients; epsilon bounds for ``audit_delta``), with shadow
    models the report by memorization, the name-condition probe's ``name_probe`` (as
    stats/name_probe.py evaluated it) where given, and first the verdict; and patients.csv's
    table (None without the sets the tests need)."""
    result = {}
    validity = {}
    attacks = columns.attack_names(table)
    for comparison, (positive, negative) in COMPARISONS.items():
        rows = table[table["set"].isin([positive, negative])]
        if not {positive, negative} <= set(rows["set"]):
            continue
        y = (rows["set"] == positive).to_numpy(int)
        scores = {a: rows[columns.score(a)].to_numpy(float) for a in attacks}
        result[comparison] = metrics.evaluate_all(y, scores, rows["patient_id"].to_numpy(), n_boot, seed)
        text_only = validity_module.column(comparison)
        if text_only in rows.columns:
            validity[comparison] = validity_check(y, rows[text_only].to_numpy(float),
                                                  (validity_tests or {}).get(comparison))
    rows = table[table["set"].isin(["members", "non_members"])]
    if {"members", "non_members"} <= set(rows["set"]):
        per_patient = rows.groupby(["set", "patient_id"], sort=True)[
            [columns.score(a) for a in attacks]].mean().reset_index()
        y = (per_patient["set"] == "members").to_numpy(int)
        result[PATIENT_COMPARISON] = metrics.evaluate_all(
            y, {a: per_patient[columns.score(a)].to_numpy(float) for a in attacks},
            per_patient["patient_id"].to_numpy(), n_boot, seed)
    if validity:
        result[VALIDITY] = validity
    tested = patient_tests.membership_tests(table, seed)
    if tested is not None:
        result[PATIENT_TESTS] = tested[1]
    elif (why := _patient_tests_left_out(table)) is not None:
        log.warning("%s", why)
        result[PATIENT_TESTS_LEFT_OUT] = why
    canary_audit = audit.canary_report(table, audit_delta)
    if canary_audit is not None:
        result[CANARIES] = canary_audit
    patient_audit = audit.canary_patient_report(table, audit_delta)
    if patient_audit is not None:
        result[CANARY_PATIENTS] = patient_audit
    if columns.MEMORIZATION in table.columns and PATIENT_COMPARISON in result:
        result[MEMORIZATION] = memorization_report(table)
    if name_probe is not None:
        result[NAME_PROBE] = name_probe
    patients = None if tested is None else tested[0]
    main = next((c for c in COMPARISONS if c in result), None)
    if main is not None:
        rows = table[table["set"].isin(COMPARISONS[main])]
        text_only = validity_module.column(main)
        result = {VERDICT: verdict_module.verdict(
            rows, main, COMPARISONS[main][0], result[main], validity,
            rows[text_only].to_numpy(float) if text_only in rows.columns else None,
            result.get(PATIENT_COMPARISON), result.get(PATIENT_TESTS), patients,
            result.get(PATIENT_TESTS_LEFT_OUT), result.get(CANARIES), n_boot, seed, name_probe,
            result.get(CANARY_PATIENTS))} | result
    return result, patients


def _patient_tests_left_out(table: pd.DataFrame) -> str | None:
    """Why a run with a population has no per-patient tests: too few population patients
    for their null."""
    n = table.loc[table["set"] == "population", "patient_id"].nunique()
    if not 0 < n < patient_tests.MIN_NULL_PATIENTS:
        return None
    return (f"per-patient tests left out: {n} population patients, at least "
            f"{patient_tests.MIN_NULL_PATIENTS} needed (prepare with --population-patients "
            f"{patient_tests.MIN_NULL_PATIENTS} or more)")


def validity_check(y: np.ndarray, text_only: np.ndarray, test: dict | None) -> dict:
    """The text-only classifier's AUC and its permutation test of "the sets differ" (None
    when no test of these very scores was recorded: the scores alone cannot be refitted)."""
    auc = metrics.auc(y, text_only)
    recorded = test is not None and abs(test["auc"] - auc) < 1e-9
    return {"auc": auc, "n_pos": int(y.sum()), "n_neg": int((y == 0).sum())} | {
        key: test[key] if recorded else None for key in ("p_value", "permutations", "null_auc_median", "null_auc_95")}


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
    chosen = table["set"].isin([positive, negative]).to_numpy()
    rows = table[chosen]
    y = (rows["set"] == positive).to_numpy(int)
    quartile = pd.qcut(rows[columns.MEMORIZATION].rank(method="first"), 4, labels=False).to_numpy()
    by_quartile = {
        attack: {f"q{q + 1}": _compact(y[quartile == q], rows[columns.score(attack)].to_numpy(float)[quartile == q])
                 for q in range(4)}
        for attack in columns.attack_names(table)}
    n_models = len(columns.shadow_indices(table))
    target = lira.target_statistic(table)
    by_k = {}
    for k in SHADOW_COUNTS:
        if k > n_models:
            break
        # fitted on every row (the global spread and IN - OUT gap), evaluated on the two sets
        shadows = lira.shadow_arrays(table, k)
        scored = {"lira_online": lira.online(target, *shadows)[chosen],
                  "lira_offline": lira.offline(target, *shadows)[chosen]}
        by_k[str(k)] = {
            attack: {name: _compact(y[quartile == q], values[quartile == q])
                     for name, q in (("least", 0), ("most", 3))}
            for attack, values in scored.items()}
    edges = np.quantile(rows[columns.MEMORIZATION], [0.25, 0.5, 0.75]).tolist()
    return {"comparison": f"{positive}_vs_{negative}", "quartile_edges": edges,
            "by_quartile": by_quartile, "by_shadow_models": by_k,
            # are the Gaussians LiRA fits plausible? (None below 16 shadow models)
            "normality": lira.normality(*lira.shadow_arrays(table))}


def distribution_shift_warnings(results: dict) -> list[str]:
    """One line per comparison whose model-free check is above chance (its permutation
    p-value at most ``verdict.SHIFT_LEVEL``; without a test, an AUC above 0.5 + margin), one when
    the per-patient tests' calibration check fails at ``verdict.CALIBRATION_LEVEL``, and one per
    blind-baseline attack far from chance."""
    lines = []
    for comparison, check in results.get(VALIDITY, {}).items():
        p = check.get("p_value")
        if verdict_module.text_only_differs(check):
            evidence = f"AUC {check['auc']:.3f}" + ("" if p is None else f", permutation p = {p:.3g}")
            lines.append(
                f"WARNING {comparison}: a text-only classifier that never sees a model separates "
                f"the two sets ({evidence}): they differ in distribution, and every "
                "attack number on this comparison is inflated by it.")
    calibration = results.get(PATIENT_TESTS, {}).get("calibration")
    if calibration is not None and calibration["p_value"] <= verdict_module.CALIBRATION_LEVEL:
        lines.append(
            f"WARNING patient_tests: the non-member patients do not rank like the population "
            f"patients (mean relative rank {calibration['mean_relative_rank']:.3f}, 0.5 expected; "
            f"p = {calibration['p_value']:.3g}): the per-patient p-values assume they are drawn "
            "alike (below 0.5, the members' p-values are conservative; above, too small).")
    for comparison, attacks in results.items():
        if comparison in SECTIONS:
            continue
        for attack, values in attacks.items():
            if is_blind(attack) and verdict_module.blind_differs(values["auc"]):
                lines.append(
                    f"WARNING {comparison}: the blind baseline ({attack}, which never sees the "
                    f"target) has AUC {values['auc']:.3f}: the sets differ in distribution, and "
                    "the attack numbers above are inflated by it.")
    return lines


def check_scores(table: pd.DataFrame) -> None:
    """Every attack score must be a finite number (a sentence with no scored token is not)."""
    for attack in columns.attack_names(table):
        column = columns.score(attack)
        bad = ~np.isfinite(table[column].to_numpy(float))
        if bad.any():
            raise InputError(f"{column}: {int(bad.sum())} sentences have no finite score (e.g. "
                             f"id {table.loc[bad, 'id'].iloc[0]!r}, which may have no scorable token)")
