"""report.html: one self-contained page a person reads (figures embedded, no external
file, no script, nothing fetched). It holds ids and numbers only: no sentence of any note,
unless the run was asked for its most exposed sentences (``--show-exposed N``).

Longer than most modules (about 380 lines): a short function per section of the page and
the page's style, all built on the one table helper; split, they would only import it
from each other."""

from __future__ import annotations

import base64
import html

import pandas as pd

from . import figures, verdict as verdict_words
from ..attacks import left_out_message
from .tables import canary_cell, ceiling_cell
from ..stats.evaluation import (CANARIES, CANARY_PATIENTS, MEMORIZATION, NAME_PROBE, PATIENT_COMPARISON, PATIENT_TESTS,
    SECTIONS, VALIDITY, VERDICT, distribution_shift_warnings)
from ..stats.metrics import FPR_TARGETS

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 72em; color: #1d1d1f; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { padding: 0.25em 0.7em; text-align: right; border-bottom: 1px solid #eee; }
th:first-child, td:first-child { text-align: left; }
table.kv td, table.kv th { text-align: left; }
th { background: #f4f4f6; }
.warn { background: #fdecea; border-left: 5px solid #d93025; padding: 0.6em 1em; margin: 0.6em 0; }
.ok { background: #e8f5e9; border-left: 5px solid #2e7d32; padding: 0.6em 1em; margin: 0.6em 0; }
.note { color: #555; font-size: 0.9em; }
img { max-width: 100%; }
.sensitive { background: #fff8e1; border-left: 5px solid #f9a825; padding: 0.6em 1em; }
.verdict { background: #f4f6fb; border-left: 5px solid #3f51b5; padding: 0.3em 1em 0.6em; margin: 0.6em 0; }
.verdict h3 { margin: 0.7em 0 0.2em; font-size: 1em; }
.verdict p { margin: 0.2em 0; }
td.text { text-align: left; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em;
          word-break: break-all; }
"""


def _img(png: bytes) -> str:
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _table(header: list[str], rows: list[list[str]], kind: str = "") -> str:
    """A table (``kind`` "kv": settings and their values, every cell left-aligned)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    opening = f'<table class="{kind}">' if kind else "<table>"
    return f"{opening}<tr>{head}</tr>{body}</table>"


def _auc(m: dict) -> str:
    ci = m.get("auc_ci")
    return f"{m['auc']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def attack_rows(attacks: dict) -> list[list[str]]:
    return [[attack, _auc(m)] + [_pct(m["tpr_at_fpr"][str(f)]) + ("*" if str(f) in m["fpr_below_resolution"] else "")
                                 for f in FPR_TARGETS] for attack, m in attacks.items()]


ATTACK_HEADER = ["attack", "AUC [95% CI]"] + [f"TPR at {100 * f:g}% FPR" for f in FPR_TARGETS]


def validity_section(results: dict) -> str:
    parts = ["<h2>1. Validity: do the sets differ before any model is asked?</h2>",
             "<p>A classifier on the text alone (word uni- and bigrams, a ridge classifier, "
             "cross-validated with each patient's sentences in one fold) never sees a model. If it "
             "tells the sets apart, they differ in distribution and every attack number on that "
             "comparison is inflated by the difference (Das et al. 2024; Meeus et al. 2024).</p>"]
    rows = [[comparison, f"{m['auc']:.3f}", "-" if m.get("p_value") is None else f"{m['p_value']:.3g}"]
            for comparison, m in results.get(VALIDITY, {}).items()]
    blind = [[f"{comparison}: {attack}", _auc(m)] for comparison, attacks in results.items()
             if comparison not in SECTIONS for attack, m in attacks.items() if attack.startswith("reference_only")]
    if rows or blind:
        parts.append(_table(["check", "AUC [95% CI]", "permutation p"],
                            [[f"text only, {c}", a, p] for c, a, p in rows] + [b + ["-"] for b in blind]))
    warnings = distribution_shift_warnings(results)
    parts += [f'<div class="warn">{html.escape(w)}</div>' for w in warnings] or [
        '<div class="ok">No check separates the sets: they look alike in distribution, so the attack '
        "numbers below measure membership.</div>"]
    return "\n".join(parts)


def attacks_section(results: dict) -> str:
    parts = ["<h2>2. Sentence and patient level</h2>",
             '<p class="note">Higher score = more likely a member. Intervals: 95% percentile '
             "bootstrap over patients. TPR at FPR: the largest TPR with FPR strictly below the "
             "target, as LiRA's and MIMIR's code take it. * a target at or below 1/negatives: the "
             "TPR with no false positive. "
             "TPRs at FPRs under a handful of negatives are noise, not evidence.</p>"]
    for comparison, attacks in results.items():
        if comparison in SECTIONS:
            continue
        first = next(iter(attacks.values()))
        unit = "patients (mean score per patient)" if comparison == PATIENT_COMPARISON else "sentences"
        parts.append(f"<h3>{comparison} ({first['n_pos']} vs {first['n_neg']} {unit})</h3>")
        parts.append(_table(ATTACK_HEADER, attack_rows(attacks)))
    return "\n".join(parts)


def patients_section(results: dict, patients: pd.DataFrame | None) -> str:
    tests = results.get(PATIENT_TESTS)
    if tests is None:
        return ("<h2>3. Can a given patient be shown to be in the training data?</h2><p>Not computed: "
                "the per-patient test needs a population set of known non-member patients "
                "(prepare_data_MIA.py --population N --population-patients P).</p>")
    rows = [["member patients found", _pct(tests["members_found"])],
            ["non-member patients wrongly flagged", _pct(tests["non_members_flagged"])],
            ["external patients wrongly flagged", _pct(tests["externals_flagged"])],
            ["false discovery proportion", _pct(tests["false_discovery_proportion"])]]
    check = tests["calibration"]
    return "\n".join([
        "<h2>3. Can a given patient be shown to be in the training data?</h2>",
        f"<p>One test per patient of &ldquo;none of this patient's notes was in the training "
        f"data&rdquo;: the attack scores combined linearly (weights learned on other patients), the "
        f"patient's mean standardised for its number of sentences, and its p-value its rank among "
        f"{tests['null_population_patients']} known non-member patients of the same hospital, scored "
        f"alike (valid whatever the scores' distribution when a non-member patient is drawn like "
        f"them; the smallest possible p-value is {tests['smallest_p_value']:.3g}); Benjamini-Hochberg "
        f"at {100 * tests['fdr']:.0f}% false discovery rate over the members and non-members, the "
        "externals apart. patients.csv lists every patient's p- and q-value.</p>",
        _table(["at 5% FDR", "share"], rows),
        "<p>Calibration: the non-member patients' statistics should rank like the population "
        "patients' (a rank-sum test per fold, Bonferroni over the folds; mean relative rank 0.5 "
        "expected, a small p-value says the non-members are not drawn like the population and "
        "the p-values are off).</p>",
        _table(["mean relative rank", "p-value", "folds", "permutations"],
               [[f"{check['mean_relative_rank']:.3f}", f"{check['p_value']:.3g}", check["folds"],
                 check["permutations"]]]),
        _img(figures.png(figures.qq_figure(patients))) if patients is not None else ""])


def memorization_section(report: dict) -> str:
    quartiles = [[attack] + [("-" if m is None else f"{m['auc']:.3f}") for m in q.values()]
                 for attack, q in report["by_quartile"].items()]
    by_k = [[k] + [("-" if v[side] is None else f"{v[side]['auc']:.3f} / {_pct(v[side]['tpr_at_fpr']['0.01'])}")
                   for v in attacks.values() for side in ("least", "most")]
            for k, attacks in report["by_shadow_models"].items()]
    return "\n".join([
        "<h2>Memorization (shadow models)</h2>",
        "<p>Sentences ranked by E[score | IN] - E[score | OUT] over the shadow models, in quartiles "
        "(q1 least memorized). AUC of each attack within each quartile:</p>",
        _table(["attack", "q1", "q2", "q3", "q4"], quartiles),
        "<p>LiRA with the first K shadow models (AUC / TPR at 1% FPR):</p>",
        _table(["K", "online, least", "online, most", "offline, least", "offline, most"], by_k)])


def shadows_section(shadows: dict) -> str:
    """How the shadow models were trained, and, plainly, where they may not be trained like
    the target (then LiRA, online RMIA and the memorization report describe other models)."""
    init = str(shadows["init"])
    rows = [["shadow models", shadows["n"]], ["initial weights", init],
            ["seed of the patient halves", shadows.get("seed", "-")],
            ["recipe", ", ".join(f"{k} {v}" for k, v in shadows["recipe"].items())]]
    parts = ["<h2>Shadow models</h2>", _table(["setting", "value"], rows)]
    differs = shadows.get("differs_from_target")
    if differs:
        parts.append('<div class="warn">The shadow models differ from the target ('
                     + html.escape(", ".join(f"{k} {a} vs {b}" for k, (a, b) in differs.items()))
                     + "): their IN and OUT statistics describe other models than the target, so "
                     "LiRA, online RMIA and the memorization report are a rough look at this target, "
                     "not a measure of it.</div>")
    if init not in ("scratch", "tiny"):
        parts.append(f'<div class="warn">The shadow models were continued from {html.escape(init)}, given as '
                     "the checkpoint the target was continued from. That cannot be checked here (only that it "
                     "is not the target itself): if the target started from other weights, the shadows are "
                     "not trained like it, and LiRA, online RMIA and the memorization report describe other "
                     "models.</div>")
    return "\n".join(parts)


def _audit_rows(report: dict) -> list[list[str]]:
    """The audit's table rows: AUC / Steinke et al.'s bound / the f-DP bound per attack and
    group, and the ceilings."""
    groups = list(next(iter(report["by_attack"].values())))
    rows = [[attack] + [canary_cell(v) for v in by_group.values()] for attack, by_group in report["by_attack"].items()]
    rows.append(["most provable with these canaries (every guess right)"] + [ceiling_cell(report, g) for g in groups])
    return rows


def canaries_section(report: dict) -> str:
    groups = list(next(iter(report["by_attack"].values())))
    rows = _audit_rows(report)
    if report["exposure_bits"]:
        rows.append(["exposure, included / left out (bits)"] + [
            f"{'-' if v['included'] is None else format(v['included'], '.1f')} / "
            f"{'-' if v['left_out'] is None else format(v['left_out'], '.1f')}"
            for v in report["exposure_bits"].values()])
    return "\n".join([
        "<h2>Planted canaries: what the audit proves</h2>",
        f"<p>{report['canaries']} synthetic canary sentences with random secrets; a fair coin put "
        f"{report['included']} of them into the training data, each repeated as the column says. Cells: "
        "the attack's AUC of included against left-out canaries / the lower bound on the epsilon of "
        f"(epsilon, {report['delta']:g})-differential privacy that the training cannot have had, at "
        f"{100 * report['confidence']:.0f}% confidence (Steinke, Nasr &amp; Jagielski 2023; guesses on a grid "
        "fixed in advance, paid for by a union bound) / the same from the same guesses by the f-DP audit "
        "(Mahloujifar, Melis &amp; Chaudhuri 2024): the largest mu of mu-Gaussian DP the guesses reject, "
        "as its epsilon at that delta"
        + (" (shown as mu: at delta 0, mu-Gaussian DP has no finite epsilon)" if report["delta"] == 0 else "")
        + ". The f-DP bound is usually the higher but holds only if the training's trade-off curve is Gaussian DP, as "
        "DP-SGD's is under the usual analysis; Steinke et al.'s needs no such assumption. "
        "Each cell holds for its own attack and group; the "
        "largest of them does not. A canary repeated k times is k records: its column bounds the "
        "privacy loss of a group of k records (group privacy), not of one (under (epsilon, 0)-DP one "
        "record's epsilon is at least the bound / k, and under mu-Gaussian DP one record's mu at least mu / k; "
        "&quot;all&quot; mixes groups of every size). "
        "A bound at the ceiling row is limited by the number of canaries, "
        "not by the model: plant more to prove more. Exposure: the secret's rank among alternative secrets by the target's "
        "likelihood, in bits (Carlini et al. 2019).</p>",
        _table(["attack"] + [f"repeated {g}" if g != "all" else "all" for g in groups], rows)])


def canary_patients_section(report: dict) -> str:
    return "\n".join([
        "<h2>Canary patients: what the audit proves at patient level</h2>",
        f"<p>{report['patients']} fictional canary patients, each with {report['notes_per_patient'][0]} to "
        f"{report['notes_per_patient'][1]} notes carrying the patient's own secret record number "
        f"({report['notes']} notes in all); a fair coin put {report['included']} of them, each with all "
        "of its notes, into the training data. A patient's score is the "
        f"{html.escape(report['statistic'])}. Cells: the attack's AUC of included against left-out patients / "
        f"the lower bound on the epsilon of (epsilon, {report['delta']:g})-differential privacy that the "
        f"training cannot have had, at {100 * report['confidence']:.0f}% confidence (Steinke, Nasr &amp; "
        "Jagielski 2023, the patient as the unit; guesses on a grid fixed in advance, paid for by a union "
        "bound) / the same by the f-DP audit (Mahloujifar, Melis &amp; Chaudhuri 2024; valid only if the "
        "training is Gaussian DP), each valid for its own attack. <strong>The bound is on patient-level privacy</strong>: the "
        "privacy loss of all of one patient's notes together (what a data-release board asks about), not "
        "of one record. A bound at the ceiling row is limited by the number of canary patients, not by "
        "the model: plant more to prove more.</p>",
        _table(["attack", "all patients"], _audit_rows(report))])


def comparison_section(comparison: dict) -> str:
    parts = ["<h2>Targets compared on the same sets</h2>",
             f"<p>Differences from {html.escape(comparison['baseline'])}, with 95% intervals from the "
             "same resampled patients for every target (paired).</p>"]
    names = comparison["runs"]
    for name, attacks in comparison["comparisons"].items():
        header = ["attack"] + [f"{n}: AUC" for n in names] + [f"d({n}) AUC [95% CI]" for n in names[1:]] + [
            f"d({n}) TPR@1% [95% CI]" for n in names[1:]]
        rows = []
        for attack, v in attacks.items():
            d = v["differences"]
            rows.append([attack] + [f"{v['runs'][n]['auc']:.3f}" for n in names]
                        + [f"{d[n]['auc']:+.3f}" + (f" [{d[n]['auc_ci'][0]:+.3f}, {d[n]['auc_ci'][1]:+.3f}]" if "auc_ci" in d[n] else "")
                           for n in names[1:]]
                        + [f"{100 * d[n]['tpr']:+.1f}" + (f" [{100 * d[n]['tpr_ci'][0]:+.1f}, {100 * d[n]['tpr_ci'][1]:+.1f}]" if "tpr_ci" in d[n] else "")
                           for n in names[1:]])
        parts += [f"<h3>{name}</h3>", _table(header, rows)]
    if comparison.get("not_compared"):
        parts += ["<h3>Not compared</h3>", "<ul>" + "".join(
            f"<li>{html.escape(attack)}: {html.escape(why)}</li>" for attack, why in comparison["not_compared"].items())
                  + "</ul>"]
    return "\n".join(parts)


def exposed_section(exposed: pd.DataFrame) -> str:
    return "\n".join([
        "<h2>Most exposed sentences</h2>",
        '<div class="sensitive">Shown because the run was asked for them (--show-exposed): this '
        "section holds text of the notes. Do not share this file beyond those allowed to see the "
        "data.</div>",
        _table(list(exposed.columns), exposed.astype(str).values.tolist())])


def verdict_section(verdict: dict) -> str:
    """The verdict first: one short paragraph per question."""
    return "\n".join(['<h2>Verdict</h2><div class="verdict">'] + [
        f"<h3>{html.escape(question)}</h3><p>{html.escape(answer)}</p>"
        for question, answer in verdict_words.paragraphs(verdict)] + ["</div>"])


def _readable(value) -> str:
    """A setting's value as a person reads it: lists joined, dicts as ``key value`` pairs."""
    if isinstance(value, dict):
        return "; ".join(f"{k} {_readable(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_readable(v) for v in value)
    return "-" if value is None else str(value)


def _rows(settings: dict, prefix: str = "") -> list[list[str]]:
    """One row per setting, nested settings one level deep as ``outer.inner``."""
    rows = []
    for key, value in settings.items():
        if isinstance(value, dict) and not prefix and value and all(not isinstance(v, dict) for v in value.values()):
            rows += _rows(value, key + ".")
        elif value is not None:
            rows.append([prefix + key, _readable(value)])
    return rows


# settings.json keys shown in sections of their own (or, for validity_tests, in the validity table)
_SHOWN_APART = ("run", "models", "references", "sets_sha256", "attacks_left_out", "shadow_models",
                "validity_tests", "lira")


def run_section(settings: dict) -> str:
    """When and how the run ran, on what, with which versions; the attacks run and left out
    (with why); every other setting, as tables."""
    if not settings:
        return ("<h2>About this run</h2><p>No settings.json beside the scores: when, how and on which "
                "models this run was made is not known to this report.</p>")
    run = settings.get("run", {})
    about = [[k, run[k]] for k in ("date", "command", "device", "dtype", "data") if k in run]
    about += [["device / dtype asked for", f"{settings.get('device', '-')} / {settings.get('dtype', '-')}"]] if run else []
    digests = [[f"model {name}", path, (run.get("target_sha256") if name == "target" else
                                        settings.get("references", {}).get(name)) or "-"]
               for name, path in settings.get("models", {}).items()]
    digests.append(["sets", settings.get("data_dir", "-"), settings.get("sets_sha256") or "-"])
    parts = ["<h2>About this run</h2>"]
    if about:
        parts.append('<table class="kv"><tr><th>what</th><th>value</th></tr>' + "".join(
            f"<tr><td>{html.escape(k)}</td><td class=\"text\">{html.escape(str(v))}</td></tr>" for k, v in about)
            + "</table>")
    parts.append("<h3>Inputs (SHA-256)</h3>" + "<table class=\"kv\"><tr><th>input</th><th>path</th><th>SHA-256</th></tr>" + "".join(
        f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td class=\"text\">{html.escape(c)}</td></tr>"
        for a, b, c in digests) + "</table>")
    if run.get("versions"):
        parts.append("<h3>Versions</h3>" + _table(list(run["versions"]), [list(run["versions"].values())]))
    if run.get("attacks_run"):
        parts.append("<h3>Attacks</h3><p>Run: " + html.escape(", ".join(run["attacks_run"])) + ".</p>")
    if settings.get("attacks_left_out"):
        parts.append(("" if run.get("attacks_run") else "<h3>Attacks</h3>") + "<p>" + html.escape(
            left_out_message(settings["attacks_left_out"])) + "</p>")
    # the asked-for device and dtype beside those used, the version among the versions
    apart = (*_SHOWN_APART, *(("device", "dtype", "version") if run else ()))
    rest = {k: v for k, v in settings.items() if k not in apart}
    if settings.get("lira"):
        rest["lira"] = {k: v for k, v in settings["lira"].items() if k != "normality"}
    parts.append("<h3>Settings</h3>" + _table(["setting", "value"], _rows(rest), "kv"))
    return "\n".join(parts)


def name_probe_section(probe: dict) -> str:
    """The name-condition probe: per group, own against other conditions; the difference."""
    difference = {"auc": probe["auc_difference"], "auc_ci": probe.get("auc_difference_ci")}
    rows = [[group, m["patients"], m["own_conditions"], _auc(m),
             f"{m['auc_with_name']:.3f}", f"{m['auc_without_name']:.3f}"] for group, m in probe["groups"].items()]
    return "\n".join([
        "<h2>Name-condition probe (Lehman et al. 2021)</h2>",
        "<p>Does the target tie a patient's name to the patient's conditions? Each patient's own "
        "conditions and as many others matched on frequency, scored by the condition's "
        f"log-probability in &ldquo;{html.escape(probe['templates']['with_name'])}&rdquo; minus in "
        f"&ldquo;{html.escape(probe['templates']['without_name'])}&rdquo;. AUC of own against other "
        "conditions: 0.5 is no link; the interval resamples patients.</p>",
        _table(["patients", "n", "own conditions", "AUC [95% CI]", "AUC by the score with the name",
                "AUC by the score without it"], rows),
        f"<p>Members minus non-members: {_auc(difference)}, "
        "what training on the patients' notes added to the link. Lehman et al. found the link weak "
        "in BERT pre-trained on MIMIC-III notes with surrogate names; an AUC near 0.5 in both groups "
        "says this probe finds none, not that no stronger attack could.</p>"]
        + ([f'<p class="warn">{html.escape(probe["interval_warning"])}</p>'] if "interval_warning" in probe else []))


def write_report(path, table: pd.DataFrame, results: dict, settings: dict | None = None,
                 patients: pd.DataFrame | None = None, comparison: dict | None = None,
                 exposed: pd.DataFrame | None = None, roc_png: bytes | None = None) -> None:
    """Write report.html to ``path`` (``roc_png``: the ROC figure, if already drawn): the
    verdict first, then the comparison of targets (if any), the evidence, and what the run
    was (date, command, versions, digests, settings)."""
    settings = settings or {}
    sections = [verdict_section(results[VERDICT])] if VERDICT in results else []
    if comparison is not None:
        sections.append(comparison_section(comparison))
    sections += [validity_section(results), attacks_section(results),
                 patients_section(results, patients),
                 "<h2>4. ROC curves (log-log)</h2>" + _img(roc_png or figures.png(figures.roc_figure(table))),
                 "<h2>5. Score distributions</h2>" + _img(figures.png(figures.distributions_figure(table)))]
    sections += [render(results[key]) for key, render in (
        (CANARIES, canaries_section), (CANARY_PATIENTS, canary_patients_section),
        (MEMORIZATION, memorization_section), (NAME_PROBE, name_probe_section)) if key in results]
    if exposed is not None:
        sections.append(exposed_section(exposed))
    if settings.get("shadow_models"):
        sections.append(shadows_section(settings["shadow_models"]))
    sections.append(run_section(settings))
    run = settings.get("run", {})
    target = settings.get("models", {}).get("target", "")
    subtitle = " &middot; ".join(html.escape(part) for part in [f"Target: {target}"] + (
        [f"run {run['date']}"] if run.get("date") else []))
    banner = (f'<div class="sensitive">Demo: {html.escape(run["data"])}. The numbers show how the tool '
              "works, not how any real model behaves.</div>" if run.get("data", "").startswith("synthetic") else "")
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Membership "
            f"inference report</title><style>{STYLE}</style></head><body><h1>Membership inference "
            f"report</h1><p class=\"note\">{subtitle}</p>{banner}"
            + "\n".join(sections) + "</body></html>\n")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
