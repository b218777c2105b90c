"""The verdict on score tables with known properties: no leak, a strong leak, sets that
differ without any leak, and a target alone; its paired intervals computed two ways; the
figures' legends and panels; the run's context."""

import numpy as np
import pandas as pd
import pytest

from mlm_mia.report import figures, tables
from mlm_mia.report import verdict as words
from mlm_mia.stats import evaluation, metrics
from mlm_mia.stats.verdict import headline_attack


def study_table(leak: float, shift: float, seed: int, attacks=("loss", "ratio", "reference_only"),
                patients: int = 30, per_patient: int = 8, population: int = 0) -> pd.DataFrame:
    """Members and non-members of ``patients`` patients each (a population of
    ``population`` patients more): every attack scores a patient effect plus noise,
    members ``leak`` higher; the text-only classifier and the blind baseline see only
    ``shift``, by which the members' text differs, and the attacks see it too."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, n in (("members", patients), ("non_members", patients), ("population", population)):
        for p in range(n):
            effect = rng.normal(0, 0.5)
            for k in range(per_patient):
                differ = shift if name == "members" else 0.0
                rows.append({"set": name, "id": f"{name}-{p}-{k}", "patient_id": f"{name}{p}",
                             "base": effect + rng.normal(), "text": differ + rng.normal(),
                             "member": leak if name == "members" else 0.0, "differ": differ})
    table = pd.DataFrame(rows)
    for attack in attacks:
        blind = attack == "reference_only"
        table[f"score_{attack}"] = (table["differ"] + rng.normal(0, 1, len(table))
                                    + (0 if blind else table["member"] + table["base"]))
    # out-of-fold text-only scores exist on the comparison's rows only
    table["text_only_members_vs_non_members"] = np.where(table["set"] == "population", np.nan, table["text"])
    return table.drop(columns=["base", "text", "member", "differ"])


def judged(table: pd.DataFrame, n_boot: int = 200) -> tuple[dict, str]:
    results, _ = evaluation.compare(table, n_boot=n_boot)
    return results, tables.tables(results)


def test_no_leak_target_is_said_to_show_no_evidence():
    results, printed = judged(study_table(leak=0.0, shift=0.0, seed=1, population=25))
    verdict = results["verdict"]
    assert list(results)[0] == "verdict" and printed.startswith("VERDICT\na. Do the sets differ")
    assert verdict["sets_differ"]["differ"] is False and verdict["leakage"]["leaks"] is False
    assert verdict["leakage"]["headline"]["attack"] == "ratio"
    answers = dict(words.paragraphs(verdict))
    assert answers[words.QUESTIONS["sets_differ"]].startswith("No. On members vs non-members")
    assert answers[words.QUESTIONS["leakage"]].startswith("No evidence: the headline attack, ratio")
    assert "does not prove the target safe" in answers[words.QUESTIONS["leakage"]]
    assert verdict["patients"]["members_found"] == 0
    assert answers[words.QUESTIONS["patients"]].startswith("No: at 5% false discovery rate none of the 30")


def test_strongly_leaking_target_is_said_to_leak_and_its_patients_found():
    results, _ = judged(study_table(leak=2.5, shift=0.0, seed=2, population=120))
    verdict = results["verdict"]
    head = verdict["leakage"]["headline"]
    assert head["excess_ci"][0] > 0.2 and verdict["leakage"]["leaks"] is True
    answers = dict(words.paragraphs(verdict))
    assert answers[words.QUESTIONS["leakage"]].startswith("Yes, strongly: the headline attack, ratio")
    found = verdict["patients"]["members_found"]
    assert found > 0 and answers[words.QUESTIONS["patients"]].startswith(f"Yes, {found} of 30 member patients")


def test_sets_that_differ_without_a_leak_are_not_taken_for_a_leak():
    """Members' text differs (the text-only AUC is high, and so is every attack's), but the
    target learnt nothing beyond it: the excess over the text-only classifier holds 0."""
    results, printed = judged(study_table(leak=0.0, shift=1.2, seed=3))
    verdict = results["verdict"]
    assert results["members_vs_non_members"]["ratio"]["auc"] > 0.7
    assert verdict["sets_differ"]["differ"] is True and verdict["leakage"]["leaks"] is False
    answers = dict(words.paragraphs(verdict))
    assert answers[words.QUESTIONS["sets_differ"]].startswith("Yes. On members vs non-members")
    assert answers[words.QUESTIONS["leakage"]].startswith("No evidence")
    assert answers[words.QUESTIONS["patients"]].startswith("Not tested: the per-patient tests need a population")


def test_target_alone_has_loss_for_headline_and_says_it_has_no_blind_baseline():
    table = study_table(leak=0.6, shift=0.0, seed=4, attacks=("loss",))
    results, _ = judged(table.drop(columns="text_only_members_vs_non_members"))
    verdict = results["verdict"]
    assert verdict["leakage"]["headline"]["attack"] == "loss" and verdict["leakage"]["baseline"] == "chance"
    answers = dict(words.paragraphs(verdict))
    assert answers[words.QUESTIONS["sets_differ"]].startswith("Unknown: this run has neither")
    assert "beyond chance (0.5; no text-only check here)" in answers[words.QUESTIONS["leakage"]]
    assert words.QUESTIONS["canaries"] not in answers


def test_excess_is_paired_on_the_same_resamples():
    """Hand-worked: members [3, 1] and non-members [2, 0] give AUC 3/4; a baseline [1, 0] vs
    [0, 1] gives 1/2. Each resample's difference is the two AUCs' difference on that very
    resample (bootstrap() of each), and an attack equal to its baseline differs by exactly 0."""
    y = np.array([1, 1, 0, 0])
    scores, baseline = np.array([3.0, 1.0, 2.0, 0.0]), np.array([1.0, 0.0, 0.0, 1.0])
    resamples = metrics.resample(y, ["a", "b", "c", "d"], 50, seed=5)
    found = metrics.paired_auc_differences(y, {"s": scores, "same": baseline}, baseline, resamples)
    assert found["s"][0] == 0.75 - 0.5 and found["same"][0] == 0.0
    expected = (metrics.bootstrap(y, scores, resamples, ())["auc"]
                - metrics.bootstrap(y, baseline, resamples, ())["auc"])
    np.testing.assert_array_equal(found["s"][1], expected)
    assert not found["same"][1].any()
    # a baseline below chance counts as 0.5, in every resample
    below = metrics.paired_auc_differences(y, {"s": scores}, -scores, resamples, floor=0.5)["s"]
    assert below[0] == 0.25 and (below[1] <= metrics.bootstrap(y, scores, resamples, ())["auc"] - 0.5).all()


def test_headline_attack_is_fixed_in_advance():
    assert headline_attack(["loss", "min_k", "ratio_a", "ratio_b"]) == "ratio_a"
    assert headline_attack(["min_k", "loss"]) == "loss" and headline_attack(["min_k"]) is None


def test_roc_figure_has_a_panel_per_comparison_and_aucs_in_its_legends():
    table = study_table(leak=0.5, shift=0.0, seed=6)
    results, _ = evaluation.compare(table, n_boot=0)
    fig = figures.roc_figure(table)
    shown = [ax for ax in fig.axes if ax.get_legend() is not None]
    assert [ax.get_title().split("\n")[0] for ax in shown] == ["members_vs_non_members",
                                                                "patients: members_vs_non_members"]
    labels = dict(t.get_text().split("  ") for t in shown[1].get_legend().get_texts())
    assert labels["ratio"] == f"{results['patient_members_vs_non_members']['ratio']['auc']:.3f}"
    aucs = [float(v) for k, v in labels.items() if k != "chance"]
    assert aucs == sorted(aucs, reverse=True) and set(labels) == {"loss", "ratio", "reference_only", "chance"}
    dist = figures.distributions_figure(table)
    assert {ax.get_xlabel() for ax in dist.axes} == {"score (higher: more likely a member)"}


@pytest.mark.parametrize("demo", [True, False])
def test_run_context_records_what_ran(random_roberta, demo):
    from mlm_mia.engine.models import fingerprint
    from mlm_mia.engine.scoring import ModelDir, ScoreSettings
    from mlm_mia.study.context import run_context

    target = ModelDir(random_roberta, "--target", "target", ScoreSettings(device="auto", dtype="auto"))
    run = run_context(["/x/score_MIA.py", "--demo", "--out-dir", "a b"], target, "engine", ["loss"], demo)
    assert run["command"] == "score_MIA.py --demo --out-dir 'a b'"
    assert (run["device"], run["dtype"]) == ("cpu", "fp32") and run["target_sha256"] == fingerprint(random_roberta)
    assert set(run["versions"]) >= {"mlm_mia", "python", "torch", "transformers", "numpy", "pandas", "scikit-learn"}
    assert run["data"].startswith("synthetic") == demo


def test_canaries_told_apart_prove_a_bound_and_ones_not_told_apart_prove_nothing():
    table = study_table(leak=0.5, shift=0.0, seed=7, attacks=("loss",))
    included = np.arange(40) % 2
    canaries = pd.DataFrame({"set": "canaries", "id": [f"c{i}" for i in range(40)],
                             "patient_id": [f"c{i}" for i in range(40)], "canary_included": included,
                             "canary_repeats": np.where(np.arange(40) < 20, 1, 4)})
    for told_apart, expected in ((True, "cannot have been differentially private"), (False, "prove nothing")):
        scores = included + np.arange(40) / 1000 if told_apart else np.arange(40) % 3
        results, _ = judged(pd.concat([table, canaries.assign(score_loss=scores)], ignore_index=True), n_boot=0)
        found = results["verdict"]["canaries"]
        assert found["attack"] == "loss" and set(found["by_repeats"]) == {"all", "1", "4"}
        assert (found["by_repeats"]["4"]["epsilon"] > 0) == told_apart
        answer = dict(words.paragraphs(results["verdict"]))[words.QUESTIONS["canaries"]]
        assert expected in answer and "canaries repeated 4 times (a group of 4 records)" in answer


def test_the_name_probe_is_answered_from_its_difference_between_member_and_non_member_patients():
    from mlm_mia.stats import name_probe

    rng = np.random.default_rng(3)
    made = [name_probe.Item(g, f"{g}{p}", f"c{k}", own) for g in name_probe.GROUPS for p in range(40)
            for k in range(3) for own in (True, False)]
    own = np.array([i.own for i in made], float)
    members = np.array([i.group == "members" for i in made])
    table = study_table(leak=0.5, shift=0.0, seed=7, attacks=("loss",))
    for link, expected in ((1.5, "Yes: given a patient's name"), (0.0, "Not found by this probe")):
        with_name = rng.normal(size=len(made)) + link * own * members
        probe = name_probe.evaluate(name_probe.scores_table(made, with_name, np.zeros(len(made))), 200, 0)
        results, _ = evaluation.compare(table, n_boot=200, name_probe=probe)
        found = results["verdict"]["name_probe"]
        assert results["name_probe"] is probe and found["learned"] == (link > 0)
        assert found["difference"] == pytest.approx(probe["groups"]["members"]["auc"] - probe["groups"]["non_members"]["auc"])
        answer = dict(words.paragraphs(results["verdict"]))[words.QUESTIONS["name_probe"]]
        assert answer.startswith(expected) and "narrower than they should be" not in answer
    few = name_probe.evaluate(name_probe.scores_table(made[:36] + made[240:276], with_name[:72], np.zeros(72)), 50, 0)
    answer = words.name_link(evaluation.compare(table, n_boot=50, name_probe=few)[0]["verdict"]["name_probe"])
    assert "With 6 patients in a group the intervals are narrower than they should be" in answer


def test_canary_patients_are_answered_beside_the_canaries_at_the_patient_level():
    table = study_table(leak=0.5, shift=0.0, seed=7, attacks=("loss",))
    included = np.repeat(np.arange(30) % 2, 3)  # 30 patients of 3 notes, in or out whole
    patients = pd.DataFrame({"set": "canary_patients", "id": [f"n{i}" for i in range(90)],
                             "patient_id": [f"80000000{i // 3}" for i in range(90)], "canary_included": included})
    for told_apart, expected in ((True, "cannot have been differentially private at the patient level"),
                                 (False, "The canary patients were not told apart")):
        scores = included + np.arange(90) / 1000 if told_apart else np.arange(90) % 3
        results, _ = judged(pd.concat([table, patients.assign(score_loss=scores)], ignore_index=True), n_boot=0)
        found = results["verdict"]["canary_patients"]
        assert found["unit"] == "patients" and found["canaries"] == 30 and found["included"] == 15
        assert results["verdict"]["canaries"] is None
        answer = dict(words.paragraphs(results["verdict"]))[words.QUESTIONS["canaries"]]
        assert answer.startswith("15 of 30 planted canary patients went into the training data with all their notes")
        assert expected in answer
