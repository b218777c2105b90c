"""Readers of MIMIC-III's diagnosis tables: which conditions each patient has.

- ``DIAGNOSES_ICD.csv[.gz]``: ``ROW_ID,SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE``, one row per
  diagnosis of an admission (the few rows without a code are skipped);
- ``D_ICD_DIAGNOSES.csv[.gz]``: ``ROW_ID,ICD9_CODE,SHORT_TITLE,LONG_TITLE``, the titles of
  each code (some codes of the first table have none: they are left out, and counted).
"""

from __future__ import annotations

from pathlib import Path

from ..common.errors import InputError
from . import csv_notes

DIAGNOSES_COLUMNS = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE")
TITLES_COLUMNS = ("ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE")


def read_diagnoses(path: Path) -> dict[str, list[str]]:
    """Each patient's distinct ICD-9 codes, in file order (admission by admission)."""
    csv_notes.check_columns(path, DIAGNOSES_COLUMNS, "MIMIC-III's DIAGNOSES_ICD table")
    codes: dict[str, list[str]] = {}
    for number, row in csv_notes.iter_records(path, len(DIAGNOSES_COLUMNS)):
        patient, code = row[1].strip(), row[4].strip()
        if not patient:
            raise InputError(f"{path}: record {number} has an empty SUBJECT_ID; every diagnosis "
                             "needs its patient")
        if code and code not in codes.setdefault(patient, []):
            codes[patient].append(code)
    return codes


def read_titles(path: Path) -> dict[str, str]:
    """The long title of each ICD-9 code, lower-cased (as the 1a/1b notes are)."""
    csv_notes.check_columns(path, TITLES_COLUMNS, "MIMIC-III's D_ICD_DIAGNOSES table")
    titles = {}
    for number, row in csv_notes.iter_records(path, len(TITLES_COLUMNS)):
        code, title = row[1].strip(), " ".join(row[3].split()).lower()
        if not code or not title:
            raise InputError(f"{path}: record {number} has an empty ICD9_CODE or LONG_TITLE; "
                             "every row needs both")
        titles[code] = title
    return titles
