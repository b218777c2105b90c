import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlm_mia.data import csv_notes, split
from mlm_mia.common.errors import InputError
from mlm_mia.cli.prepare import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--n-patients", "20", "--n-sentences", "150"]


def data_args(corpus) -> list[str]:
    return ["--train-notes", str(corpus["train"]), "--heldout-notes", str(corpus["heldout"]),
            "--n2c2", str(corpus["n2c2_tar"])]


def read_sets(out: Path) -> dict[str, list[dict]]:
    return {name: [json.loads(line) for line in (out / f"{name}.jsonl").open()]
            for name in ("members", "non_members", "externals") if (out / f"{name}.jsonl").exists()}


def patients_in(path: Path) -> set[str]:
    return {n.patient_id for n in csv_notes.read_notes(path)}


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    assert main(data_args(corpus) + SMALL + ["--out-dir", str(out)]) == 0
    return out


def test_sets_have_the_asked_counts(prepared):
    sets = read_sets(prepared)
    for name, records in sets.items():
        assert len(records) == 150
        assert len({r["patient_id"] for r in records}) == 20
        assert all(r["set"] == name for r in records)
        assert [r["id"] for r in records] == [f"{name}-{i:05d}" for i in range(150)]
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert {k: v["n_sentences"] for k, v in manifest["sets"].items()} == {
        "members": 150, "non_members": 150, "externals": 150}


def test_sets_are_disjoint_by_patient_and_by_text(prepared, corpus):
    sets = read_sets(prepared)
    texts = [r["text"] for records in sets.values() for r in records]
    assert len(texts) == len(set(texts))
    train_patients = patients_in(corpus["train"])
    assert {r["patient_id"] for r in sets["members"]} <= train_patients
    assert not {r["patient_id"] for r in sets["non_members"]} & train_patients
    assert all(r["patient_id"].startswith("n2c2-") for r in sets["externals"])


def test_sentences_are_clean_and_come_from_their_patients(prepared, corpus):
    sets = read_sets(prepared)
    notes = {}
    for note in csv_notes.read_notes(corpus["train"]):
        notes.setdefault(note.patient_id, []).append(" ".join(note.text.split()))
    for record in sets["members"]:
        text = record["text"]
        assert len(text) >= 20 and text == " ".join(text.split())
        assert any(text in note for note in notes[record["patient_id"]])


def test_exclusion_is_symmetric_so_boilerplate_is_in_neither_set(prepared, corpus):
    from mlm_mia.data.sources import note_source
    training = {s for _, s in note_source(str(corpus["train"]), "--train-notes", None).sentences(20)}
    heldout = {s for _, s in note_source(str(corpus["heldout"]), "--heldout-notes", None).sentences(20)}
    sets = read_sets(prepared)
    assert not {r["text"] for r in sets["non_members"] + sets["externals"]} & training
    assert not {r["text"] for r in sets["members"]} & heldout
    # the generic lines every synthetic patient shares are in both halves, so in no set
    boilerplate = "Will continue to monitor closely overnight."
    assert boilerplate in training and boilerplate in heldout


def test_sets_load_with_datasets(prepared):
    from datasets import load_dataset
    data = load_dataset("json", data_files={n: str(prepared / f"{n}.jsonl")
                                            for n in ("members", "non_members", "externals")})
    assert data["members"].num_rows == 150
    assert set(data["externals"].column_names) >= {"id", "set", "patient_id", "text"}


def run_script(args: list[str], env_extra: dict | None = None, cwd: Path = ROOT):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "prepare_data_MIA.py"), *args],
                          capture_output=True, text=True, env=env, cwd=cwd)


def test_outputs_are_byte_identical_across_hash_seeds(corpus, tmp_path):
    outputs = []
    out = tmp_path / "out"  # the same path both times: the manifest records it
    for hash_seed in ("1", "2"):
        if out.exists():
            shutil.rmtree(out)
        result = run_script(["--split", str(corpus["noteevents"]), "--n2c2", str(corpus["n2c2"]),
                             *SMALL, "--seed", "5", "--out-dir", str(out)],
                            {"PYTHONHASHSEED": hash_seed})
        assert result.returncode == 0, result.stderr
        outputs.append({p.name: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outputs[0] == outputs[1]
    assert set(outputs[0]) == {"members.jsonl", "non_members.jsonl", "externals.jsonl",
                               "manifest.json", "split.json", split.TRAIN_FILE, split.HELDOUT_FILE}


def test_the_demo_sets_are_the_same_on_every_machine(tmp_path):
    """The demo's sampling pinned by content (its 500-patient corpus of 3 or 4 notes a
    patient split 40/60, and the population of 110 patients): a change here means the
    sample changed. (An earlier corpus's digests were the same under numpy 2.1 / pandas 2.2
    and numpy 2.4 / pandas 3.1; these were taken under numpy 2.4 / pandas 3.1.)"""
    import hashlib
    assert main(["--out-dir", str(tmp_path / "data"), "--population", "1000", "--population-patients", "110",
                 "--synthetic-dir", str(tmp_path / "synthetic")]) == 0
    digests = {name: hashlib.sha256((tmp_path / "data" / f"{name}.jsonl").read_bytes()).hexdigest()[:16]
               for name in ("members", "non_members", "externals", "population")}
    assert digests == {"members": "db0f62e7171885b0", "non_members": "d1bb870990ec8222",
                       "externals": "24deabb118e77b1b", "population": "76310401160091a7"}


def test_seed_changes_the_sample(corpus, tmp_path):
    for seed in ("0", "1"):
        assert main(data_args(corpus) + SMALL + ["--seed", seed, "--out-dir", str(tmp_path / seed)]) == 0
    assert (tmp_path / "0" / "members.jsonl").read_bytes() != (tmp_path / "1" / "members.jsonl").read_bytes()


def test_split_is_by_patient_and_keeps_every_note(corpus, tmp_path):
    summary = split.split_notes([corpus["noteevents"]], tmp_path, 0.25, seed=9)
    train, heldout = patients_in(tmp_path / split.TRAIN_FILE), patients_in(tmp_path / split.HELDOUT_FILE)
    everyone = patients_in(corpus["noteevents"])
    assert not train & heldout and train | heldout == everyone
    assert summary["n_patients"]["train"] == len(train) == round(0.25 * 120)
    with gzip.open(corpus["noteevents"], "rt") as handle:
        import csv
        n_rows = sum(1 for _ in csv.DictReader(handle))
    assert summary["n_rows"]["train"] + summary["n_rows"]["heldout"] == n_rows
    assert csv_notes.detect_format(tmp_path / split.TRAIN_FILE) == "noteevents"


def test_members_from_restricts_members_to_seen_text(corpus, tmp_path):
    from mlm_mia.data.sources import note_source
    sentences = [s for _, s in note_source(str(corpus["train"]), "--train-notes", None).sentences(20)]
    seen = sorted(set(sentences))[::3]
    seen_file = tmp_path / "dedup.txt"
    seen_file.write_text("\n".join(seen) + "\n")
    out = tmp_path / "out"
    assert main(data_args(corpus) + ["--n-patients", "20", "--n-sentences", "60",
                                     "--members-from", str(seen_file), "--out-dir", str(out)]) == 0
    members = read_sets(out)["members"]
    assert len(members) == 60 and {r["text"] for r in members} <= set(seen)


def test_too_few_patients_is_an_error_with_the_count(corpus, tmp_path):
    with pytest.raises(InputError, match=r"members: only 60 eligible patients .* 90 asked"):
        main(data_args(corpus) + ["--out-dir", str(tmp_path)])
    assert list(tmp_path.iterdir()) == []


def test_allow_fewer_takes_all_and_records_it(corpus, tmp_path):
    assert main(data_args(corpus) + ["--n-patients", "50", "--n-sentences", "100000",
                                     "--allow-fewer", "--out-dir", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    externals = manifest["sets"]["externals"]
    assert externals["n_patients"] == 40
    assert externals["shortfall"] == {"patients": 10, "sentences": 100000 - externals["n_sentences"]}


def test_too_few_sentences_is_an_error(corpus, tmp_path):
    with pytest.raises(InputError, match=r"members: the 5 sampled patients have only \d+ usable"):
        main(data_args(corpus) + ["--n-patients", "5", "--n-sentences", "5000", "--out-dir", str(tmp_path)])


@pytest.mark.parametrize("case", ["missing", "wrong_columns", "malformed_xml", "not_utf8", "empty"])
def test_bad_input_exits_non_zero_naming_the_file_and_writes_nothing(corpus, tmp_path, case):
    bad = tmp_path / "bad"
    bad.mkdir()
    args = data_args(corpus) + SMALL
    if case == "missing":
        args[1] = str(bad / "nope.csv.gz")
        name = "nope.csv.gz"
    elif case == "wrong_columns":
        (bad / "notes.csv").write_text("ID,NOTE\n1,x\n")
        args[1], name = str(bad / "notes.csv"), "notes.csv"
    elif case == "malformed_xml":
        (bad / "999-01.xml").write_text("<root><TEXT>no end")
        args[5], name = str(bad), "999-01.xml"
    elif case == "not_utf8":
        (bad / "notes.csv").write_bytes(b"SUBJECT_ID,TEXT\n1,\"\xff\xfe broken\"\n")
        args[3], name = str(bad / "notes.csv"), "notes.csv"
    else:
        (bad / "notes.csv").write_text("")
        args[3], name = str(bad / "notes.csv"), "notes.csv"
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier output")
    result = run_script(args + ["--out-dir", str(out)])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("prepare_data_MIA.py: error:") and name in lines[-1]
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_no_arguments_uses_the_synthetic_corpus(tmp_path):
    result = run_script(["--out-dir", str(tmp_path / "out"), "--synthetic-dir", str(tmp_path / "syn")])
    assert result.returncode == 0, result.stderr
    assert "using the built-in synthetic corpus" in result.stderr
    sets = read_sets(tmp_path / "out")
    assert {n: len(r) for n, r in sets.items()} == {"members": 1000, "non_members": 1000, "externals": 1000}
    assert all(len({r["patient_id"] for r in recs}) == 90 for recs in sets.values())
    # a corpus made by an older version (no record of how) is made again, the same way
    (tmp_path / "syn" / "corpus.json").unlink()
    again = run_script(["--out-dir", str(tmp_path / "again"), "--synthetic-dir", str(tmp_path / "syn")])
    assert again.returncode == 0, again.stderr
    assert "Generating the synthetic corpus" in again.stderr
    assert (tmp_path / "syn" / "corpus.json").is_file()
    assert read_sets(tmp_path / "again") == sets


def test_the_demo_draws_its_sets_again_when_their_notes_or_canaries_change(small_sets, tmp_path):
    from mlm_mia.training.demo import _drawn_from_the_corpus
    manifest = json.loads((small_sets / "manifest.json").read_text())
    assert _drawn_from_the_corpus(manifest, 0)
    assert not _drawn_from_the_corpus(manifest, 8) and not _drawn_from_the_corpus({}, 0)
    edited = tmp_path / "train.csv.gz"
    with gzip.open(manifest["sources"]["train_notes"], "rt", encoding="utf-8", newline="") as handle:
        text = handle.read()
    with gzip.open(edited, "wt", encoding="utf-8", newline="") as handle:
        handle.write(text.replace("\n", "\n\n", 1))  # one more blank line: the same notes, other bytes
    assert not _drawn_from_the_corpus(manifest | {"sources": manifest["sources"] | {"train_notes": str(edited)}}, 0)
    gone = manifest["sources"] | {"heldout_notes": str(tmp_path / "nowhere.csv.gz")}
    assert not _drawn_from_the_corpus(manifest | {"sources": gone}, 0)


def test_population_comes_from_held_out_patients_outside_every_set(corpus, tmp_path):
    from mlm_mia.data.sources import note_source
    assert main(data_args(corpus) + SMALL + ["--population", "120", "--out-dir", str(tmp_path)]) == 0
    sets = read_sets(tmp_path)
    population = [json.loads(line) for line in (tmp_path / "population.jsonl").open()]
    assert len(population) == 120 and all(r["set"] == "population" for r in population)
    patients = {r["patient_id"] for r in population}
    assert patients <= patients_in(corpus["heldout"]) - patients_in(corpus["train"])
    assert not patients & {r["patient_id"] for records in sets.values() for r in records}
    training = {s for _, s in note_source(str(corpus["train"]), "--train-notes", None).sentences(20)}
    texts = {r["text"] for r in population}
    assert not texts & training and not texts & {r["text"] for rs in sets.values() for r in rs}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["sets"]["population"]["n_sentences"] == 120
    # asking for more than the remaining held-out patients have is a clear error
    with pytest.raises(InputError, match="population: .* lower --population"):
        main(data_args(corpus) + SMALL + ["--population", "100000", "--out-dir", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_patients_whose_sentences_are_all_held_out_text_are_passed_over(corpus, tmp_path):
    """12 training patients also appear in the held-out file with the same notes: none of
    their sentences may be a member (each is held-out text too), so members are drawn from
    the other training patients, and the set still has exactly --n-patients patients."""
    import csv
    with gzip.open(corpus["train"], "rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    body = rows[1:]
    twins = sorted({r[1] for r in body})[:12]
    heldout = tmp_path / "heldout.csv"
    with gzip.open(corpus["heldout"], "rt", encoding="utf-8", newline="") as source, \
            open(heldout, "w", encoding="utf-8", newline="") as out:
        out.write(source.read())
        csv.writer(out, quoting=csv.QUOTE_NONNUMERIC).writerows(r for r in body if r[1] in twins)
    out = tmp_path / "out"
    assert main(["--train-notes", str(corpus["train"]), "--heldout-notes", str(heldout),
                 "--n2c2", str(corpus["n2c2"]), "--n-patients", "40", "--n-sentences", "200",
                 "--out-dir", str(out)]) == 0
    members = read_sets(out)["members"]
    patients = {r["patient_id"] for r in members}
    assert len(patients) == 40 and not patients & set(twins) and len(members) == 200
    summary = json.loads((out / "manifest.json").read_text())["sets"]["members"]
    assert summary["n_passed_over"] > 0 and summary["shortfall"] is None
    # asking for more patients than have a usable sentence is the usual clear error
    with pytest.raises(InputError, match=r"members: only 48 of the 60 eligible patients .* \(12 have none"):
        main(["--train-notes", str(corpus["train"]), "--heldout-notes", str(heldout), "--n-patients", "50",
              "--n-sentences", "200", "--out-dir", str(tmp_path / "more")])


def test_outputs_are_the_same_byte_for_byte_with_one_or_two_worker_processes(corpus, tmp_path):
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / "out"
        if out.exists():
            shutil.rmtree(out)
        assert main(["--split", str(corpus["noteevents"]), "--n2c2", str(corpus["n2c2"]), *SMALL,
                     "--population", "50", "--workers", workers, "--out-dir", str(out)]) == 0
        outputs.append({p.name: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outputs[0] == outputs[1] and len(outputs[0]) == 8
