"""Bad input and faults: every case ends with exit status 2, one line on stderr naming the
file or flag at fault, no traceback, and the output folder as it was."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlm_mia.cli import common as cli
from mlm_mia.cli import metrics as metrics_cli
from mlm_mia.cli import prepare
from mlm_mia.cli import score

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--n-patients", "8", "--n-sentences", "24"]
MAINS = {"prepare": prepare.main, "score": score.main, "metrics": metrics_cli.main}


@pytest.fixture(scope="module")
def tiny(corpus, small_sets, random_roberta, tmp_path_factory) -> dict:
    """Small sets, an untrained tiny model as target and reference, and a scored run."""
    root = tmp_path_factory.mktemp("tiny")
    data = small_sets
    results = root / "results"
    assert score.main(["--target", str(random_roberta), "--reference", str(random_roberta),
                       "--data-dir", str(data), "--out-dir", str(results), "--no-cache",
                       "--bootstrap", "20"]) == 0
    return {"root": root, "data": data, "results": results, "model": random_roberta, "corpus": corpus}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def copy_model(source: Path, to: Path, files=None) -> Path:
    to.mkdir(parents=True)
    for file in source.iterdir():
        if files is None or file.name in files:
            shutil.copy(file, to / file.name)
    return to


def copy_sets(data: Path, to: Path) -> Path:
    shutil.copytree(data, to)
    return to


def edit_set_line(data: Path, name: str, line: bytes) -> None:
    path = data / f"{name}.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3] + [line + b"\n"] + lines[4:]))


def notes_file(corpus, to: Path, change) -> Path:
    """A copy of the training notes (plain CSV) with ``change`` applied to its lines."""
    with gzip.open(corpus["train"], "rt", encoding="utf-8", newline="") as handle:
        text = handle.read()
    to.write_text(change(text), encoding="utf-8", newline="")
    return to


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def truncated_gzip(source: Path, to: Path) -> Path:
    """A copy of a .gz cut short, as an interrupted download leaves it."""
    content = source.read_bytes() if source.name.endswith(".gz") else gzip.compress(source.read_bytes())
    to.write_bytes(content[: len(content) // 2])
    return to


def first_record_replaced(text: str, old: str, new: str) -> str:
    header, rest = text.split("\n", 1)
    return header + "\n" + rest.replace(old, new, 1)


# (script, arguments, what the error line must contain[, inputs that must be left byte for
# byte: the lost-work cases]); arguments are built from the fixture's paths by the
# functions below
def prepare_cases(t: dict, bad: Path) -> dict:
    corpus = t["corpus"]
    data = ["--train-notes", str(corpus["train"]), "--heldout-notes", str(corpus["heldout"]),
            "--n2c2", str(corpus["n2c2"]), *SMALL]

    def with_train(path: Path) -> list[str]:
        return ["--train-notes", str(path)] + data[2:]

    def with_n2c2(path: Path) -> list[str]:
        return data[:4] + ["--n2c2", str(path)] + SMALL

    def xml(case: str, name: str, content: bytes) -> Path:
        folder = bad / f"n2c2_{case}"
        folder.mkdir()
        (folder / name).write_bytes(content)
        return folder

    (bad / "a_file").write_text("x")
    (bad / "dir-01.xml").mkdir()
    canaried = bad / "canaried"  # sets with planted canaries: the only record of the coin flips
    assert prepare.main(data + ["--canaries", "8", "--out-dir", str(canaried)]) == 0
    cut_manifest = bad / "cut_manifest"  # canaries whose manifest was cut short: nothing to check them by
    shutil.copytree(canaried, cut_manifest)
    (cut_manifest / "manifest.json").write_text('{"sets": ', encoding="utf-8")
    split_in = bad / "split_in"  # notes to split, in the folder the halves are written to
    split_in.mkdir()
    shutil.copy(corpus["noteevents"], split_in / "train_notes.csv.gz")
    beside = bad / "beside"  # the out-dir's own canary notes among the training notes (a glob)
    beside.mkdir()
    shutil.copy(corpus["train"], beside / "canary_notes.csv.gz")
    tar = bad / "broken.tar.gz"
    tar.write_bytes(b"\x1f\x8b not really gzip")
    return {
        "missing_notes": (with_train(bad / "nope.csv.gz"), "nope.csv.gz: no such file"),
        "wrong_columns": (with_train(notes_file(corpus, bad / "cols.csv", lambda t: "ID,NOTE\n1,x\n")),
                          "cols.csv: unexpected columns"),
        "not_utf8": (with_train(bad / "latin1.csv"), "latin1.csv: bytes that are not UTF-8"),
        "empty_notes": (with_train(notes_file(corpus, bad / "empty.csv", lambda t: "")), "empty.csv: the file is empty"),
        "unclosed_quote": (with_train(notes_file(corpus, bad / "unclosed.csv", lambda t: t + '1,2,"never closed\n')),
                           "unclosed.csv: malformed CSV"),
        "extra_field": (with_train(notes_file(corpus, bad / "extra.csv", lambda t: first_record_replaced(
            t, ',"Nursing', ',unquoted, comma,"Nursing'))), "extra.csv: record 2 (ending on line 45) has 13 fields, the header 11"),
        "short_row": (with_train(notes_file(corpus, bad / "short.csv", lambda t: t + '1,2,3,"2100-01-01"\n')),
                      "short.csv: record"),
        "iserror_word": (with_train(notes_file(corpus, bad / "iserr.csv", lambda t: t + (
            '9,9,9,"2100-01-01","","","Nursing","Report","","yes","a note"\n'))), "iserr.csv: record"),
        "empty_subject": (with_train(notes_file(corpus, bad / "nosubj.csv", lambda t: t + (
            '9," ",9,"2100-01-01","","","Nursing","Report","","","a note"\n'))), "nosubj.csv: record"),
        "malformed_xml": (with_n2c2(xml("malformed", "100-01.xml", b"<root><TEXT>no end")), "100-01.xml: malformed XML"),
        "xml_root": (with_n2c2(xml("root", "100-01.xml", b"<other><TEXT>x</TEXT></other>")), "100-01.xml: root element"),
        "xml_no_text": (with_n2c2(xml("notext", "100-01.xml", b"<root><TAGS/></root>")), "100-01.xml: no <TEXT>"),
        "xml_name": (with_n2c2(xml("name", "record.xml", b"<root><TEXT>x</TEXT></root>")), "record.xml: file name is not PPP-RR.xml"),
        "xml_unreadable": (with_n2c2(bad), "dir-01.xml"),
        "tar_broken": (with_n2c2(tar), "broken.tar.gz: not a readable folder or .tar.gz"),
        "seed_negative": (data + ["--seed", "-1"], "--seed: invalid non-negative integer value: '-1'"),
        "no_patients": (data[:6] + ["--n-patients", "0"], "--n-patients: invalid positive integer"),
        "fewer_sentences": (data[:6] + ["--n-patients", "8", "--n-sentences", "5"], "--n-sentences 5 is fewer"),
        "too_many_patients": (data[:6] + ["--n-patients", "500", "--n-sentences", "600"], "members: only 60 eligible"),
        "split_and_train": (["--split", str(corpus["noteevents"]), "--train-notes", str(corpus["train"])],
                            "--split makes the training and held-out halves itself"),
        "train_only": (["--train-notes", str(corpus["train"])], "give both --train-notes and --heldout-notes"),
        "train_fraction": (["--split", str(corpus["noteevents"]), "--train-fraction", "1.0"],
                           "--train-fraction: must be a fraction strictly between 0 and 1, not '1.0'"),
        "members_from_missing": (data + ["--members-from", str(bad / "dedup.txt")], "dedup.txt: no such file"),
        "out_dir_file": (data + ["--out-dir", str(bad / "a_file")], "a_file: exists and is not a folder"),
        "population_too_big": (data + ["--population", "100000"], "population:"),
        "canaries_dropped": (data + ["--out-dir", str(canaried)], f"{canaried / 'canaries.jsonl'}: this run "
                             "would drop or replace the planted canaries", files_in(canaried)),
        "canaries_manifest_cut_short": (data + ["--canaries", "8", "--out-dir", str(cut_manifest)],
                                        f"{cut_manifest / 'manifest.json'}: not a manifest prepare_data_MIA.py "
                                        "wrote", files_in(cut_manifest)),
        "canaries_other_count": (data + ["--canaries", "4", "--out-dir", str(canaried)],
                                 "give --canaries 8 --canary-repeats 1,2,4,8 --canary-digits 8 to keep them",
                                 files_in(canaried)),
        "canary_digits_overflow": (data + ["--canaries", "4", "--canary-digits", "19"],
                                   "--canary-digits: must be a whole number from 1 to 18, not '19'"),
        "canaries_negative": (data + ["--canaries", "-1"], "--canaries: invalid non-negative integer value: '-1'"),
        "canary_repeats_zero": (data + ["--canaries", "4", "--canary-repeats", "0,1"],
                                "--canary-repeats '0,1': give distinct positive whole numbers"),
        "split_over_its_input": (["--split", str(split_in / "train_notes.csv.gz"), "--split-dir", str(split_in),
                                  "--n2c2", str(corpus["n2c2"]), *SMALL],
                                 f"--split-dir {split_in / 'train_notes.csv.gz'}: the same file as --split",
                                 files_in(split_in)),
        "out_dir_over_its_input": (["--train-notes", str(beside / "*.csv.gz")] + data[2:] + ["--out-dir", str(beside)],
                                   f"--out-dir {beside / 'canary_notes.csv.gz'}: the same file as --train-notes",
                                   files_in(beside)),
        "truncated_gzip": (with_train(truncated_gzip(corpus["train"], bad / "cut.csv.gz")),
                           "cut.csv.gz: the gzip file is truncated or corrupt"),
        "train_fraction_nan": (["--split", str(corpus["noteevents"]), "--train-fraction", "nan"],
                               "--train-fraction: must be a fraction strictly between 0 and 1, not 'nan'"),
        "heldout_is_train": (data[:2] + ["--heldout-notes", str(corpus["train"])] + data[4:],
                             f"--heldout-notes: {corpus['train']} is also in --train-notes"),
    }


def score_cases(t: dict, bad: Path) -> dict:
    from transformers import RobertaConfig, RobertaModel
    model, data = t["model"], t["data"]
    base = ["--target", str(model), "--reference", str(model), "--data-dir", str(data), "--no-cache"]

    def with_target(path) -> list[str]:
        return ["--target", str(path)] + base[2:]

    def with_data(folder: Path) -> list[str]:
        return base[:4] + ["--data-dir", str(folder), "--no-cache"]

    def bad_set(name: str, line: bytes) -> Path:
        folder = copy_sets(data, bad / f"sets_{name}")
        edit_set_line(folder, "non_members", line)
        return folder

    automodel = copy_model(model, bad / "automodel", files={"tokenizer.json", "vocab.json", "merges.txt",
                                                             "tokenizer_config.json", "special_tokens_map.json"})
    RobertaModel(RobertaConfig.from_pretrained(model)).save_pretrained(automodel)
    more_layers = copy_model(model, bad / "more_layers")
    config = json.loads((more_layers / "config.json").read_text())
    (more_layers / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    truncated = copy_model(model, bad / "truncated")
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    no_tokenizer = copy_model(model, bad / "no_tokenizer", files={"config.json", "model.safetensors"})
    duplicated = copy_sets(data, bad / "sets_dup")
    first = (duplicated / "members.jsonl").read_text().splitlines()[0]
    with open(duplicated / "externals.jsonl", "a") as handle:
        handle.write(first.replace('"set": "members"', '"set": "externals"') + "\n")
    cache = bad / "cache"
    cache.mkdir()
    (cache / "pll.sqlite").write_bytes(b"this is not a database, " * 100)
    config_file = bad / "settings.yaml"
    (bad / "unknown.yaml").write_text("reductoin: sum\n")
    (bad / "broken.yaml").write_text("epochs: [1\n")
    (bad / "epoch.yaml").write_text("epochs_: 3\n")
    (bad / "lr.yaml").write_text("learning_rate: fast\n")
    shadows = base + ["--shadow-models", "4", "--shadow-dir", str(bad / "shadows")]
    corpus = t["corpus"]
    def probe(diagnoses=corpus["diagnoses"], *names: str) -> list[str]:
        return base + ["--name-probe", "--diagnoses", str(diagnoses), "--diagnosis-titles",
                       str(corpus["diagnosis_titles"]), *names]
    (bad / "names_wrong.csv").write_text("SUBJECT_ID,FULL_NAME\n1,Ann Lee\n")
    (bad / "names_other.csv").write_text("SUBJECT_ID,NAME\n1,Ann Lee\n2,Bo Ma\n")
    other_architecture = copy_model(model, bad / "other_architecture")
    smaller = RobertaConfig.from_pretrained(model)
    smaller.num_hidden_layers = 1
    from transformers import RobertaForMaskedLM
    RobertaForMaskedLM(smaller).save_pretrained(other_architecture)
    foreign_canaries = copy_sets(data, bad / "sets_canaries")
    (foreign_canaries / "canaries.jsonl").write_text(json.dumps({
        "id": "canary-00000", "patient_id": "900000000", "text": "The record number is 12345678 here.",
        "secret": "12345678", "template": 0, "repeats": 1, "included": True}) + "\n")
    changed_notes = copy_sets(data, bad / "sets_changed_notes")  # notes edited after the sets were drawn
    manifest = json.loads((changed_notes / "manifest.json").read_text())
    manifest["sources"]["train_notes"] = str(notes_file(t["corpus"], bad / "train_edited.csv", lambda text: text))
    (changed_notes / "manifest.json").write_text(json.dumps(manifest))
    (bad / "median.yaml").write_text("reduction: median\n")
    (bad / "delta.yaml").write_text("audit_delta: -0.5\n")
    one_patient = copy_sets(data, bad / "sets_one_patient")
    members = [json.loads(line) for line in (one_patient / "members.jsonl").read_text().splitlines()]
    (one_patient / "members.jsonl").write_text("".join(
        json.dumps({**m, "patient_id": members[0]["patient_id"]}) + "\n" for m in members))
    (bad / "not_yaml.yaml").write_text("reduction: [sum\n")
    (bad / "a_file").write_text("x")
    return {
        "hub_name": (with_target("roberta-base"), "--target roberta-base: not a local directory"),
        "no_config": (with_target(bad), "no config.json"),
        "no_tokenizer": (with_target(no_tokenizer), "no tokenizer in the model directory"),
        "no_mlm_head": (with_target(automodel), "not a trained masked LM (no masked-LM head"),
        "more_layers": (with_target(more_layers), "weights missing from the checkpoint"),
        "truncated_weights": (with_target(truncated), "truncated: cannot load a masked LM"),
        "bad_reference": (base[:2] + ["--reference", str(bad)] + base[4:], "--reference"),
        "no_sets": (with_data(bad), "needs members.jsonl"),
        "set_line_number": (with_data(bad_set("number", b"5")), "non_members.jsonl:4: expected a JSON object"),
        "set_line_null": (with_data(bad_set("null", b"null")), "non_members.jsonl:4: expected a JSON object"),
        "set_not_utf8": (with_data(bad_set("latin", b'{"id": "x", "patient_id": "1", "text": "caf\xe9"}')),
                         "non_members.jsonl:4: bytes that are not UTF-8"),
        "set_text_nan": (with_data(bad_set("nan", b'{"id": "x", "patient_id": "1", "text": NaN}')),
                         "non_members.jsonl:4: text must be a non-empty string, not NaN"),
        "set_patient_null": (with_data(bad_set("pnull", b'{"id": "x", "patient_id": null, "text": "a sentence here"}')),
                             "non_members.jsonl:4: patient_id must be a whole number or a non-empty string, not null"),
        "set_text_list": (with_data(bad_set("list", b'{"id": "x", "patient_id": "1", "text": ["a", "b"]}')),
                          "non_members.jsonl:4: text must be a non-empty string"),
        "set_text_blank": (with_data(bad_set("blank", b'{"id": "x", "patient_id": "1", "text": "  "}')),
                           "non_members.jsonl:4: text must be a non-empty string"),
        "set_missing_field": (with_data(bad_set("field", b'{"id": "x", "text": "a sentence here"}')),
                              "non_members.jsonl:4: missing field(s) ['patient_id']"),
        "set_wrong_set": (with_data(bad_set("wrongset", b'{"id": "x", "set": "members", "patient_id": "1", "text": "a sentence"}')),
                          'non_members.jsonl:4: set "members"'),
        "duplicate_ids": (with_data(duplicated), "appears twice"),
        "out_dir_file": (base + ["--out-dir", str(bad / "a_file")], "a_file: exists and is not a folder"),
        "corrupt_cache": (base[:-1] + ["--cache-dir", str(cache)], "cannot use the cache pll.sqlite"),
        "config_unknown": (base + ["--config", str(bad / "unknown.yaml")], "unknown.yaml: unknown setting"),
        "config_bad_value": (base + ["--config", str(bad / "median.yaml")], "median.yaml: argument --reduction"),
        "config_not_yaml": (base + ["--config", str(bad / "not_yaml.yaml")], "not_yaml.yaml: not valid YAML"),
        "config_missing": (base + ["--config", str(config_file)], "settings.yaml: file not found"),
        "seed_negative": (base + ["--seed", "-1"], "--seed: invalid non-negative integer"),
        "one_shadow": (base + ["--shadow-models", "1"], "--shadow-models must be 0 (none) or at least 2"),
        "compile_minicons": (base + ["--compile", "--backend", "minicons"], "--compile applies to --backend engine"),
        "rmia_a": (base + ["--rmia-offline-a", "0"], "--rmia-offline-a: must be a number in (0, 1], not '0'"),
        "dtype": (base + ["--dtype", "fp64"], "--dtype: invalid choice: 'fp64'"),
        "batch_tokens": (base + ["--batch-tokens", "0"], "--batch-tokens: invalid positive integer"),
        "no_target": (base[2:], "give --target MODEL_DIR"),
        "unknown_flag": (base + ["--targt", "x"], "unrecognized arguments: --targt"),
        "recipe_missing": (shadows + ["--shadow-recipe", str(bad / "nope.yaml")], "nope.yaml: file not found"),
        "recipe_malformed": (shadows + ["--shadow-recipe", str(bad / "broken.yaml")], "broken.yaml: not valid YAML"),
        "recipe_unknown_key": (shadows + ["--shadow-recipe", str(bad / "epoch.yaml")], "epoch.yaml: unknown key(s) ['epochs_']"),
        "recipe_bad_value": (shadows + ["--shadow-recipe", str(bad / "lr.yaml")], "lr.yaml: learning_rate must be a number"),
        "init_other_architecture": (shadows + ["--shadow-init", str(other_architecture)],
                                    "its architecture is not the target's (num_hidden_layers 1 vs 2)"),
        "shadow_index_too_big": (shadows + ["--shadow-index", "5"], "--shadow-index 5: there are only --shadow-models 4"),
        "notes_changed": (with_data(changed_notes) + ["--shadow-models", "4", "--shadow-dir", str(bad / "shadows")],
                          "train_edited.csv: not the notes the sets were drawn from"),
        "shadow_index_without_k": (base + ["--shadow-index", "1"], "--shadow-index picks among --shadow-models K"),
        "canaries_without_demo": (base + ["--canaries", "8"], "--canaries plants canaries in the demo"),
        "canaries_other_run": (with_data(foreign_canaries), "canaries.jsonl: does not match the run"),
        "audit_delta_negative": (base + ["--audit-delta=-0.5"], "--audit-delta: must be a number in [0, 1), not '-0.5'"),
        "audit_delta_one": (base + ["--audit-delta", "1"], "--audit-delta: must be a number in [0, 1), not '1'"),
        "config_audit_delta": (base + ["--config", str(bad / "delta.yaml")],
                               "delta.yaml: argument --audit-delta: must be a number in [0, 1)"),
        "min_k_zero": (base + ["--min-k-fraction", "0"], "--min-k-fraction: must be a fraction in (0, 1], not '0'"),
        "min_k_nan": (base + ["--min-k-fraction", "nan"], "--min-k-fraction: must be a fraction in (0, 1], not 'nan'"),
        "no_alternatives": (base + ["--exposure-alternatives", "0"], "--exposure-alternatives: invalid positive integer"),
        "canaries_negative": (base + ["--canaries", "-1"], "--canaries: invalid non-negative integer"),
        "show_exposed_no_plot": (base + ["--show-exposed", "3", "--no-plot"],
                                 "--show-exposed lists sentences in report.html, which --no-plot does not write"),
        "out_dir_is_data_dir": (base + ["--out-dir", str(data)], f"--out-dir {data}: the same folder as --data-dir",
                                files_in(data)),
        "out_dir_is_target": (base + ["--out-dir", str(model)], f"--out-dir {model}: the same folder as --target",
                              files_in(model)),
        "name_probe_no_names": (probe(), "--name-probe needs --patient-names"),
        "names_without_probe": (base + ["--patient-names", str(corpus["names"])], "--patient-names is an input of --name-probe"),
        "names_wrong_columns": (probe(corpus["diagnoses"], "--patient-names", str(bad / "names_wrong.csv")),
                                "names_wrong.csv: columns ['SUBJECT_ID', 'FULL_NAME']; expected a table of names"),
        "names_of_other_patients": (probe(corpus["diagnoses"], "--patient-names", str(bad / "names_other.csv")),
                                    "names_other.csv: 0 of the 8 members patients have names"),
        "diagnoses_truncated": (probe(truncated_gzip(corpus["diagnoses"], bad / "DIAGNOSES_ICD.csv.gz"),
                                      "--patient-names", str(corpus["names"])),
                                "DIAGNOSES_ICD.csv.gz: the gzip file is truncated or corrupt"),
        "one_patient_set": (with_data(one_patient), "members.jsonl: sentences of 1 patient; every set needs at "
                            "least 2 patients"),
    }


def metrics_cases(t: dict, bad: Path) -> dict:
    scores = (t["results"] / "scores.csv").read_text().splitlines()
    header = scores[0].split(",")

    def variant(name: str, change) -> str:
        path = bad / f"{name}.csv"
        path.write_text("\n".join(change([line.split(",") for line in scores])) + "\n")
        return str(path)

    def cell(rows, row: int, column: str, value: str):
        rows[row][header.index(column)] = value
        return [",".join(r) for r in rows]

    (bad / "empty.csv").write_text("")
    (bad / "a_file").write_text("x")
    run = bad / "run"  # a run's folder: scores.csv and the settings.json read beside it
    shutil.copytree(t["results"], run)
    (bad / "link.csv").symlink_to(run / "scores.csv")
    shadow_columns = ["shadow_0_score", "shadow_0_in", "shadow_1_score", "target_lira_statistic", "memorization"]

    def with_canaries(name: str, included: str | None) -> str:
        """The scores with 4 canary rows; ``included`` their canary_included (None: no column)."""
        import pandas as pd
        table = pd.read_csv(t["results"] / "scores.csv", dtype=str, keep_default_na=False)
        planted = table[table["set"] == "members"].head(4).assign(
            set="canaries", id=lambda c: "canary-" + c["id"], canary_included=included, canary_repeats="1")
        table = pd.concat([table, planted], ignore_index=True).fillna("")
        path = bad / f"{name}.csv"
        table.drop(columns=[] if included else ["canary_included"]).to_csv(path, index=False)
        return str(path)

    def with_shadows(rows):  # two shadow models' columns, shadow_1_in lost
        return [",".join(r + (shadow_columns if i == 0 else ["-1.5", "1", "-1.2", "-1.4", "0.1"]))
                for i, r in enumerate(rows)]
    return {
        "missing": ([str(bad / "nope.csv")], "nope.csv: file not found"),
        "folder": ([str(bad)], "a folder; give the scores.csv"),
        "empty": ([str(bad / "empty.csv")], "empty.csv: not a readable CSV"),
        "columns": ([variant("cols", lambda rows: [",".join(r[3:]) for r in rows])], "missing column(s)"),
        "no_scores": ([variant("noscores", lambda rows: [",".join(r[:3]) for r in rows])], "no score_<attack> columns"),
        "not_a_number": ([variant("word", lambda rows: cell(rows, 5, "score_loss", "high"))],
                         "row 6 of score_loss is 'high', not a number"),
        "blank_patient": ([variant("blank", lambda rows: cell(rows, 5, "patient_id", ""))], "row 6 has an empty patient_id"),
        "duplicated": ([variant("dup", lambda rows: [",".join(r) for r in rows] + [",".join(rows[1])])],
                       "appears 2 times"),
        "nan_score": ([variant("nan", lambda rows: cell(rows, 5, "score_loss", ""))],
                      "score_loss: 1 sentences have no finite score"),
        "one_class": ([variant("oneclass", lambda rows: [",".join(r) for r in rows
                                                         if r[0] in ("set", "members")])],
                      "needs members and non_members or externals"),
        "unknown_set": ([variant("set", lambda rows: cell(rows, 5, "set", "others"))], "unknown set name(s) ['others']"),
        "bootstrap": ([str(t["results"] / "scores.csv"), "--bootstrap", "-1"], "--bootstrap: invalid non-negative"),
        "json_under_file": ([str(t["results"] / "scores.csv"), "--json", str(bad / "a_file" / "m.json")], "a_file"),
        "audit_delta_negative": ([str(run / "scores.csv"), "--audit-delta=-0.5"],
                                 "--audit-delta: must be a number in [0, 1), not '-0.5'"),
        "json_over_scores": ([str(run / "scores.csv"), "--json", str(run / "scores.csv")],
                             f"--json {run / 'scores.csv'}: the same file as the scores file", files_in(run)),
        "html_over_settings": ([str(run / "scores.csv"), "--html", str(run / "settings.json")],
                               f"--html {run / 'settings.json'}: the same file as the run's settings", files_in(run)),
        "patients_over_a_link": ([str(run / "scores.csv"), "--patients", str(bad / "link.csv")],
                                 f"--patients {bad / 'link.csv'}: the same file as the scores file", files_in(run)),
        "json_and_html_one_file": ([str(run / "scores.csv"), "--json", str(bad / "out.json"), "--html", str(bad / "out.json")],
                                   f"--html {bad / 'out.json'}: the same file as --json"),
        "patients_of_two_runs": ([str(run / "scores.csv"), str(t["results"] / "scores.csv"), "--names", "a,b",
                                  "--patients", str(bad / "p.csv")], "--patients writes one run's per-patient tests"),
        "shadow_column_lost": ([variant("shadowcols", with_shadows)], "shadow model column(s) ['shadow_1_in'] missing"),
        "truncated_gzip": ([str(truncated_gzip(t["results"] / "scores.csv", bad / "scores.csv.gz"))],
                           "scores.csv.gz: the gzip file is truncated or corrupt"),
        "patients_without_population": ([variant("nopop", lambda rows: [",".join(r) for r in rows if r[0] != "population"]),
                                         "--json", str(run / "metrics.json"), "--patients", str(bad / "p.csv")],
                                        "--patients: ", [run / "metrics.json"]),
        "canary_column_lost": ([with_canaries("noincluded", None)], "canary rows but no ['canary_included'] column"),
        "canary_included_3": ([with_canaries("included3", "3")], "canary_included must be 0 or 1"),
    }


CASES = {"prepare": prepare_cases, "score": score_cases, "metrics": metrics_cases}


@pytest.fixture(scope="module")
def all_cases(tiny, tmp_path_factory) -> dict:
    cases = {}
    for script, make in CASES.items():
        bad = tmp_path_factory.mktemp(f"bad_{script}")
        (bad / "latin1.csv").write_bytes(b"SUBJECT_ID,TEXT\n1,\"caf\xe9 au lait\"\n")
        for name, (argv, expected, *kept) in make(tiny, bad).items():
            cases[f"{script}:{name}"] = (script, argv, expected, kept[0] if kept else [])
    return cases


def test_the_battery_has_enough_cases(all_cases):
    per_script = {s: sum(k.startswith(s + ":") for k in all_cases) for s in CASES}
    assert sum(per_script.values()) >= 110 and min(per_script.values()) >= 20, per_script


@pytest.mark.parametrize("script", list(CASES))
def test_each_bad_input_is_one_clear_line_exit_2_and_the_out_dir_unchanged(all_cases, script, tmp_path,
                                                                           capsys):
    failures = []
    for name, (case_script, argv, expected, kept) in all_cases.items():
        if case_script != script:
            continue
        out = tmp_path / name.replace(":", "_")
        out.mkdir()
        (out / "scores.csv").write_text("an earlier run's output\n")
        before = snapshot(out)
        inputs = {path: Path(path).read_bytes() for path in kept}
        if script != "metrics" and "--out-dir" not in argv:
            argv = argv + ["--out-dir", str(out)]
        capsys.readouterr()
        code = cli.run_main(MAINS[script], argv)
        err = capsys.readouterr().err.strip().splitlines()
        ok = (code == 2 and len(err) == 1 and err[0].split(": error: ", 1)[-1].find(expected) >= 0
              and "Traceback" not in err[0] and snapshot(out) == before
              and all(Path(path).read_bytes() == content for path, content in inputs.items()))
        if not ok:
            failures.append((name, code, err[-3:], expected))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.parametrize("case", ["prepare:extra_field", "score:set_text_nan", "metrics:duplicated"])
def test_scripts_exit_2_with_one_line_and_no_traceback(all_cases, case, tmp_path):
    script, argv, expected, _ = all_cases[case]
    name = {"prepare": "prepare_data_MIA.py", "score": "score_MIA.py", "metrics": "metrics.py"}[script]
    if script != "metrics":
        argv = argv + ["--out-dir", str(tmp_path / "out")]
    result = subprocess.run([sys.executable, str(ROOT / name), *argv], capture_output=True, text=True,
                            cwd=ROOT)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert lines[-1].startswith(f"{name}: error:") and expected in lines[-1]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_noteevents_iserror_written_as_a_float_counts_as_one(corpus, tmp_path):
    from mlm_mia.data import csv_notes
    path = notes_file(corpus, tmp_path / "notes.csv", lambda t: t + (
        '9,77,9,"2100-01-01","","","Nursing","Report","","1.0","a note in error"\n'
        '10,78,9,"2100-01-01","","","Nursing","Report","","0","a good note"\n'))
    patients = [n.patient_id for n in csv_notes.read_notes(path)]
    assert "77" not in patients and patients[-1] == "78"


def test_a_rerun_with_no_plot_leaves_no_older_plot(tiny, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(tiny["results"], out)
    assert (out / "roc.png").exists()
    assert score.main(["--target", str(tiny["model"]), "--reference", str(tiny["model"]), "--data-dir",
                       str(tiny["data"]), "--out-dir", str(out), "--no-cache", "--no-plot",
                       "--bootstrap", "0", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "patients.csv", "scores.csv", "settings.json"]


def test_a_second_run_into_a_busy_out_dir_stops_at_once(tiny, tmp_path):
    import fcntl
    out = tmp_path / "out"
    out.mkdir()
    handle = os.open(out, os.O_RDONLY)
    fcntl.flock(handle, fcntl.LOCK_EX)  # as a run in progress holds it
    try:
        code = cli.run_main(score.main, ["--target", str(tiny["model"]), "--reference", str(tiny["model"]),
                                         "--data-dir", str(tiny["data"]), "--out-dir", str(out)])
    finally:
        os.close(handle)
    assert code == 2 and list(out.iterdir()) == []


KILL_WHILE_WRITING = """
import os, signal, sys
sys.path.insert(0, {root!r})
from mlm_mia.cli import common as cli
from mlm_mia.report import figures
from mlm_mia.cli import score
def killed(*args, **kwargs):  # the process dies while its outputs are staged, not yet moved
    os.kill(os.getpid(), signal.SIGKILL)
figures.roc_figure = killed
sys.exit(cli.run_main(score.main, {argv!r}))
"""


def test_a_run_killed_while_writing_leaves_the_old_outputs_and_the_next_run_cleans_up(tiny, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(tiny["results"], out)
    before = snapshot(out)
    argv = ["--target", str(tiny["model"]), "--reference", str(tiny["model"]), "--data-dir", str(tiny["data"]),
            "--out-dir", str(out), "--no-cache", "--bootstrap", "7", "--overwrite"]
    result = subprocess.run([sys.executable, "-c", KILL_WHILE_WRITING.format(root=str(ROOT), argv=argv)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == -signal.SIGKILL
    staged = [p for p in out.iterdir() if p.name.startswith(".staging-")]
    assert staged and {p.name for p in staged[0].iterdir()} >= {"scores.csv", "metrics.json"}
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(".staging-")} == before
    assert score.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "patients.csv", "report.html", "roc.png",
                                                     "scores.csv", "settings.json"]
    assert json.loads((out / "settings.json").read_text())["bootstrap"] == 7


def test_a_failed_split_run_leaves_the_previous_split_and_sets_whole(corpus, tmp_path):
    out = tmp_path / "out"
    assert prepare.main(["--split", str(corpus["noteevents"]), "--n2c2", str(corpus["n2c2"]), *SMALL,
                         "--out-dir", str(out)]) == 0
    before = snapshot(out)
    with pytest.raises(Exception, match="members: only"):
        prepare.main(["--split", str(corpus["noteevents"]), "--n2c2", str(corpus["n2c2"]), "--seed", "4",
                      "--n-patients", "500", "--n-sentences", "600", "--out-dir", str(out)])
    assert snapshot(out) == before


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB file system (tmpfs), or a skip where this machine cannot mount one."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tiny, full_disk, capsys):
    out = full_disk / "out"
    code = cli.run_main(score.main, ["--target", str(tiny["model"]), "--reference", str(tiny["model"]),
                                     "--data-dir", str(tiny["data"]), "--out-dir", str(out), "--no-cache",
                                     "--bootstrap", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"{out}: No space left on device; free some space" in err[0]
    assert list(out.iterdir()) == []
    (full_disk / "filler").write_bytes(b"x" * 60_000)
    code = cli.run_main(metrics_cli.main, [str(tiny["results"] / "scores.csv"), "--bootstrap", "0",
                                           "--json", str(full_disk / "m.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and f"{full_disk / 'm.json'}: No space left on device" in err[-1]
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "out"]
