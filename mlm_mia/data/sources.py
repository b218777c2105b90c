"""Where notes come from: resolving the command-line inputs into note files, and
streaming each input's cleaned sentences with the right splitter."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Container, Iterator

from . import csv_notes, n2c2
from ..common.digests import file_sha256
from ..common.errors import InputError
from ..common.progress import FilesProgress
from .notes import Note
from .sentences import clean_sentences
from ..common.workers import Workers

CSV_SUFFIXES = (".csv", ".csv.gz")


def resolve_files(spec: str, flag: str, suffixes: tuple[str, ...] = CSV_SUFFIXES) -> list[Path]:
    """The files named by ``spec``: a file, a folder (its files with ``suffixes``) or a glob."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and f.name.endswith(suffixes))
    elif path.is_file():
        files = [path]
    elif any(char in spec for char in "*?["):
        files = sorted(Path(f) for f in glob.glob(spec, recursive=True) if Path(f).is_file())
    else:
        raise InputError(f"{flag} {spec}: no such file or folder")
    if not files:
        raise InputError(f"{flag} {spec}: no {' or '.join(suffixes)} files found there")
    return files


def default_splitter(path: Path) -> str:
    """``rules`` for raw notes; ``lines`` for the one-sentence-per-line 1a/1b files."""
    if path.name.endswith(".txt"):
        return "rules"
    if csv_notes.detect_format(path) == "noteevents" or "original" in path.name.lower():
        return "rules"
    return "lines"


@dataclass(frozen=True)
class Source:
    """One input of the study: note CSV files, an n2c2 corpus, or plain text."""

    flag: str
    kind: str  # "csv", "n2c2" or "text"
    paths: tuple[Path, ...]
    splitter: str | None = None  # None: each file's default

    def splitters(self) -> dict[str, str]:
        """The splitter used for each file, by file name."""
        if self.kind == "n2c2":
            return {str(p): self.splitter or "rules" for p in self.paths}
        return {str(p): self.splitter or default_splitter(p) for p in self.paths}

    def notes(self) -> Iterator[tuple[Note, str]]:
        """Every note with the splitter for its file, in input order; reading note CSV files
        shows its progress (kB or MB of the files read)."""
        splitters = self.splitters()
        with FilesProgress(f"reading {self.flag}", self.paths, enabled=self.kind == "csv") as bar:
            for path, read in bar.files():
                splitter = splitters[str(path)]
                if self.kind == "text":
                    yield from ((Note(None, line, path.name), splitter) for line in _text_lines(path))
                    continue
                notes = n2c2.read_records(path) if self.kind == "n2c2" else csv_notes.read_notes(path, read)
                yield from ((note, splitter) for note in notes)

    def split_notes(self, function: Callable[[list], list], min_chars: int,
                    patients: Container[str] | None = None, workers: Workers | None = None
                    ) -> Iterator[tuple[str | None, Any]]:
        """``(patient_id, function's result)`` for every note, in input order, where
        ``function`` maps a list of ``(kind, text, splitter, min_chars)`` to a result per
        note (:func:`split_batch`, or a hashing of it), run by ``workers``. ``patients``,
        if given, restricts the notes to theirs (the others are not split at all)."""
        notes = ((note.patient_id, (self.kind, note.text, splitter, min_chars))
                 for note, splitter in self.notes() if patients is None or note.patient_id in patients)
        return (workers or Workers()).map(function, notes)

    def sentences(self, min_chars: int, patients: Container[str] | None = None,
                  workers: Workers | None = None) -> Iterator[tuple[str | None, str]]:
        """``(patient_id, sentence)`` for every cleaned sentence, in input order.

        ``patients``, if given, restricts the output to those patients' notes. Plain text
        has no patients: its patient id is ``None``, and each line is yielded whole as well
        as split, since such a file may hold one sentence or one document per line.
        """
        for patient, sentences in self.split_notes(split_batch, min_chars, patients, workers):
            for sentence in sentences:
                yield patient, sentence

    def fingerprint(self) -> dict[str, str]:
        """SHA-256 of every input file (of every file under an n2c2 folder)."""
        files = [f for p in self.paths for f in (sorted(p.rglob("*")) if p.is_dir() else [p])]
        return {str(f): file_sha256(f) for f in files if f.is_file()}


def note_sentences(kind: str, text: str, splitter: str, min_chars: int) -> list[str]:
    """The cleaned sentences of one note of a source of ``kind``."""
    whole = list(clean_sentences(text, "lines", min_chars)) if kind == "text" else []
    return whole + list(clean_sentences(text, splitter, min_chars))


def split_batch(notes: list[tuple[str, str, str, int]]) -> list[list[str]]:
    """:func:`note_sentences` of each note of a batch (run in a worker process)."""
    return [note_sentences(*note) for note in notes]


def _text_lines(path: Path) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            yield from handle
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise csv_notes.not_utf8(path, err) from None


def note_source(spec: str, flag: str, splitter: str | None) -> Source:
    """A ``Source`` of NOTEEVENTS / SUBJECT_ID,TEXT files; headers are checked now."""
    paths = resolve_files(spec, flag)
    for path in paths:
        csv_notes.detect_format(path)
    return Source(flag=flag, kind="csv", paths=tuple(paths), splitter=splitter)


def n2c2_source(spec: str, flag: str, splitter: str | None) -> Source:
    """A ``Source`` of n2c2 records: a folder, nested folders, a ``.tar.gz`` or a glob."""
    path = Path(spec)
    paths = [path] if path.exists() else resolve_files(spec, flag, (".tar.gz", ".tgz"))
    return Source(flag=flag, kind="n2c2", paths=tuple(paths), splitter=splitter)


def training_text_source(spec: str, flag: str, splitter: str | None) -> Source:
    """The target's actual training text: note CSV files or plain ``.txt`` files."""
    paths = resolve_files(spec, flag, CSV_SUFFIXES + (".txt",))
    if all(p.name.endswith(".txt") for p in paths):
        return Source(flag=flag, kind="text", paths=tuple(paths), splitter=splitter)
    return note_source(spec, flag, splitter)
