"""The verdict: what a run's numbers mean for a release, four questions each answered with
its number and interval (metrics.json's ``verdict``; report/ words it):

a. **Do the sets differ without a model?** The text-only classifier (validity.py, with its
   permutation test) and the blind baseline (an attack that never sees the target).
b. **Does the target leak beyond that?** Each attack's AUC minus the text-only classifier's
   AUC on the same sentences, with a *paired* patient-bootstrap interval: both AUCs on the
   very same resampled patients. A text-only AUC below 0.5 explains nothing and counts as
   0.5 (in each resample alike): subtracting it would inflate the attacks' excess. The headline attack is fixed before any score is seen
   (:data:`HEADLINE_ORDER`: the likelihood ratio when a reference is given, else the loss)
   and gets a 95% interval; the strongest attack, chosen after seeing the scores, gets a
   Bonferroni interval over all the attacks (each at ``1 - 0.05 / k``).
c. **Can individual patients be shown to be members?** How many member patients the
   per-patient tests find at their false discovery rate, beside the patient-level ranking
   (the headline attack's AUC on patients' mean scores), which measures leakage about the
   patients as a group, not about any one of them.
d. **What do the canaries prove?** The headline attack's one-run lower bound on epsilon,
   per number of repeats (when canaries were planted), and per canary patient (when canary
   patients were: a bound on patient-level privacy).
e. **Does the target tie a patient's name to their conditions?** The name-condition probe's
   AUCs for member and non-member patients and their difference, what training added (with
   ``--name-probe``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import metrics
from ..attacks import entry, is_blind
from ..common import columns

# the headline attack: the first of these the run has (a reference gives the ratio)
HEADLINE_ORDER = ("ratio", "loss")
HEADLINE_RULE = "ratio when a reference model is given, else loss"
# |AUC - 0.5| of a blind baseline above which the sets are taken to differ in distribution
BLIND_BASELINE_MARGIN = 0.1
# one-sided level of the text-only permutation test that warns of a distribution shift
SHIFT_LEVEL = 0.025
# level of the per-patient tests' calibration check (non-member against population patients)
CALIBRATION_LEVEL = 0.05
TPR_FPR = 0.01  # the TPR the verdict quotes beside the AUC
# the words for how much an attack beats the text alone (its AUC excess, interval above 0)
STRENGTH = ((0.2, "strongly"), (0.05, "clearly"), (0.0, "slightly"))


def headline_attack(attacks: list[str]) -> str | None:
    """The first attack of :data:`HEADLINE_ORDER` the run has (with several references,
    the first reference's ratio)."""
    for name in HEADLINE_ORDER:
        for attack in attacks:
            found = entry(attack)
            if found is not None and found.name == name:
                return attack
    return None


def text_only_differs(check: dict) -> bool:
    """Whether the text-only classifier separates the sets: its permutation p-value at most
    :data:`SHIFT_LEVEL`, or (no test recorded) its AUC above 0.5 + margin."""
    p = check.get("p_value")
    return check["auc"] > 0.5 + BLIND_BASELINE_MARGIN if p is None else p <= SHIFT_LEVEL


def blind_differs(auc: float) -> bool:
    return abs(auc - 0.5) > BLIND_BASELINE_MARGIN


def strength(excess: float) -> str:
    return next(word for floor, word in STRENGTH if excess >= floor)


def verdict(rows: pd.DataFrame, comparison: str, positive: str, sentence: dict, validity: dict,
            text_only: np.ndarray | None, patient_level: dict | None, tests: dict | None,
            patients: pd.DataFrame | None, tests_left_out: str | None, canaries: dict | None,
            n_boot: int, seed: int, name_probe: dict | None = None,
            canary_patients: dict | None = None) -> dict:
    """metrics.json's ``verdict`` for the main comparison ``comparison``: ``rows`` its
    sentences (``positive`` the members' set), ``sentence`` its attack metrics, ``validity``
    every comparison's text-only check, ``text_only`` this comparison's out-of-fold scores,
    ``patient_level`` the patient-level attack metrics; the per-patient tests (``tests``,
    ``patients``, or why they were left out), the canary audits (sentences, patients) and the
    name-condition probe where the run has them.
    The resamples are :func:`metrics.resample`'s with ``seed``: those of the attack tables."""
    y = (rows["set"] == positive).to_numpy(int)
    attacks = [a for a in sentence if not is_blind(a)]
    headline = headline_attack(attacks)
    resamples = metrics.resample(y, rows["patient_id"].to_numpy(), n_boot, seed) if n_boot > 0 else None
    return {"comparison": comparison,
            "sets_differ": _sets_differ(comparison, sentence, validity),
            "leakage": _leakage(y, rows, sentence, attacks, headline, text_only, resamples),
            "patients": _patients(patient_level, headline, tests, patients, tests_left_out),
            "canaries": _canaries(canaries, headline, "canaries"),
            "canary_patients": _canaries(canary_patients, headline, "patients"),
            "name_probe": None if name_probe is None else _name_link(name_probe)}


def _sets_differ(comparison: str, sentence: dict, validity: dict) -> dict:
    """(a): the text-only check of every comparison, the blind baseline of this one."""
    checks = {name: {"auc": check["auc"], "p_value": check.get("p_value"), "differ": text_only_differs(check)}
              for name, check in validity.items()}
    blind = next((a for a in sentence if is_blind(a)), None)
    baseline = None if blind is None else {
        "attack": blind, "auc": sentence[blind]["auc"], "auc_ci": sentence[blind].get("auc_ci"),
        "differ": blind_differs(sentence[blind]["auc"])}
    own = [c["differ"] for c in (checks.get(comparison), baseline) if c is not None]
    return {"text_only": checks, "blind_baseline": baseline, "differ": any(own) if own else None}


def _leakage(y: np.ndarray, rows: pd.DataFrame, sentence: dict, attacks: list[str], headline: str | None,
             text_only: np.ndarray | None, resamples: metrics.Resamples | None) -> dict:
    """(b): each attack's AUC beyond the text-only classifier's (chance without one), paired."""
    scores = {a: rows[columns.score(a)].to_numpy(float) for a in attacks}
    differences = metrics.paired_auc_differences(y, scores, text_only, resamples, floor=0.5)
    family = 1 - (1 - metrics.LEVEL) / max(1, len(attacks))  # Bonferroni over the attacks
    by_attack = {}
    for attack, (excess, draws) in differences.items():
        by_attack[attack] = {"auc": sentence[attack]["auc"], "excess": excess,
                             "excess_ci": metrics.interval(draws) if draws.size else None,
                             "excess_ci_bonferroni": metrics.interval(draws, family) if draws.size else None}
    baseline_auc = 0.5 if text_only is None else metrics.auc(y, text_only)
    result = {"baseline": "chance" if text_only is None else "text_only", "baseline_auc": baseline_auc,
              "baseline_counted": max(0.5, baseline_auc),
              "headline_rule": HEADLINE_RULE, "bonferroni_level": family, "by_attack": by_attack,
              "headline": None, "strongest": None, "leaks": None}
    if not by_attack:
        return result
    strongest = max(by_attack, key=lambda a: by_attack[a]["excess"])
    result["strongest"] = {"attack": strongest} | by_attack[strongest]
    if headline is not None:
        m = sentence[headline]
        result["headline"] = {"attack": headline, "auc_ci": m.get("auc_ci"),
                              "tpr": m["tpr_at_fpr"].get(str(TPR_FPR)), "tpr_fpr": TPR_FPR} | by_attack[headline]
    # the headline at 95%, or any attack with the family-wise (Bonferroni) interval
    lowers = [by_attack[a]["excess_ci"][0] for a in [headline] if a and by_attack[a]["excess_ci"]]
    lowers += [by_attack[strongest]["excess_ci_bonferroni"][0]] if by_attack[strongest]["excess_ci_bonferroni"] else []
    result["leaks"] = any(low > 0 for low in lowers) if lowers else None
    return result


def _patients(patient_level: dict | None, headline: str | None, tests: dict | None,
              patients: pd.DataFrame | None, left_out: str | None) -> dict:
    """(c): member patients found at the tests' FDR, and the patient-level ranking."""
    ranking = None
    if patient_level and headline in patient_level:
        m = patient_level[headline]
        ranking = {"attack": headline, "auc": m["auc"], "auc_ci": m.get("auc_ci"),
                   "n_pos": m["n_pos"], "n_neg": m["n_neg"]}
    result = {"ranking": ranking, "tested": tests is not None and patients is not None}
    if not result["tested"]:
        return result | {"left_out": left_out or "the per-patient tests need a population set of "
                         "known non-member patients (prepare_data_MIA.py --population N --population-patients P)"}
    found = patients["q_value"].to_numpy() <= tests["fdr"]
    sets = patients["set"].to_numpy()
    in_question = sets != "externals"
    tested = int(in_question.sum())
    return result | {
        "fdr": tests["fdr"], "null_patients": tests["null_population_patients"],
        "smallest_p_value": tests["smallest_p_value"], "patients_tested": tested,
        "member_patients": int((sets == "members").sum()),
        "members_found": int((found & (sets == "members")).sum()),
        "non_members_flagged": int((found & (sets == "non_members")).sum()),
        "calibration_p": tests["calibration"]["p_value"],
        "calibration_fails": tests["calibration"]["p_value"] <= CALIBRATION_LEVEL,
        # Benjamini-Hochberg finds anything only if k patients reach p <= k FDR / m: at the
        # smallest p-value the null patients allow, at least this many
        "needed_at_smallest_p": math.ceil(tested * tests["smallest_p_value"] / tests["fdr"] - 1e-9),
    }


def _canaries(report: dict | None, headline: str | None, unit: str) -> dict | None:
    """(d): the headline attack's epsilon lower bound and AUC per repeat group (``unit``:
    ``canaries``, or ``patients`` for the canary patients' audit)."""
    if report is None or not report["by_attack"]:
        return None
    attack = headline if headline in report["by_attack"] else next(iter(report["by_attack"]))
    return {"attack": attack, "unit": unit, "canaries": report[unit], "included": report["included"],
            "delta": report["delta"], "confidence": report["confidence"],
            "by_repeats": {group: {"epsilon": v["epsilon"]["epsilon"], "auc": v["auc"],
                                   "ceiling": report["epsilon_ceiling"][group]}
                           for group, v in report["by_attack"][attack].items()}}


def _name_link(probe: dict) -> dict:
    """(e): both groups' AUCs, the difference, and whether its interval is above 0."""
    members, non_members = probe["groups"]["members"], probe["groups"]["non_members"]
    ci = probe.get("auc_difference_ci")
    return {"members_auc": members["auc"], "members_auc_ci": members.get("auc_ci"),
            "non_members_auc": non_members["auc"], "non_members_auc_ci": non_members.get("auc_ci"),
            "difference": probe["auc_difference"], "difference_ci": ci,
            "patients": min(members["patients"], non_members["patients"]),
            "learned": ci is not None and ci[0] > 0, "few_patients": "interval_warning" in probe}
