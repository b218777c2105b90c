"""The printed report: the verdict, the validity check, AUC / TPR tables, per-patient tests
and the report by memorization."""

from __future__ import annotations

from . import verdict as verdict_words
from ..stats.evaluation import (CANARIES, CANARY_PATIENTS, MEMORIZATION, NAME_PROBE, PATIENT_COMPARISON, PATIENT_TESTS,
    SECTIONS, VALIDITY, VERDICT, distribution_shift_warnings)
from ..stats.metrics import FPR_TARGETS


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def tables(results: dict) -> str:
    """The verdict, the validity check, one table per comparison (a row per attack, AUC [95%
    CI] and TPR at each FPR), the per-patient tests and the report by memorization."""
    blocks = [verdict_words.text(results[VERDICT])] if VERDICT in results else []
    blocks += [validity_table(results[VALIDITY])] if VALIDITY in results else []
    for comparison, attacks in results.items():
        if comparison not in SECTIONS:
            blocks.append(attack_table(comparison, attacks))
    if PATIENT_TESTS in results:
        blocks.append(patient_tests_text(results[PATIENT_TESTS]))
    blocks += [render(results[key]) for key, render in (
        (CANARIES, canaries_text), (CANARY_PATIENTS, canary_patients_text),
        (MEMORIZATION, memorization_tables), (NAME_PROBE, name_probe_text)) if key in results]
    warnings = distribution_shift_warnings(results)
    return "\n\n".join(blocks + (["\n".join(warnings)] if warnings else [])) + "\n"


def _auc(m: dict) -> str:
    ci = m.get("auc_ci")
    return f"{m['auc']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def validity_table(validity: dict) -> str:
    """The model-free check first: can a classifier on the text alone tell the sets apart?"""
    lines = ["validity: a text-only classifier (word n-grams, cross-validated by patient) that "
             "never sees a model; AUC 0.5 = the sets do not differ in distribution; p: permutation "
             "test of set labels by patient, refitted"]
    for comparison, m in validity.items():
        lines.append(f"  {comparison:<28} AUC {m['auc']:.3f}  {_permutation(m)}")
    return "\n".join(lines)


def _permutation(check: dict) -> str:
    if check.get("p_value") is None:
        return "(no permutation test: it needs the text, run score_MIA.py)"
    return (f"p = {check['p_value']:.3g} ({check['permutations']} permutations: median AUC "
            f"{check['null_auc_median']:.3f}, 95% below {check['null_auc_95']:.3f})")


def attack_table(comparison: str, attacks: dict) -> str:
    first = next(iter(attacks.values()))
    unit = "patients" if comparison == PATIENT_COMPARISON else "sentences"
    lines = [f"{comparison}  ({first['n_pos']} vs {first['n_neg']} {unit})"]
    lines.append(f"  {'attack':<24} {'AUC [95% CI]':<22}" + "".join(
        f" {'TPR@' + format(100 * f, 'g') + '%FPR':>13}" for f in FPR_TARGETS))
    footnote = False
    for attack, m in attacks.items():
        cells = []
        for f in FPR_TARGETS:
            mark = "*" if str(f) in m["fpr_below_resolution"] else ""
            footnote |= bool(mark)
            cells.append(f" {_pct(m['tpr_at_fpr'][str(f)]) + mark:>13}")
        lines.append(f"  {attack:<24} {_auc(m):<22}" + "".join(cells))
    if footnote:
        lines.append(f"  * target at or below 1/{first['n_neg']}: the TPR with no false positive at all "
                     "(TPR at FPR < target, as LiRA and MIMIR)")
    return "\n".join(lines)


def patient_tests_text(tests: dict) -> str:
    """The per-patient membership tests in a few lines."""
    share = lambda v: "-" if v is None else _pct(v)  # noqa: E731
    check = tests["calibration"]
    lines = [f"patient_tests: a test per patient (attacks combined, cross-fitted), p = its rank among "
             f"{tests['null_population_patients']} known non-member patients (smallest possible p "
             f"{tests['smallest_p_value']:.3g}), Benjamini-Hochberg at {100 * tests['fdr']:.0f}% FDR "
             "over members and non-members (externals apart)",
             f"  member patients found        {share(tests['members_found'])}",
             f"  non-member patients flagged  {share(tests['non_members_flagged'])}",
             f"  external patients flagged    {share(tests['externals_flagged'])}",
             f"  false discovery proportion   {_pct(tests['false_discovery_proportion'])}",
             f"  calibration: non-member vs population patients, mean relative rank "
             f"{check['mean_relative_rank']:.3f} (0.5 expected; p = {check['p_value']:.3g})"]
    return "\n".join(lines)


def fdp_text(bound: dict) -> str:
    """The f-DP bound as epsilon, or as mu where delta is 0 (mu-GDP has no finite epsilon there)."""
    return f"mu {bound['mu']:.2f}" if bound["epsilon"] is None else f"{bound['epsilon']:.2f}"


def canary_cell(group: dict) -> str:
    """AUC / Steinke et al.'s epsilon bound / the f-DP bound, for one attack and group."""
    auc = "-" if group["auc"] is None else f"{group['auc']:.2f}"
    return f"{auc} / {group['epsilon']['epsilon']:.2f} / {fdp_text(group['fdp'])}"


def ceiling_cell(report: dict, group: str) -> str:
    """The most the canaries of ``group`` can prove, Steinke et al.'s / f-DP."""
    return f"eps {report['epsilon_ceiling'][group]:.2f} / {fdp_text(report['fdp_ceiling'][group])}"


def canaries_text(report: dict) -> str:
    """The canary audit: per attack and repeat group, the canaries' AUC, the one-run
    lower bound on epsilon and the f-DP bound; the exposure of the secrets by repeat group."""
    lines = [f"canaries: {report['canaries']} planted, {report['included']} included; epsilon lower bounds "
             f"at {100 * report['confidence']:.0f}% confidence (delta {report['delta']:g}), each cell valid "
             "for its own attack and group (Steinke et al. 2023 / f-DP); columns: times repeated",
             f"  {report['fdp_assumption']}"
             + ("; at delta 0 it is shown as mu (mu-GDP has no finite epsilon at delta 0)" if report["delta"] == 0
                else ""),
             "  a canary repeated k times is k records: its column bounds the epsilon of a group of k "
             "(group privacy), not of one record (under (epsilon, 0)-DP one record's is at least bound / k; "
             "under mu-GDP one record's mu is at least mu / k)"]
    lines += _audit_rows(report)
    if report["exposure_bits"]:
        cells = [f"{_bits(v['included'])} / {_bits(v['left_out'])}" for v in report["exposure_bits"].values()]
        lines.append(f"  {'exposure in / out (bits)':<24}" + "".join(f" {c:>21}" for c in cells))
    return "\n".join(lines)


def canary_patients_text(report: dict) -> str:
    """The canary patients' audit: per attack, the patients' AUC and the one-run lower
    bounds on epsilon at patient level."""
    return "\n".join([
        f"canary_patients: {report['patients']} planted with {report['notes']} notes "
        f"({report['notes_per_patient'][0]} to {report['notes_per_patient'][1]} each), {report['included']} "
        f"included whole; per patient: {report['statistic']}; epsilon lower bounds at "
        f"{100 * report['confidence']:.0f}% confidence (delta {report['delta']:g}), each row valid for its own "
        "attack (Steinke et al. 2023 / f-DP, a patient as the unit)",
        f"  {report['fdp_assumption']}",
        "  the bound is on PATIENT-LEVEL privacy: the privacy loss of all of one patient's notes together, "
        "not of one record"] + _audit_rows(report))


def _audit_rows(report: dict) -> list[str]:
    """The audit's table: AUC / Steinke et al.'s bound / the f-DP bound per attack and
    group, and the ceilings."""
    groups = list(next(iter(report["by_attack"].values())))
    lines = [f"  {'AUC / eps >= / f-DP':<24}" + "".join(f" {g:>21}" for g in groups)]
    for attack, by_group in report["by_attack"].items():
        lines.append(f"  {attack:<24}" + "".join(f" {canary_cell(v):>21}" for v in by_group.values()))
    lines.append(f"  {'most provable (ceiling)':<24}" + "".join(f" {ceiling_cell(report, g):>21}" for g in groups))
    return lines


def _bits(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _cell(m: dict | None, key: str) -> str:
    if m is None:
        return "-"
    return f"{m['auc']:.3f}" if key == "auc" else _pct(m["tpr_at_fpr"][key])


def memorization_tables(report: dict) -> str:
    """Attacks by memorization quartile, and LiRA against the number of shadow models."""
    edges = ", ".join(f"{e:.3g}" for e in report["quartile_edges"])
    lines = [f"{MEMORIZATION}: {report['comparison']} within quartiles of memorization "
             f"E[score|IN] - E[score|OUT] (q1 least ... q4 most; edges {edges})"]
    for key, label in (("auc", "AUC"), ("0.01", "TPR@1%FPR")):
        lines.append(f"  {label:<24}" + "".join(f" {q:>8}" for q in ("q1", "q2", "q3", "q4")))
        for attack, quartiles in report["by_quartile"].items():
            lines.append(f"  {attack:<24}" + "".join(f" {_cell(m, key):>8}" for m in quartiles.values()))
    lines.append("  LiRA with the first K shadow models, on the least and the most memorized quartiles")
    lines.append(f"  {'K':>3} " + "".join(f" {a + ' ' + side:>26}" for a in ("online", "offline")
                                          for side in ("least", "most")))
    for k, attacks in report["by_shadow_models"].items():
        cells = [f"{_cell(attacks[f'lira_{a}'][side], 'auc')} / {_cell(attacks[f'lira_{a}'][side], '0.01')}"
                 for a in ("online", "offline") for side in ("least", "most")]
        lines.append(f"  {k:>3} " + "".join(f" {c:>26}" for c in cells))
    lines.append("  (cells: AUC / TPR@1%FPR)")
    return "\n".join(lines)


def name_probe_text(probe: dict) -> str:
    """The name-condition probe: per group, own against other conditions."""
    difference = {"auc": probe["auc_difference"], "auc_ci": probe.get("auc_difference_ci")}
    lines = [f"{NAME_PROBE}: does the target tie a patient's name to their conditions? AUC of own "
             "against other conditions (matched on frequency) by the condition's log-probability "
             f"in \"{probe['templates']['with_name']}\" minus in \"{probe['templates']['without_name']}\" "
             "(0.5: no link; interval: patients resampled)",
             f"  {'patients':<24} {'n':>4} {'AUC [95% CI]':<22} {'with name':>10} {'without':>8}"]
    for group, m in probe["groups"].items():
        lines.append(f"  {group:<24} {m['patients']:>4} {_auc(m):<22} "
                     f"{m['auc_with_name']:>10.3f} {m['auc_without_name']:>8.3f}")
    lines.append(f"  members - non_members: {_auc(difference)} (what training on the notes added)")
    if "interval_warning" in probe:
        lines.append(f"  WARNING {probe['interval_warning']}")
    return "\n".join(lines)
