"""Readers for the two CSV note formats, told apart by their header.

- MIMIC-III ``NOTEEVENTS.csv[.gz]``: 11 columns, ``ROW_ID`` ... ``TEXT``; rows with
  ``ISERROR == 1`` are notes marked in error and are skipped.
- Pseudo re-identified notes (``SUBJECT_ID_to_NOTES_{original,1a,1b}.csv``): columns
  ``SUBJECT_ID,TEXT``, one row per note.

Both are read in chunks, so memory stays bounded on the 4 GB NOTEEVENTS file.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Iterator

import pandas as pd

from .errors import InputError
from .notes import Note

NOTEEVENTS_COLUMNS = (
    "ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME",
    "CATEGORY", "DESCRIPTION", "CGID", "ISERROR", "TEXT",
)
SUBJECT_NOTES_COLUMNS = ("SUBJECT_ID", "TEXT")
FORMATS = {"noteevents": NOTEEVENTS_COLUMNS, "subject_notes": SUBJECT_NOTES_COLUMNS}
CHUNK_ROWS = 20_000


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def not_utf8(path: Path, err: UnicodeDecodeError) -> InputError:
    return InputError(f"{path}: bytes that are not UTF-8 ({err.reason}, byte 0x"
                      f"{err.object[err.start]:02x}); re-encode the file as UTF-8")


def read_header(path: Path) -> list[str]:
    """The column names in the first row of a CSV file (plain or gzipped)."""
    try:
        with _open_text(path) as handle:
            return next(csv.reader(handle), [])
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None
    except (gzip.BadGzipFile, EOFError, OSError, csv.Error) as err:
        raise InputError(f"{path}: cannot read the header ({err}); expected a UTF-8 CSV, "
                         "optionally gzipped") from None


def detect_format(path: Path) -> str:
    """``"noteevents"`` or ``"subject_notes"``, from the header of ``path``."""
    header = [name.strip() for name in read_header(path)]
    for name, columns in FORMATS.items():
        if tuple(header) == columns:
            return name
    if not header:
        raise InputError(f"{path}: the file is empty; expected a CSV with a header row")
    raise InputError(
        f"{path}: unexpected columns {header}; expected the MIMIC-III NOTEEVENTS header "
        f"{list(NOTEEVENTS_COLUMNS)} or {list(SUBJECT_NOTES_COLUMNS)}"
    )


def iter_chunks(path: Path, usecols: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """The rows of a note CSV as string-typed DataFrame chunks (empty fields as ``""``)."""
    try:
        reader = pd.read_csv(
            path, dtype=str, keep_default_na=False, usecols=usecols, chunksize=CHUNK_ROWS,
            encoding="utf-8", compression="infer",
        )
        with reader:
            yield from reader
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None
    except (pd.errors.ParserError, gzip.BadGzipFile, EOFError, ValueError) as err:
        raise InputError(f"{path}: malformed CSV ({str(err).strip()}); check that quoted "
                         "fields are closed and every row has the header's columns") from None


def read_notes(path: Path) -> Iterator[Note]:
    """Every usable note in a NOTEEVENTS or SUBJECT_ID,TEXT file, in file order."""
    fmt = detect_format(path)
    usecols = ["SUBJECT_ID", "TEXT"] + (["ISERROR"] if fmt == "noteevents" else [])
    for chunk in iter_chunks(path, usecols):
        if fmt == "noteevents":
            chunk = chunk[chunk["ISERROR"].str.strip() != "1"]
        for patient, text in zip(chunk["SUBJECT_ID"].str.strip(), chunk["TEXT"]):
            if not patient:
                raise InputError(f"{path}: a row has an empty SUBJECT_ID; every note "
                                 "needs its patient")
            yield Note(patient_id=patient, text=text, source=path.name)
