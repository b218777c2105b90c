"""Seeded patient-level train/held-out split of note CSV files.

Both halves are written in the input's own format, so the training half can be used to
pre-train the target and the held-out half supplies non-members.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from . import csv_notes
from ..common.errors import InputError
from ..common.outputs import gzip_text_writer, json_text
from ..common.progress import FilesProgress

TRAIN_FILE = "train_notes.csv.gz"
HELDOUT_FILE = "heldout_notes.csv.gz"
SUMMARY_FILE = "split.json"
FILES = (TRAIN_FILE, HELDOUT_FILE, SUMMARY_FILE)
SPLIT_STREAM = 101  # the split's own random stream, apart from the sampling streams


def split_patients(patients: list[str], train_fraction: float, seed: int) -> set[str]:
    """The training patients: a seeded ``train_fraction`` of the sorted patient ids."""
    ordered = sorted(patients)
    n_train = round(train_fraction * len(ordered))
    if not 0 < n_train < len(ordered):
        raise InputError(f"--train-fraction {train_fraction} leaves one half of the "
                         f"{len(ordered)} patients empty; give a fraction strictly between them")
    order = np.random.default_rng([seed, SPLIT_STREAM]).permutation(len(ordered))
    return {ordered[i] for i in order[:n_train]}


def split_notes(files: list[Path], out_dir: Path, train_fraction: float, seed: int) -> dict:
    """Write ``train_notes.csv.gz``, ``heldout_notes.csv.gz`` and ``split.json`` into
    ``out_dir`` (a scratch folder of the caller's, moved into place when all is done).

    Two streaming passes over ``files``: one for the patient ids, one to copy each row
    to its half. Returns a summary for the manifest.
    """
    formats = {csv_notes.detect_format(f) for f in files}
    if len(formats) > 1:
        raise InputError(f"--split: the files {[str(f) for f in files]} mix the NOTEEVENTS "
                         "and SUBJECT_ID,TEXT formats; split each format separately")
    columns = csv_notes.FORMATS[formats.pop()]
    subject = columns.index("SUBJECT_ID")
    with FilesProgress("split: patient ids", files) as bar:
        patients = {row[subject].strip() for path, read in bar.files()
                    for _, row in csv_notes.iter_records(path, read=read)}
    train = split_patients(sorted(patients), train_fraction, seed)
    rows = {"train": 0, "heldout": 0}
    out_dir.mkdir(parents=True, exist_ok=True)
    with gzip_text_writer(out_dir / TRAIN_FILE) as train_out, \
            gzip_text_writer(out_dir / HELDOUT_FILE) as heldout_out:
        writers = {half: csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
                   for half, handle in (("train", train_out), ("heldout", heldout_out))}
        for writer in writers.values():
            writer.writerow(columns)
        with FilesProgress("split: the two halves", files) as bar:
            for path, read in bar.files():
                for _, row in csv_notes.iter_records(path, read=read):
                    half = "train" if row[subject].strip() in train else "heldout"
                    writers[half].writerow(row)
                    rows[half] += 1
    summary = {
        "train_fraction": train_fraction, "seed": seed,
        "n_patients": {"train": len(train), "heldout": len(patients) - len(train)},
        "n_rows": rows, "files": {"train": TRAIN_FILE, "heldout": HELDOUT_FILE},
    }
    (out_dir / SUMMARY_FILE).write_text(json_text(summary), encoding="utf-8")
    return summary
