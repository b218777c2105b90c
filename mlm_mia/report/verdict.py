"""The verdict in words: one short paragraph per question of stats/verdict.py, each with its
number and interval, for the printed report and report.html alike."""

from __future__ import annotations

import textwrap

from ..stats.verdict import strength

QUESTIONS = {"sets_differ": "a. Do the sets differ without a model?",
             "leakage": "b. Does the target leak beyond that?",
             "patients": "c. Can individual patients be shown to be members?",
             "canaries": "d. What do the canaries prove?",
             "name_probe": "e. Does the target tie a patient's name to their conditions?"}


def _ci(values: list[float] | None, signed: bool = False) -> str:
    if not values:
        return ""
    form = "+.3f" if signed else ".3f"
    return f" [{format(values[0], form)}, {format(values[1], form)}]"


def _name(comparison: str) -> str:
    return comparison.replace("_vs_", " vs ").replace("_", "-")


def paragraphs(verdict: dict) -> list[tuple[str, str]]:
    """``(question, answer)`` for each question the run can answer."""
    result = [(QUESTIONS["sets_differ"], sets_differ(verdict)), (QUESTIONS["leakage"], leakage(verdict)),
              (QUESTIONS["patients"], patients(verdict["patients"]))]
    audits = [canaries(verdict[key]) for key in ("canaries", "canary_patients") if verdict.get(key)]
    if audits:
        result.append((QUESTIONS["canaries"], " ".join(audits)))
    if verdict.get("name_probe"):
        result.append((QUESTIONS["name_probe"], name_link(verdict["name_probe"])))
    return result


def sets_differ(verdict: dict) -> str:
    """(a) in words."""
    main, found = verdict["comparison"], verdict["sets_differ"]
    check, blind = found["text_only"].get(main), found["blind_baseline"]
    evidence = []
    if check is not None:
        p = "" if check["p_value"] is None else f" (permutation p = {check['p_value']:.3g})"
        evidence.append(f"a classifier on the text alone, which never sees a model, has AUC {check['auc']:.3f}{p}")
    if blind is not None:
        evidence.append(f"the blind baseline {blind['attack']}, which never sees the target, has AUC "
                        f"{blind['auc']:.3f}{_ci(blind['auc_ci'])}")
    if not evidence:
        text = ("Unknown: this run has neither the text-only check (it needs the text: score_MIA.py "
                "computes it) nor a blind baseline (it needs --reference).")
    elif found["differ"]:
        text = (f"Yes. On {_name(main)}, " + " and ".join(evidence) + ": the sets differ in "
                "distribution, and every attack number on this comparison is inflated by that "
                "difference; (b) counts only what an attack finds beyond the text.")
    else:
        text = (f"No. On {_name(main)}, " + " and ".join(evidence) + ": the two sets look alike, so "
                "the attacks measure the target, not a difference between the sets.")
    if evidence and blind is None:
        text += " There is no blind baseline (reference_only needs --reference)."
    if evidence and check is None:
        text += " There is no text-only check in this scores file (score_MIA.py computes it from the text)."
    for other, c in found["text_only"].items():
        if other != main and c["differ"]:
            text += (f" On {_name(other)} the text alone separates the sets (AUC {c['auc']:.3f}): that "
                     "comparison measures the change of source, not membership.")
    return text


def leakage(verdict: dict) -> str:
    """(b) in words."""
    found = verdict["leakage"]
    head, best = found["headline"], found["strongest"]
    if best is None:
        return "Not measured: the run has no attack that sees the target."
    k = len(found["by_attack"])
    if found["baseline"] == "text_only":
        base = f"the text-only classifier (AUC {found['baseline_auc']:.3f}" + (
            ", counted as 0.5: below chance it explains nothing)" if found["baseline_auc"] < 0.5 else ")")
    else:
        base = "chance (0.5; no text-only check here)"
    has_ci = best["excess_ci"] is not None
    if head is not None:
        said = (f"the headline attack, {head['attack']} (chosen in advance: {found['headline_rule']}), has "
                f"AUC {head['auc']:.3f}{_ci(head['auc_ci'])}, {head['excess']:+.3f}"
                f"{_ci(head['excess_ci'], True)} beyond {base}"
                + (", a paired 95% interval over the same resampled patients" if has_ci else "")
                + (f"; at {100 * head['tpr_fpr']:g}% FPR it finds {100 * head['tpr']:.1f}% of the member "
                   "sentences" if head["tpr"] is not None else ""))
    else:
        said = "no headline attack (neither ratio nor loss was run)"
    if k == 1:
        strongest = "It is the only attack that sees the target"
    else:
        who = ("It is also the strongest" if head is not None and best["attack"] == head["attack"]
               else "The strongest") + f" of the {k} attacks"
        strongest = (f"{who}, {best['attack']}: {best['excess']:+.3f}{_ci(best['excess_ci_bonferroni'], True)} "
                     "beyond it" + (f" (Bonferroni interval over the {k} attacks, as the strongest is picked "
                                    "after seeing the scores)" if has_ci else ""))
    if found["leaks"] is None:
        return (f"Not decided: no interval (the run had --bootstrap 0). Point estimates: {said}. "
                f"{strongest}.")
    headline_leaks = head is not None and head["excess_ci"] is not None and head["excess_ci"][0] > 0
    if found["leaks"]:
        leader = head if headline_leaks else best
        word = strength(leader["excess"])
        lead = ("Yes, " + word + ": " if headline_leaks else
                f"Yes, {word}, by an attack other than the headline one: ")
        return (f"{lead}{said}. {strongest}. The target has learnt its training sentences beyond what "
                "the text alone gives away.")
    bound = max(v["excess_ci"][1] for v in found["by_attack"].values())
    return (f"No evidence: {said}, an interval that holds 0. {strongest}" + (", again holding 0" if k > 1 else "")
            + ". This does "
            f"not prove the target safe: it bounds what these attacks find at sentence level (at most "
            f"{bound:+.3f} AUC beyond the text, by the upper ends of the 95% intervals).")


def patients(found: dict) -> str:
    """(c) in words."""
    ranking = found["ranking"]
    rank = ""
    if ranking is not None:
        rank = (f"{ranking['attack']} ranks a member patient above a non-member patient with "
                f"probability {ranking['auc']:.3f}{_ci(ranking['auc_ci'])} (patient-level AUC, "
                f"{ranking['n_pos']} vs {ranking['n_neg']} patients' mean scores)")
    high = ranking is not None and (ranking["auc_ci"][0] > 0.5 if ranking["auc_ci"] else ranking["auc"] > 0.6)
    if not found["tested"]:
        return f"Not tested: {found['left_out']}." + (
            f" The ranking: {rank}." + (" A ranking says the patients as a group are exposed; it "
                                       "proves no single patient's membership." if high else "")
            if rank else "")
    fdr = f"{100 * found['fdr']:.0f}%"
    if found["members_found"]:
        return (f"Yes, {found['members_found']} of {found['member_patients']} member patients: the "
                f"per-patient tests flag them at {fdr} false discovery rate ({found['non_members_flagged']} "
                f"non-member patients flagged too, of the false discoveries that rate allows). Each of them "
                "can be named as likely in the training data." + (f" The ranking: {rank}." if rank else ""))
    text = f"No: at {fdr} false discovery rate none of the {found['member_patients']} member patients is found."
    if high:
        text += (f" Yet {rank}. That is leakage about the patients as a group: given a list of "
                 "candidates, an attacker ranks the members first far above chance, but it proves no "
                 "single patient's membership, and it is no reason to call the model safe.")
    elif rank:
        text += f" And {rank}: no sign of leakage about patients either."
    if found["calibration_fails"]:
        text += (f" The tests' calibration check fails (p = {found['calibration_p']:.3g}): the non-member "
                 "patients do not rank like the population patients, so the p-values are approximate.")
    text += (f" The tests cannot prove more here: with {found['null_patients']} known non-member "
             f"patients no p-value is below {found['smallest_p_value']:.3g}, and Benjamini-Hochberg over "
             f"{found['patients_tested']} patients finds any only if at least "
             f"{found['needed_at_smallest_p']} of them reach that floor; more population patients "
             "(prepare_data_MIA.py --population-patients) give the tests that resolution.")
    return text


def canaries(found: dict) -> str:
    """(d) in words, for sentence canaries or canary patients (``found["unit"]``)."""
    patients = found.get("unit") == "patients"
    what = "canary patients" if patients else "canaries"
    groups = {g: v for g, v in found["by_repeats"].items() if g != "all"}
    if len(groups) <= 1:
        groups = {"all": found["by_repeats"]["all"]}
    level = f"{100 * found['confidence']:.0f}%"
    cells = []
    for group, v in groups.items():
        who = f"the {what}" if group == "all" else (
            "canaries seen once" if group == "1" else f"canaries repeated {group} times (a group of {group} records)")
        auc = "" if v["auc"] is None else f"AUC {v['auc']:.2f}, "
        cells.append(f"{who}: {auc}epsilon >= {v['epsilon']:.2f} (at most {v['ceiling']:.2f} provable)")
    proves = any(v["epsilon"] > 0 for v in groups.values())
    at_ceiling = any(v["epsilon"] > 0 and v["epsilon"] >= v["ceiling"] - 1e-9 for v in groups.values())
    text = (f"{found['included']} of {found['canaries']} planted {what} went into the training data"
            f"{' with all their notes' if patients else ''}, by coin flip. With the headline attack "
            f"{found['attack']}, at {level} confidence (delta {found['delta']:g}): " + "; ".join(cells) + ". ")
    if proves:
        text += ("The training cannot have been differentially private " + ("at the patient level (a patient "
                 "with all their notes as the unit) " if patients else "") + "with a smaller epsilon: that is "
                 "proven, whatever the sets' distributions.")
        if at_ceiling:
            text += f" A bound at its ceiling is limited by the number of {what}: plant more to prove more."
    else:
        text += (f"The {what} were not told apart: they prove nothing about the training (neither "
                 "that it leaks nor that it is private).")
    return text


def name_link(found: dict) -> str:
    """(e) in words."""
    numbers = (f"member patients' AUC {found['members_auc']:.3f}{_ci(found['members_auc_ci'])} against "
               f"non-member patients' {found['non_members_auc']:.3f}{_ci(found['non_members_auc_ci'])}, a "
               f"difference of {found['difference']:+.3f}{_ci(found['difference_ci'], True)}")
    if found["learned"]:
        text = (f"Yes: given a patient's name, the target makes that patient's own conditions more likely "
                f"than frequency-matched others ({numbers}): a link training on the notes added. A model "
                "that ties names to conditions can disclose a named patient's diagnoses.")
    elif found["difference_ci"] is None:
        text = f"Not known without intervals (--bootstrap 0): {numbers}."
    else:
        text = (f"Not found by this probe: {numbers}, an interval that holds 0. As Lehman et al. (2021) "
                "stress, a probe that finds no link does not prove that a stronger one could not.")
    if found["few_patients"]:
        text += (f" With {found['patients']} patients in a group the intervals are narrower than they should "
                 "be (simulated coverage 87-91% with 8 patients, 92-94% with 16).")
    return text


def text(verdict: dict) -> str:
    """The verdict as the printed report's first block."""
    return "\n".join(["VERDICT"] + [q + "\n" + textwrap.fill(a, 100, initial_indent="  ", subsequent_indent="  ")
                                    for q, a in paragraphs(verdict)])
