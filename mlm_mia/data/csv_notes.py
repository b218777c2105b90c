"""Readers for the two CSV note formats, told apart by their header.

- MIMIC-III ``NOTEEVENTS.csv[.gz]``: 11 columns, ``ROW_ID`` ... ``TEXT``; rows with
  ``ISERROR == 1`` are notes marked in error and are skipped.
- Pseudo re-identified notes (``SUBJECT_ID_to_NOTES_{original,1a,1b}.csv``): columns
  ``SUBJECT_ID,TEXT``, one row per note.

Both are streamed record by record (memory stays bounded on the 4 GB NOTEEVENTS file),
and every record must have exactly the header's number of fields: an unquoted comma in
a text field, or a row cut short, would otherwise shift or lose text silently.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path
from typing import Callable, Iterator

from ..common.errors import InputError
from .notes import Note

NOTEEVENTS_COLUMNS = (
    "ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME",
    "CATEGORY", "DESCRIPTION", "CGID", "ISERROR", "TEXT",
)
SUBJECT_NOTES_COLUMNS = ("SUBJECT_ID", "TEXT")
FORMATS = {"noteevents": NOTEEVENTS_COLUMNS, "subject_notes": SUBJECT_NOTES_COLUMNS}
READ_EVERY = 256  # records between two reports of the bytes read
# a note's TEXT can be longer than the csv module's default limit of 128 KiB
csv.field_size_limit(1 << 30)


def _open_text(path: Path) -> io.TextIOBase:
    """UTF-8 text; a byte-order mark that a spreadsheet program put first is read past."""
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


# what reading a cut-short or damaged .gz raises
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def _bad_gzip(path: Path, err: Exception, where: str = "") -> InputError:
    return InputError(f"{path}: the gzip file is truncated or corrupt{where} ({err}); copy or "
                      "download it again, or test it with gzip -t")


def not_utf8(path: Path, err: UnicodeDecodeError) -> InputError:
    return InputError(f"{path}: bytes that are not UTF-8 ({err.reason}, byte 0x"
                      f"{err.object[err.start]:02x}); re-encode the file as UTF-8")


def _unreadable(path: Path, err: Exception) -> InputError:
    return InputError(f"{path}: cannot be read as a CSV ({' '.join(str(err).split())}); expected "
                      "a UTF-8 CSV, optionally gzipped, with quoted text fields")


def read_header(path: Path) -> list[str]:
    """The column names in the first row of a CSV file (plain or gzipped)."""
    try:
        with _open_text(path) as handle:
            return next(csv.reader(handle, strict=True), [])
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None
    except _GZIP_ERRORS as err:
        raise _bad_gzip(path, err) from None
    except (OSError, csv.Error) as err:
        raise _unreadable(path, err) from None


def check_columns(path: Path, columns: tuple[str, ...], what: str) -> None:
    """Stops unless the header of ``path`` is ``columns`` (any case, as exports differ)."""
    header = [name.strip() for name in read_header(path)]
    if [name.upper() for name in header] != list(columns):
        raise InputError(f"{path}: columns {header}; expected {what} with the header {list(columns)}")


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


def iter_records(path: Path, width: int | None = None, read: Callable[[int], None] | None = None
                 ) -> Iterator[tuple[int, list[str]]]:
    """``(record number, fields)`` of every record after the header, each checked to have
    the header's number of fields (``width``, the note formats' by default: the caller
    checks another table's header). Record 1 is the first after the header. ``read`` is
    told, now and then, how many bytes of the file (compressed, for a .gz) are read."""
    width = width or len(FORMATS[detect_format(path)])
    number = 0
    try:
        with _open_text(path) as handle:
            raw = getattr(handle.buffer, "fileobj", handle.buffer)  # a gzip file's compressed bytes
            reader = csv.reader(handle, strict=True)
            next(reader)
            for number, row in enumerate(reader, 1):
                if read is not None and number % READ_EVERY == 0:
                    read(raw.tell())
                if len(row) != width:
                    raise InputError(
                        f"{path}: record {number} (ending on line {reader.line_num}) has "
                        f"{len(row)} fields, the header {width}: a text field with an unquoted "
                        "comma, or a row cut short; quote every text field and check the row")
                yield number, row
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None
    except _GZIP_ERRORS as err:
        raise _bad_gzip(path, err, f" after record {number}") from None
    except csv.Error as err:
        raise InputError(f"{path}: malformed CSV after record {number} ({err}); check that "
                         "quoted fields are closed and every row has the header's columns") from None


def _is_error(value: str, path: Path, number: int) -> bool:
    """ISERROR: empty or 0 for a good note, 1 (also written ``1.0``) for one in error."""
    value = value.strip()
    if not value:
        return False
    try:
        flag = float(value)
    except ValueError:
        flag = None
    if flag not in (0.0, 1.0):
        raise InputError(f"{path}: record {number} has ISERROR {value!r}; expected empty, 0 or 1")
    return flag == 1.0


def read_notes(path: Path, read: Callable[[int], None] | None = None) -> Iterator[Note]:
    """Every usable note in a NOTEEVENTS or SUBJECT_ID,TEXT file, in file order (``read``:
    as :func:`iter_records`)."""
    noteevents = detect_format(path) == "noteevents"
    subject, text = (1, 10) if noteevents else (0, 1)
    for number, row in iter_records(path, read=read):
        if noteevents and _is_error(row[9], path, number):
            continue
        patient = row[subject].strip()
        if not patient:
            raise InputError(f"{path}: record {number} has an empty SUBJECT_ID; every note "
                             "needs its patient")
        yield Note(patient_id=patient, text=row[text], source=path.name)
