"""The name-condition probe (Lehman et al. 2021): its readers, its pairs and statistics by
hand, the engine's span scores against a direct computation, and tiny targets trained on
notes where names and conditions go together (the probe finds the link) or not (it does not)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlm_mia.common.errors import InputError
from mlm_mia.data import csv_notes, diagnoses, names, synthetic
from mlm_mia.stats import name_probe

ROOT = Path(__file__).resolve().parents[1]


def test_synthetic_tables_give_each_patient_its_conditions_and_name(corpus):
    codes = diagnoses.read_diagnoses(corpus["diagnoses"])
    titles = diagnoses.read_titles(corpus["diagnosis_titles"])
    patients = list(synthetic.mimic_patients(120, 7))
    assert {p.subject_id for p in patients} == {int(s) for s in codes}
    for p in patients:
        assert [titles[c] for c in codes[str(p.subject_id)]] == [c.lower() for c in p.conditions]
    table = names.read_names(corpus["names"])
    # the names the 1a notes carry, and the 1b notes' line prefixes: the same names, two ways
    assert names.read_names(corpus["one_b"]) == table
    one_a = {}
    for note in csv_notes.read_notes(corpus["one_a"]):
        one_a[note.patient_id] = one_a.get(note.patient_id, "") + note.text
    assert all(table[patient] in text for patient, text in one_a.items())


def test_a_name_only_where_a_patient_has_two_lines_that_share_it(tmp_path):
    path = tmp_path / "SUBJECT_ID_to_NOTES_1b.csv"
    path.write_text('SUBJECT_ID,TEXT\n1,"ann lee was seen today.\nann lee is stable."\n'
                    '2,"bo ma one line only."\n1,"ann  Lee went home."\n', encoding="utf-8")
    assert names.read_names(path) == {"1": "ann lee"}


def test_notes_whose_lines_do_not_start_with_a_name_are_refused_not_read_as_names(tmp_path, corpus):
    # the original or 1a notes given as --patient-names: a few patients' lines share a first
    # word ("the"), which is no name; most patients' lines share none
    path = tmp_path / "SUBJECT_ID_to_NOTES_original.csv"
    path.write_text('SUBJECT_ID,TEXT\n1,"the patient was admitted.\nthe patient is stable."\n'
                    '2,"the x-ray is clear.\nthe heart is normal."\n3,"service: medicine\nchief complaint: '
                    'dyspnea"\n4,"pt has copd.\nhe was intubated."\n', encoding="utf-8")
    for notes in (path, corpus["one_a"]):
        with pytest.raises(InputError, match=f'{notes.name}: the lines of .* patients .* not "1b" notes'):
            names.read_names(notes)


@pytest.mark.parametrize("content, message", [
    ("SUBJECT_ID,NAME\n1,Ann Lee\n1,Bo Ma\n", "record 2 gives patient 1 a second name"),
    ("SUBJECT_ID,NAME\n1,\n", "record 1 has an empty SUBJECT_ID or NAME"),
    ("ID,NAME\n1,Ann\n", "expected a table of names"),
])
def test_bad_names_file_names_the_file_and_the_fix(tmp_path, content, message):
    path = tmp_path / "names.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        names.read_names(path)


def test_bad_diagnosis_tables_name_the_file(tmp_path):
    path = tmp_path / "DIAGNOSES_ICD.csv"
    path.write_text('"ROW_ID","SUBJECT_ID","HADM_ID","ICD9_CODE"\n1,2,3,"4019"\n', encoding="utf-8")
    with pytest.raises(InputError, match="DIAGNOSES_ICD.csv: columns .* expected MIMIC-III's DIAGNOSES_ICD"):
        diagnoses.read_diagnoses(path)
    path.write_text('"ROW_ID","SUBJECT_ID","HADM_ID","SEQ_NUM","ICD9_CODE"\n1,2,3,1,"4019"\n2,2,3,"4280"\n')
    with pytest.raises(InputError, match="record 2 .* has 4 fields, the header 5"):
        diagnoses.read_diagnoses(path)
    # an empty code (as a few real rows have) is skipped; a repeated one counted once
    path.write_text('"ROW_ID","SUBJECT_ID","HADM_ID","SEQ_NUM","ICD9_CODE"\n1,2,3,1,"4019"\n2,2,3,,\n'
                    '3,2,4,1,"4019"\n4,5,6,1,"V1254"\n')
    assert diagnoses.read_diagnoses(path) == {"2": ["4019"], "5": ["V1254"]}


def test_other_conditions_are_the_groups_closest_in_frequency_and_never_the_patients_own():
    # frequencies: a 4, b 3, c 3, d 1, e 1
    conditions = {"1": ["a", "d"], "2": ["a", "b"], "3": ["a", "b", "c"], "4": ["a", "b", "c"],
                  "5": ["c", "e"]}
    made = name_probe.items({"members": ["1", "5"], "non_members": ["2", "3"]}, conditions, seed=0)
    by_patient = {}
    for item in made:
        by_patient.setdefault((item.group, item.patient), []).append((item.code, item.own))
    # the members' conditions: a, c, d, e. Patient 1: a (4) -> c (3), d (1) -> e (1)
    assert by_patient["members", "1"] == [("a", True), ("c", False), ("d", True), ("e", False)]
    # patient 5: c (3) -> a (4), e (1) -> d (1)
    assert by_patient["members", "5"] == [("c", True), ("a", False), ("e", True), ("d", False)]
    # the non-members' conditions: a, b, c. Patient 2: a -> c, then none left for b; 3 has them all
    assert by_patient["non_members", "2"] == [("a", True), ("c", False)]
    assert ("non_members", "3") not in by_patient
    again = name_probe.items({"members": ["1", "5"], "non_members": ["2", "3"]}, conditions, seed=0)
    assert again == made  # seeded: the same pairs every time


def probe_tables(folder: Path, conditions: dict[str, list[str]]) -> dict[str, Path]:
    """Tiny diagnosis tables and a names table (patient p named "name p") of ``conditions``."""
    files = {"diagnoses": folder / "DIAGNOSES_ICD.csv", "diagnosis_titles": folder / "D_ICD_DIAGNOSES.csv",
             "patient_names": folder / "names.csv"}
    rows = [f"{k},{p},{p}0,{k},\"{c}\"" for k, (p, c) in enumerate((p, c) for p in conditions for c in conditions[p])]
    files["diagnoses"].write_text("\n".join(["ROW_ID,SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE"] + rows) + "\n")
    codes = sorted({c for cs in conditions.values() for c in cs})
    files["diagnosis_titles"].write_text("\n".join(["ROW_ID,ICD9_CODE,SHORT_TITLE,LONG_TITLE"] + [
        f'{k},{c},t{c},"Title, {c}"' for k, c in enumerate(codes)]) + "\n")
    files["patient_names"].write_text("\n".join(["SUBJECT_ID,NAME"] + [f"{p},name {p}" for p in conditions]) + "\n")
    return files


def test_a_group_left_with_one_patient_that_has_other_conditions_stops_before_scoring(tmp_path):
    from mlm_mia.settings.study import StudySettings
    from mlm_mia.study import name_probe as study_probe
    # the members' conditions are all patient 1's: 1 has no other condition, so 2 alone remains
    files = probe_tables(tmp_path, {"1": ["a", "b", "c"], "2": ["a", "b"], "3": ["d"], "4": ["e"]})
    sets = pd.DataFrame({"set": ["members", "members", "non_members", "non_members"],
                         "patient_id": ["1", "2", "3", "4"]})
    settings = StudySettings(target=tmp_path, name_probe=True, **files)
    with pytest.raises(InputError, match="DIAGNOSES_ICD.csv: 1 of the 2 members patients .* other"):
        study_probe.plan(sets, settings)
    files = probe_tables(tmp_path, {"1": ["a", "b", "c", "f"], "2": ["a", "b"], "5": ["c", "f"],
                                    "3": ["d"], "4": ["e"]})
    sets = pd.DataFrame({"set": ["members"] * 3 + ["non_members"] * 2, "patient_id": ["1", "2", "5", "3", "4"]})
    plan = study_probe.plan(sets, settings)
    assert plan.left_out["members"] == {"without_name": 0, "without_condition": 0, "without_other_condition": 1}
    assert {i.patient for i in plan.items if i.group == "members"} == {"2", "5"}


def test_titles_of_other_codes_are_refused_not_matched_to_a_few_diagnoses(tmp_path):
    # D_ICD_PROCEDURES (same columns as D_ICD_DIAGNOSES) given as --diagnosis-titles: a few
    # procedure codes equal diagnosis codes, and would give them a procedure's title
    from mlm_mia.settings.study import StudySettings
    from mlm_mia.study import name_probe as study_probe
    files = probe_tables(tmp_path, {"1": ["a", "b"], "2": ["c"], "3": ["a", "d"], "4": ["b", "e"]})
    files["diagnosis_titles"].write_text("ROW_ID,ICD9_CODE,SHORT_TITLE,LONG_TITLE\n1,a,s,venous cath\n"
                                         "2,b,s,insert endotracheal tube\n3,x,s,other\n")
    sets = pd.DataFrame({"set": ["members", "members", "non_members", "non_members"],
                         "patient_id": ["1", "2", "3", "4"]})
    with pytest.raises(InputError, match="D_ICD_DIAGNOSES.csv: 3 of the 5 ICD-9 codes of .*DIAGNOSES_ICD.csv "
                                         "have no title in it"):
        study_probe.plan(sets, StudySettings(target=tmp_path, name_probe=True, **files))


def test_a_template_longer_than_the_target_takes_is_refused_not_scored_cut(tmp_path, random_roberta):
    from mlm_mia.engine.scoring import ModelDir, ScoreSettings
    from mlm_mia.settings.study import StudySettings
    from mlm_mia.study import name_probe as study_probe
    files = probe_tables(tmp_path, {"1": ["a", "b"], "2": ["c"], "3": ["a", "d"], "4": ["b", "e"]})
    long_title = "closed fracture of the shaft of the femur with other injury " * 8  # > 64 tokens
    files["diagnosis_titles"].write_text("ROW_ID,ICD9_CODE,SHORT_TITLE,LONG_TITLE\n" + "".join(
        f"{k},{c},s,{long_title if c == 'a' else 'gout'}\n" for k, c in enumerate("abcde")))
    sets = pd.DataFrame({"set": ["members", "members", "non_members", "non_members"],
                         "patient_id": ["1", "2", "3", "4"]})
    plan = study_probe.plan(sets, StudySettings(target=random_roberta, name_probe=True, **files))
    settings = ScoreSettings(progress=False)
    with pytest.raises(InputError, match=r"\d+ of the name probe's \d+ templates are longer than the target's 64 tokens"):
        study_probe.run(plan, ModelDir(random_roberta, "--target", "target", settings), settings, 0, 0)


def test_templates_span_the_condition_and_auc_and_interval_computed_two_ways():
    made = [name_probe.Item(g, p, c, own) for g in name_probe.GROUPS for p in (f"{g}1", f"{g}2", f"{g}3")
            for c, own in (("x", True), ("y", False))]
    sentences, spans = name_probe.templates(made[:2], {"members1": "ann lee"}, {"x": "gout", "y": "anemia"})
    assert sentences == ["ann lee is a patient with gout", "is a patient with gout",
                         "ann lee is a patient with anemia", "is a patient with anemia"]
    assert [s[a:b] for s, (a, b) in zip(sentences, spans)] == ["gout", "gout", "anemia", "anemia"]
    rng = np.random.default_rng(5)
    with_name, without = rng.normal(size=len(made)), rng.normal(size=len(made))
    result = name_probe.evaluate(name_probe.scores_table(made, with_name, without), n_boot=50, seed=3)
    for index, group in enumerate(name_probe.GROUPS):
        rows = [i for i, item in enumerate(made) if item.group == group]
        y = [made[i].own for i in rows]
        score = with_name[rows] - without[rows]
        assert result["groups"][group]["auc"] == pytest.approx(roc_auc_score(y, score))
        # the interval: patients drawn with replacement, each with its own and other condition
        draw = np.random.default_rng([3, index])
        aucs = []
        for _ in range(50):
            counts = np.bincount(draw.integers(3, size=3), minlength=3)
            picked = [r for k, r in enumerate(np.arange(6).reshape(3, 2)) for _ in range(counts[k])]
            picked = np.concatenate(picked)
            aucs.append(roc_auc_score(np.array(y)[picked], score[picked]))
        assert result["groups"][group]["auc_ci"] == pytest.approx(list(np.percentile(aucs, [2.5, 97.5])))
    members, non_members = (result["groups"][g]["auc"] for g in name_probe.GROUPS)
    assert result["auc_difference"] == pytest.approx(members - non_members)


def test_span_scores_equal_masking_the_span_left_to_right_by_hand(random_roberta):
    import torch
    from mlm_mia.engine.pll import PLLEngine
    from transformers import AutoTokenizer, RobertaForMaskedLM
    model = RobertaForMaskedLM.from_pretrained(random_roberta).eval()
    tokenizer = AutoTokenizer.from_pretrained(random_roberta)
    sentences = ["ann lee is a patient with chronic kidney disease", "is a patient with gout"]
    spans = [(len(s) - len(c), len(s)) for s, c in zip(sentences, ["chronic kidney disease", "gout"])]
    got = PLLEngine(model, tokenizer, 64).score(sentences, spans=spans)
    for sentence, (start, stop), scores in zip(sentences, spans, got):
        encoded = tokenizer(sentence, return_offsets_mapping=True)
        ids = torch.tensor(encoded["input_ids"])
        span = [i for i, (a, b) in enumerate(encoded["offset_mapping"]) if a < stop and start < b]
        expected = []
        for k, position in enumerate(span):
            masked = ids.clone()
            masked[span[k:]] = tokenizer.mask_token_id
            with torch.no_grad():
                logits = model(input_ids=masked[None]).logits[0, position]
            expected.append(torch.log_softmax(logits, -1)[ids[position]].item())
        assert len(span) >= 1
        np.testing.assert_allclose(scores.logprobs, expected, rtol=1e-5, atol=1e-6)


def probe_notes(corpus, patients: list[str], shuffled: bool) -> list[str]:
    """1b-style lines of ``patients``: each condition of a patient with the patient's name,
    or, ``shuffled``, with the name of the next patient (names and conditions apart). In the
    probe's own phrasing: a tiny model trained on 48 lines does not carry the link over to
    other phrasing (with "{name} has a history of {condition}." the members' AUC was 0.59-0.61)."""
    table = names.read_names(corpus["names"])
    titles = diagnoses.read_titles(corpus["diagnosis_titles"])
    codes = diagnoses.read_diagnoses(corpus["diagnoses"])
    named = dict(zip(patients, patients[1:] + patients[:1])) if shuffled else {p: p for p in patients}
    return [name_probe.TEMPLATE.format(name=table[named[p]], condition=titles[c]) + "."
            for p in patients for c in codes[p]]


@pytest.fixture(scope="module")
def probe_study(corpus, small_sets, tmp_path_factory) -> dict:
    """Two tiny targets trained on the member patients of ``small_sets`` and 8 more of the
    training half: names with their own conditions, and names shuffled among them."""
    from mlm_mia.training import recipe
    from mlm_mia.training.train import TinyShape, train_tiny_mlm, train_tokenizer
    root = tmp_path_factory.mktemp("name_probe")
    sets = pd.read_json(small_sets / "members.jsonl", lines=True, dtype={"patient_id": str})
    members = sorted(set(sets["patient_id"]))
    train_patients = sorted({n.patient_id for n in csv_notes.read_notes(corpus["train"])})
    members += [p for p in train_patients if p not in members][:8]
    heldout = sorted({n.patient_id for n in csv_notes.read_notes(corpus["heldout"])})[:16]
    tiny = dataclasses.replace(recipe.load(ROOT / "tests" / "tiny_recipe.yaml"), epochs=200, batch_size=8, learning_rate=5e-3, mlm_probability=0.4)
    shape = TinyShape(hidden=64, layers=2, heads=2, intermediate=128, max_positions=66)
    study = {"root": root, "members": members, "non_members": heldout}
    # on the whole 1b corpus: names and conditions whole tokens, as a real tokenizer has them
    tokenizer = train_tokenizer([line for note in csv_notes.read_notes(corpus["one_b"])
                                 for line in note.text.splitlines()], root / "tokenizer", vocab_size=2000)
    for kind in ("linked", "shuffled"):
        lines = probe_notes(corpus, members, kind == "shuffled")
        study[kind] = train_tiny_mlm(lines, root / kind, tokenizer, tiny, seed=1, shape=shape)
    return study


def probe(corpus, study: dict, target: Path) -> dict:
    from mlm_mia.engine.scoring import ModelDir, ScoreSettings
    from mlm_mia.settings.study import StudySettings
    from mlm_mia.study import name_probe as study_probe
    sets = pd.DataFrame({"set": ["members"] * len(study["members"]) + ["non_members"] * len(study["non_members"]),
                         "patient_id": study["members"] + study["non_members"]})
    plan = study_probe.plan(sets, StudySettings(target=target, name_probe=True, diagnoses=corpus["diagnoses"],
                                                diagnosis_titles=corpus["diagnosis_titles"], patient_names=corpus["names"]))
    settings = ScoreSettings(progress=False)
    return study_probe.run(plan, ModelDir(target, "--target", "target", settings), settings, n_boot=200, seed=0)[0]


def test_the_probe_finds_the_link_a_target_learned_and_none_when_names_are_shuffled(corpus, probe_study):
    linked = probe(corpus, probe_study, probe_study["linked"])
    members, non_members = linked["groups"]["members"], linked["groups"]["non_members"]
    assert members["patients"] == 16 and members["own_conditions"] == 48
    assert members["auc"] > 0.65 and members["auc_ci"][0] > 0.5, members  # measured 0.718 [0.622, 0.800]
    # non-members share first or last names with members: some of the link carries over to them
    assert linked["auc_difference"] > 0, linked
    shuffled = probe(corpus, probe_study, probe_study["shuffled"])["groups"]["members"]
    print("name probe, linked:", members, non_members, "shuffled:", shuffled)
    assert shuffled["auc_ci"][0] < 0.5 < shuffled["auc_ci"][1] or shuffled["auc"] < 0.5, shuffled


def test_score_mia_name_probe_writes_ids_and_numbers_and_a_report_section(corpus, small_sets, probe_study,
                                                                          tmp_path, capsys):
    from mlm_mia.cli import score
    out = tmp_path / "results"
    assert score.main(["--target", str(probe_study["linked"]), "--data-dir", str(small_sets),
                       "--out-dir", str(out), "--no-cache", "--bootstrap", "50", "--name-probe",
                       "--diagnoses", str(corpus["diagnoses"]), "--diagnosis-titles",
                       str(corpus["diagnosis_titles"]), "--patient-names", str(corpus["one_b"])]) == 0
    result = json.loads((out / "metrics.json").read_text())["name_probe"]
    assert {g: m["patients"] for g, m in result["groups"].items()} == {"members": 8, "non_members": 8}
    # the same numbers as the probe computed directly, with the names from SUBJECT_ID,NAME
    # rather than 1b (8 members are too few for the link to show: 0.490 [0.394, 0.575])
    sets = {group: sorted(set(pd.read_json(small_sets / f"{group}.jsonl", lines=True,
                                           dtype={"patient_id": str})["patient_id"]))
            for group in name_probe.GROUPS}
    direct = probe(corpus, sets, probe_study["linked"])
    for group, entry in direct["groups"].items():
        for key in ("patients", "own_conditions", "auc", "auc_with_name", "auc_without_name"):
            assert result["groups"][group][key] == pytest.approx(entry[key]), (group, key)
    # ids and numbers, never a name or a condition
    words = list(names.read_names(corpus["names"]).values()) + list(diagnoses.read_titles(corpus["diagnosis_titles"]).values())
    for path in out.iterdir():
        if path.suffix != ".png":
            text = path.read_text().lower()
            assert not [w for w in words if w.lower() in text], path.name
    assert "Name-condition probe" in (out / "report.html").read_text()
    printed = capsys.readouterr().out
    assert "name_probe: does the target tie" in printed
    assert "e. Does the target tie a patient's name to their conditions?\n  Not found by this probe" in printed
    settings = json.loads((out / "settings.json").read_text())["name_probe"]
    assert set(settings) == {"diagnoses", "diagnosis_titles", "patient_names"}
    # name_probe.csv: ids and numbers, not the conditions; metrics.py recomputes the entry from it
    written = pd.read_csv(out / "name_probe.csv", dtype={"patient_id": str})
    assert list(written.columns) == list(name_probe.COLUMNS) and len(written) == 96
    from mlm_mia.cli import metrics as metrics_cli
    assert metrics_cli.main([str(out / "scores.csv"), "--bootstrap", "50", "--json", str(tmp_path / "m.json")]) == 0
    again = json.loads((tmp_path / "m.json").read_text())
    assert again["name_probe"] == {k: v for k, v in result.items() if k != "left_out"}
    assert again["verdict"]["name_probe"] == json.loads((out / "metrics.json").read_text())["verdict"]["name_probe"]


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.rename(columns={"own": "mine"}), r"columns \['group', 'patient_id', 'mine'"),
    (lambda t: t.assign(with_name=t["with_name"].astype(object).where(t.index != 3, "x")),
     "row 5 of with_name is 'x', not a finite number"),
    (lambda t: t.assign(without_name=t["without_name"].astype(object).where(t.index != 0, "-inf")),
     "row 2 of without_name is '-inf', not a finite number"),
    (lambda t: t.assign(own=t["own"].where(t.index != 0, 2)), "row 2: group must be one of"),
    (lambda t: t[~((t["patient_id"] == "m1") & (t["own"] == 0))], "the members group needs at least 2 patients, "
     "each with own"),
])
def test_a_bad_name_probe_csv_names_the_file_and_what_is_wrong(tmp_path, edit, message):
    made = [name_probe.Item(g, f"{g[0]}{k}", c, own) for g in name_probe.GROUPS for k in range(3)
            for c, own in (("x", True), ("y", False))]
    table = name_probe.scores_table(made, np.arange(12.0), np.zeros(12))
    path = tmp_path / "name_probe.csv"
    edit(table).to_csv(path, index=False)
    with pytest.raises(InputError, match=message):
        name_probe.read_scores(path)
    table.to_csv(path, index=False)
    assert name_probe.evaluate(name_probe.read_scores(path), 20, 0) == name_probe.evaluate(table, 20, 0)
