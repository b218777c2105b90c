"""The surrogate name of each patient of the pseudo re-identified notes (Lehman et al. 2021),
from either of two files, told apart by their header:

- a small ``SUBJECT_ID,NAME`` table (for the "1a" notes, where the names are inside the text);
- the "1b" notes themselves (``SUBJECT_ID,TEXT``, one sentence per line), which prefix
  every line with the patient's name: the name is the words every line of the patient's
  notes starts with (a patient with a single line cannot be told apart from its sentence,
  and is left out).

Names are lower-cased with their spaces collapsed, as the 1a/1b notes are.
"""

from __future__ import annotations

from pathlib import Path

from ..common.errors import InputError
from . import csv_notes

NAMES_COLUMNS = ("SUBJECT_ID", "NAME")


def _clean(name: str) -> str:
    return " ".join(name.split()).lower()


def read_names(path: Path) -> dict[str, str]:
    """Each patient's name, from a ``SUBJECT_ID,NAME`` table or from "1b" notes."""
    header = [name.strip().upper() for name in csv_notes.read_header(path)]
    if header == list(csv_notes.SUBJECT_NOTES_COLUMNS):
        return names_from_prefixes(path)
    csv_notes.check_columns(path, NAMES_COLUMNS, 'a table of names (or "1b" notes, SUBJECT_ID,TEXT)')
    names: dict[str, str] = {}
    for number, row in csv_notes.iter_records(path, len(NAMES_COLUMNS)):
        patient, name = row[0].strip(), _clean(row[1])
        if not patient or not name:
            raise InputError(f"{path}: record {number} has an empty SUBJECT_ID or NAME; give "
                             "every patient's name, or leave the patient out")
        if names.setdefault(patient, name) != name:
            raise InputError(f"{path}: record {number} gives patient {patient} a second name "
                             f"({name!r}, first {names[patient]!r}); keep one name per patient")
    return names


def names_from_prefixes(path: Path) -> dict[str, str]:
    """The words every line of a patient's notes starts with, for each patient of a "1b"
    notes file with at least two lines and such words; stops unless most such patients have
    them (the file is not "1b" notes)."""
    prefixes: dict[str, list[str]] = {}
    lines: dict[str, int] = {}
    for note in csv_notes.read_notes(path):
        for line in note.text.splitlines():
            words = line.lower().split()
            if not words:
                continue
            prefix = prefixes.setdefault(note.patient_id, words)
            common = next((i for i, (a, b) in enumerate(zip(prefix, words)) if a != b),
                          min(len(prefix), len(words)))
            prefixes[note.patient_id] = prefix[:common]
            lines[note.patient_id] = lines.get(note.patient_id, 0) + 1
    several = [patient for patient, count in lines.items() if count >= 2]
    named = {patient: " ".join(prefixes[patient]) for patient in several if prefixes[patient]}
    # in "1b" notes every line starts with the name; in the others most patients' lines share
    # no first word, and the few that do share one such as "the", which is no name
    if several and 2 * len(named) <= len(several):
        raise InputError(f"{path}: the lines of only {len(named)} of the {len(several)} patients with two or "
                         'more lines start with the same words: not "1b" notes (every line prefixed with '
                         "the patient's name); give those, or a SUBJECT_ID,NAME table")
    return named
