"""Canary patients: seeded fictional patients, each with 2 to 8 notes that all carry the
patient's secret record number, put into the training data or left out *as a whole* by a
seeded fair coin. Audited with one statistic per patient, the one-run bound (Steinke,
Nasr & Jagielski 2023) then bounds patient-level privacy: the privacy loss of all of one
patient's notes, the unit a data-release board asks about.

``prepare_data_MIA.py --canary-patients M`` writes ``canary_patients.jsonl`` (id, patient
id, secret, included, notes: their ids and texts) and ``canary_patient_notes.csv.gz``: the
included patients' notes, one row each, in the format of the training input, to be added
to the training data before pre-training, as the sentence canaries' notes are.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..common.errors import InputError
from ..settings.flags import check_canary_space
from .canaries import (PATIENT_TEMPLATES, SECRET_DIGITS, format_secret, json_lines, secret_space,
    taken_numbers, write_note_rows, wrong_fields)
from .sentences import normalize

FILE = "canary_patients.jsonl"
NOTES_FILE = "canary_patient_notes.csv.gz"
KEY = "canary_patients"  # manifest.json's record of them
FLAG = "--canary-patients"
WHAT = "canary patients"
NOTES_PER_PATIENT = (2, 8)  # the fewest and most notes of a patient, drawn uniformly
# patient ids (and NOTEEVENTS ROW_IDs of their notes) from here: above any MIMIC-III
# SUBJECT_ID, below the sentence canaries' (canaries.PATIENT_BASE, 900,000,000) for the
# at most 10,000,000 patients of 8 notes each that --canary-patients allows
PATIENT_BASE = 800_000_000


def make(n: int, seed: int, avoid=lambda text: False, digits: int = SECRET_DIGITS,
         taken_secrets: Iterable[str] = ()) -> list[dict]:
    """``n`` canary patients: a distinct secret each (drawn uniformly from the ``10**digits``
    numbers, none of ``taken_secrets``), 2 to 8 notes of distinct templates, all carrying
    it, and an independent fair coin for the whole patient. ``avoid(text)`` rejects a note
    found in the corpus: the patient's secret is then drawn again."""
    taken = taken_numbers(taken_secrets, digits)
    check_canary_space(n, digits, len(taken), FLAG, "canary patients")
    rng = np.random.default_rng([seed, 41])
    low, high = NOTES_PER_PATIENT
    counts = rng.integers(low, high + 1, n)
    included = rng.random(n) < 0.5
    patients = []
    for i in range(n):
        templates = rng.permutation(len(PATIENT_TEMPLATES))[:counts[i]]
        while True:
            secret = format_secret(int(rng.integers(secret_space(digits))), digits)
            texts = [normalize(PATIENT_TEMPLATES[t].format(secret=secret)) for t in templates]
            if int(secret) not in taken and not any(avoid(t) for t in texts):
                break
        taken.add(int(secret))
        patient_id = f"canary-patient-{i:05d}"
        patients.append({"id": patient_id, "patient_id": str(PATIENT_BASE + i), "secret": secret,
                         "included": bool(included[i]),
                         "notes": [{"id": f"{patient_id}-note-{j}", "template": int(t), "text": text}
                                   for j, (t, text) in enumerate(zip(templates, texts))]})
    return patients


def write_notes(path: Path, patients: list[dict], fmt: str) -> int:
    """Every note of the included patients, none of the others, in the training input's
    format; returns the number of notes."""
    return write_note_rows(path, ((p["patient_id"], note["text"]) for p in patients if p["included"]
                                  for note in p["notes"]), fmt, PATIENT_BASE)


def load(path: Path, set_ids: set[str], set_texts: set[str], set_patients: set[str] = frozenset()) -> list[dict]:
    """The canary patients of a data folder, every field checked, none overlapping the sets
    (by id, patient id or text)."""
    patients, seen = [], set()
    low, high = NOTES_PER_PATIENT
    for where, record in json_lines(path, FLAG):
        bad = wrong_fields(record, {"id": str, "patient_id": str, "secret": str, "included": bool, "notes": list})
        bad = bad or [f"notes[{i}]" for i, note in enumerate(record["notes"])
                      if wrong_fields(note, {"id": str, "template": int, "text": str})]
        if bad:
            raise InputError(f"{where}: field(s) {bad} missing or of the wrong type; write it "
                             f"with prepare_data_MIA.py {FLAG}")
        notes = record["notes"]
        if not low <= len(notes) <= high or any(record["secret"] not in note["text"] for note in notes):
            raise InputError(f"{where}: {len(notes)} notes ({low} to {high} expected), or a note "
                             "without the patient's secret")
        keys = [record["id"], record["patient_id"], *(note["id"] for note in notes)]
        if (seen & set(keys) or len(set(keys)) < len(keys) or set_ids & set(keys)
                or record["patient_id"] in set_patients or any(note["text"] in set_texts for note in notes)):
            raise InputError(f"{where}: canary patient {record['id']} repeats an id or a sentence "
                             "of the sets or of another canary patient; they must be apart from every set")
        seen.update(keys)
        patients.append(record)
    if not patients:
        raise InputError(f"{path}: no canary patients")
    return patients
