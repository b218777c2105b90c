"""Canary patients: seeded fictional patients whose 2 to 8 notes go into training or stay
out as a whole, audited with one statistic per patient (a patient-level bound)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlm_mia.cli import metrics as metrics_cli
from mlm_mia.common.errors import InputError
from mlm_mia.cli import common as cli
from mlm_mia.cli import prepare
from mlm_mia.data import canaries, canary_patients, csv_notes
from mlm_mia.data.prepare import MANIFEST
from mlm_mia.settings.prepare import PrepareSettings
from mlm_mia.stats import audit, metrics
from mlm_mia.cli import score

ROOT = Path(__file__).resolve().parents[1]


def sets_args(corpus) -> list[str]:
    return ["--train-notes", str(corpus["train"]), "--heldout-notes", str(corpus["heldout"]),
            "--n-patients", "6", "--n-sentences", "18"]


def read_patients(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / canary_patients.FILE).open()]


def test_canary_patients_are_reproducible_whole_and_apart_from_the_corpus(corpus, corpus_sentences, tmp_path):
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / "out"
        result = subprocess.run([sys.executable, str(ROOT / "prepare_data_MIA.py"), *sets_args(corpus),
                                 "--canaries", "8", "--canary-patients", "40", "--seed", "3", "--out-dir", str(out)],
                                capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": hash_seed})
        assert result.returncode == 0, result.stderr
        outputs.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert outputs[0] == outputs[1]
    out = tmp_path / "out"
    patients = read_patients(out)
    assert len(patients) == 40 and len({p["secret"] for p in patients}) == 40
    counts = [len(p["notes"]) for p in patients]
    assert min(counts) >= 2 and max(counts) <= 8 and len(set(counts)) > 3  # 2 to 8, drawn
    assert 10 < sum(p["included"] for p in patients) < 30
    texts = [n["text"] for p in patients for n in p["notes"]]
    assert len(set(texts)) == len(texts) and all(canaries.is_canary(t) for t in texts)
    assert all(p["secret"] in n["text"] for p in patients for n in p["notes"])
    # apart from the corpus (text and patient ids), the sets and the sentence canaries' secrets
    corpus_text = {s for pairs in corpus_sentences.values() for _, s in pairs}
    corpus_patients = {p for pairs in corpus_sentences.values() for p, _ in pairs}
    assert not set(texts) & corpus_text and not {p["patient_id"] for p in patients} & corpus_patients
    sentence_canaries = [json.loads(line) for line in (out / canaries.FILE).open()]
    assert not {p["secret"] for p in patients} & {c["secret"] for c in sentence_canaries}
    assert not {p["patient_id"] for p in patients} & {c["patient_id"] for c in sentence_canaries}
    # whole patients: every note of an included patient in the notes to train on, none of the others
    notes = list(csv_notes.read_notes(out / canary_patients.NOTES_FILE))
    assert sorted((n.patient_id, n.text) for n in notes) == sorted(
        (p["patient_id"], n["text"]) for p in patients if p["included"] for n in p["notes"])
    manifest = json.loads((out / MANIFEST).read_text())[canary_patients.KEY]
    assert manifest["n"] == 40 and manifest["notes"] == len(notes) and manifest["notes_per_patient"] == [2, 8]
    # the sentence canaries and the sets are those of a run without canary patients
    assert prepare.main(sets_args(corpus) + ["--canaries", "8", "--seed", "3", "--out-dir", str(tmp_path / "alone")]) == 0
    for name in ("members.jsonl", "non_members.jsonl", canaries.FILE, canaries.NOTES_FILE):
        assert (tmp_path / "alone" / name).read_bytes() == outputs[0][name]


def test_a_patient_whose_note_is_in_the_corpus_gets_another_secret():
    first = canary_patients.make(6, seed=0, digits=3)
    clash = first[2]["notes"][0]["text"]
    again = canary_patients.make(6, seed=0, avoid=lambda text: text == clash, digits=3,
                                 taken_secrets=[first[4]["secret"]])
    assert all(clash != n["text"] for p in again for n in p["notes"]) and again[2]["secret"] != first[2]["secret"]
    assert first[4]["secret"] not in {p["secret"] for p in again}
    assert [p["included"] for p in again] == [p["included"] for p in first]  # the coins do not move
    # the notes, lower-cased without digits (the 1a/1b files), are still never drawn into a set
    assert canaries.is_canary(clash.lower().replace(first[2]["secret"], ""))
    with pytest.raises(InputError, match="--canary-patients 499: more canary patients and 2 canaries"):
        PrepareSettings(canary_patients=499, canary_digits=3, canaries=2)  # checked as the flags are


def test_planted_patients_are_kept_refused_or_replaced(corpus, tmp_path, capsys):
    out = tmp_path / "data"
    assert prepare.main(sets_args(corpus) + ["--canary-patients", "6", "--out-dir", str(out)]) == 0
    planted = {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("canary_patient")}
    code = cli.run_main(prepare.main, sets_args(corpus) + ["--seed", "2", "--out-dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "would drop or replace the planted canary patients" in err[0]
    assert "give --canary-patients 6 --canary-digits 8 to keep them" in err[0]
    assert prepare.main(sets_args(corpus) + ["--canary-patients", "6", "--seed", "2", "--out-dir", str(out)]) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("canary_patient")} == planted
    assert prepare.main(sets_args(corpus) + ["--replace-canaries", "--out-dir", str(out)]) == 0
    assert not any(p.name.startswith("canary_patient") for p in out.iterdir())


def test_the_patient_audit_is_the_one_run_bound_on_patient_means():
    rng = np.random.default_rng(0)
    rows = []
    included = rng.random(60) < 0.5
    for i, inside in enumerate(included):
        for j in range(int(rng.integers(2, 9))):
            rows.append({"set": audit.PATIENT_SET, "id": f"p{i}-{j}", "patient_id": f"{800000000 + i}",
                         "score_loss": rng.normal(1.0 if inside else 0.0, 1.0), "score_zlib": rng.normal(),
                         audit.INCLUDED: int(inside)})
    table = pd.DataFrame(rows)
    report = audit.canary_patient_report(table)
    means = table.groupby("patient_id", sort=True)["score_loss"].mean().to_numpy()
    inside = table.groupby("patient_id", sort=True)[audit.INCLUDED].first().to_numpy() == 1
    assert report["patients"] == 60 and report["included"] == included.sum() and report["notes"] == len(table)
    loss = report["by_attack"]["loss"]["all"]
    assert loss["auc"] == pytest.approx(metrics.auc(inside, means)) and loss["auc"] > 0.8
    assert loss["epsilon"] == audit.one_run_bound(means, inside)
    assert 0 < loss["epsilon"]["epsilon"] <= report["epsilon_ceiling"]["all"] == audit.bound_ceiling(inside)
    table.loc[0, audit.INCLUDED] = 1 - table.loc[0, audit.INCLUDED]
    with pytest.raises(ValueError, match="patients go in or out whole"):
        audit.canary_patient_report(table)


@pytest.fixture(scope="module")
def audited(corpus, random_roberta, tmp_path_factory) -> dict:
    """Small sets with 4 canaries and 12 canary patients, scored under an untrained tiny model."""
    root = tmp_path_factory.mktemp("patients_audited")
    data = root / "data"
    assert prepare.main(sets_args(corpus) + ["--canaries", "4", "--canary-repeats", "1", "--canary-patients", "12",
                                             "--out-dir", str(data)]) == 0
    # the reference is the target: its PLLs come from the cache
    args = ["--target", str(random_roberta), "--reference", str(random_roberta), "--data-dir", str(data),
            "--cache-dir", str(root / "cache"), "--bootstrap", "20", "--exposure-alternatives", "3"]
    assert score.main(args + ["--out-dir", str(root / "results")]) == 0
    return {"data": data, "out": root / "results", "args": args}


def test_score_mia_audits_the_canary_patients_per_patient(audited, capsys, tmp_path):
    results = json.loads((audited["out"] / "metrics.json").read_text())
    report = results["canary_patients"]
    patients = read_patients(audited["data"])
    assert report["patients"] == 12 and report["included"] == sum(p["included"] for p in patients)
    assert report["notes"] == sum(len(p["notes"]) for p in patients)
    assert results["canaries"]["canaries"] == 4  # the sentence canaries beside them, audited apart
    # the per-patient statistic recomputed from scores.csv: the mean of each attack over the patient's notes
    table = pd.read_csv(audited["out"] / "scores.csv", dtype={"patient_id": str})
    rows = table[table["set"] == audit.PATIENT_SET]
    assert len(rows) == report["notes"] and set(rows["patient_id"]) == {p["patient_id"] for p in patients}
    per_patient = rows.groupby("patient_id", sort=True)[["score_loss", audit.INCLUDED]].mean()
    loss = report["by_attack"]["loss"]["all"]
    assert loss["auc"] == pytest.approx(metrics.auc(per_patient[audit.INCLUDED].to_numpy(int),
                                                    per_patient["score_loss"].to_numpy()))
    assert loss["epsilon"] == json.loads(json.dumps(audit.one_run_bound(
        per_patient["score_loss"].to_numpy(), per_patient[audit.INCLUDED].to_numpy() == 1)))
    assert loss["epsilon"]["canaries"] == 12 and loss["epsilon"]["epsilon"] <= report["epsilon_ceiling"]["all"]
    # shown with the sentence that says it is patient-level; no note text or secret in any output
    html = (audited["out"] / "report.html").read_text()
    assert html.index("Planted canaries") < html.index("Canary patients: what the audit proves at patient level")
    assert "The bound is on patient-level privacy</strong>" in html
    for path in audited["out"].iterdir():
        content = path.read_bytes()
        assert not any(p["secret"].encode() in content for p in patients), path.name
    # metrics.py recomputes the same audit from scores.csv, and prints it
    assert metrics_cli.main([str(audited["out"] / "scores.csv"), "--bootstrap", "20",
                             "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["canary_patients"] == report
    assert "the bound is on PATIENT-LEVEL privacy" in capsys.readouterr().out


def test_canary_patients_of_another_run_or_split_are_refused(audited, tmp_path, capsys):
    import shutil
    foreign = tmp_path / "data"
    shutil.copytree(audited["data"], foreign)
    patients = read_patients(foreign)
    patients[0]["included"] = not patients[0]["included"]
    (foreign / canary_patients.FILE).write_text("".join(json.dumps(p) + "\n" for p in patients))
    args = [a if a != str(audited["data"]) else str(foreign) for a in audited["args"]]
    code = cli.run_main(score.main, args + ["--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "canary_patients.jsonl: does not match the run" in err[0]
    assert "prepare_data_MIA.py --canary-patients M" in err[0]
    code = cli.run_main(score.main, ["--target", str(tmp_path), "--canary-patients", "4", "--out-dir", str(tmp_path / "o")])
    assert code == 2 and "--canary-patients plants canaries in the demo" in capsys.readouterr().err
    # a scores.csv whose patient has notes both in and out is refused by metrics.py
    table = pd.read_csv(audited["out"] / "scores.csv", dtype={"patient_id": str})
    first = table.index[table["set"] == audit.PATIENT_SET][0]
    table.loc[first, audit.INCLUDED] = 1 - table.loc[first, audit.INCLUDED]
    table.to_csv(tmp_path / "mixed.csv", index=False)
    code = cli.run_main(metrics_cli.main, [str(tmp_path / "mixed.csv"), "--bootstrap", "0"])
    assert code == 2 and "has notes both included and left out" in capsys.readouterr().err


def test_the_demo_target_trains_on_every_note_of_the_included_patients(audited, corpus, tmp_path):
    import collections
    import shutil
    from mlm_mia.training import demo
    data = tmp_path / "data"
    shutil.copytree(audited["data"], data)
    manifest = json.loads((data / MANIFEST).read_text())
    assert demo._drawn_from_the_corpus(manifest, 4, 12)
    assert not demo._drawn_from_the_corpus(manifest, 4, 0) and not demo._drawn_from_the_corpus(manifest, 4, 8)
    manifest["arguments"]["synthetic_dir"] = str(corpus["train"].parents[1])  # its split/ holds the training notes
    (data / MANIFEST).write_text(json.dumps(manifest))
    counts = collections.Counter(demo.target_texts(data))
    assert all(counts[n["text"]] == int(p["included"]) for p in read_patients(data) for n in p["notes"])


@pytest.mark.parametrize("args, message", [
    (["--canary-patients", "-1"], "--canary-patients: must be a whole number from 0 to 10000000, not '-1'"),
    (["--canary-patients", "6", "--canary-digits", "1"], "--canary-patients 6: more canary patients than half"),
    (["--canary-patients", "4", "--canaries", "2", "--canary-digits", "1"],
     "--canary-patients 4: more canary patients and 2 canaries than half the secret space"),
])
def test_bad_canary_patient_arguments_are_one_clear_error(corpus, tmp_path, args, message, capsys):
    code = cli.run_main(prepare.main, sets_args(corpus) + args + ["--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "out").exists()
