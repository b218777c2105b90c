"""The canaries and canary patients of a prepare_data_MIA.py run: those already in the
out-dir kept byte for byte (they are the only record of what went into training), new
ones planted apart from the corpus, the sets and each other, and all written with the
sets."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from types import ModuleType

import numpy as np

from ..common.digests import file_sha256
from ..common.errors import InputError
from ..common.outputs import jsonl_text
from ..settings.prepare import PrepareSettings
from . import canaries, canary_patients, csv_notes
from .sampling import Texts
from .sources import Source

log = logging.getLogger(__name__)

KINDS = (canaries, canary_patients)
FILES = tuple(name for kind in KINDS for name in (kind.FILE, kind.NOTES_FILE))


def kept(settings: PrepareSettings, manifest: Path) -> dict[str, dict | None]:
    """Per manifest key, the out-dir's planted canaries or canary patients to keep as they
    are (None: there are none, or --replace-canaries). A run that would drop them or draw
    others stops, naming the file."""
    return {
        canaries.KEY: _kept(settings, manifest, canaries, {
            "n": settings.canaries, "repeats": list(settings.canary_repeats), "digits": settings.canary_digits},
            lambda theirs: f"--canaries {theirs['n']} --canary-repeats {','.join(map(str, theirs['repeats']))} "
                           f"--canary-digits {theirs['digits']}"),
        canary_patients.KEY: _kept(settings, manifest, canary_patients, {
            "n": settings.canary_patients, "digits": settings.canary_digits},
            lambda theirs: f"--canary-patients {theirs['n']} --canary-digits {theirs['digits']}")}


def _kept(settings: PrepareSettings, manifest: Path, kind: ModuleType, asked: dict, flags_of) -> dict | None:
    """The out-dir's planted ``kind`` when the flags ``asked`` are those recorded with them
    (``flags_of(recorded)`` names those)."""
    path = settings.out_dir / kind.FILE
    if not path.exists() or settings.replace_canaries:
        return None
    try:
        record = (json.loads(manifest.read_text(encoding="utf-8")).get(kind.KEY) or {}) if manifest.is_file() else {}
    except (ValueError, AttributeError):  # not JSON (cut short, edited), or not a mapping
        raise InputError(f"{manifest}: not a manifest prepare_data_MIA.py wrote, so the {kind.WHAT} in "
                         f"{path} cannot be checked; restore it, or give --replace-canaries to draw "
                         "new ones") from None
    theirs = {key: record.get(key) for key in asked}
    if asked != theirs or record.get("sha256") != file_sha256(path):
        flags = flags_of(theirs) if record else "the flags that planted them"
        raise InputError(f"{path}: this run would drop or replace the planted {kind.WHAT} (the only record "
                         f"of which went into training); give {flags} to keep them, or pass "
                         "--replace-canaries")
    notes = settings.out_dir / kind.NOTES_FILE
    return {"record": record, "text": path.read_bytes(),
            "notes": notes.read_bytes() if notes.is_file() else None}


def plant(settings: PrepareSettings, train: Source, corpus_hashes: list[np.ndarray],
          sets: dict[str, list[dict]], patients: set[str], kept: dict[str, dict | None]
          ) -> dict[str, tuple[str, list[dict], dict] | None]:
    """Per manifest key, the canaries or canary patients to plant (those not ``kept``):
    their file's text, the records, and the manifest's record of them. Texts in no note of
    the corpus and no set, patients apart from the corpus's, no secret of one kind in the
    other."""
    planted: dict[str, tuple[str, list[dict], dict] | None] = {kind.KEY: None for kind in KINDS}
    if not (settings.canaries and not kept[canaries.KEY]
            or settings.canary_patients and not kept[canary_patients.KEY]):
        return planted
    in_sets = {r["text"] for records in sets.values() for r in records}
    corpus = Texts(np.unique(np.concatenate(corpus_hashes)))

    def avoid(text: str) -> bool:
        return text in in_sets or text in corpus

    fmt = csv_notes.detect_format(train.paths[0])
    secrets = {kind.KEY: [json.loads(line)["secret"] for line in kept[kind.KEY]["text"].decode("utf-8").splitlines()]
               for kind in KINDS if kept[kind.KEY]}
    if settings.canaries and not kept[canaries.KEY]:
        made = canaries.make(settings.canaries, settings.canary_repeats, settings.seed, avoid,
                             settings.canary_digits, secrets.get(canary_patients.KEY, ()))
        planted[canaries.KEY] = _record(canaries, made, patients, fmt, {
            "n": len(made), "repeats": list(settings.canary_repeats), "digits": settings.canary_digits,
            "included": sum(c["included"] for c in made),
            "notes": sum(c["repeats"] for c in made if c["included"])})
        secrets[canaries.KEY] = [c["secret"] for c in made]
    if settings.canary_patients and not kept[canary_patients.KEY]:
        made = canary_patients.make(settings.canary_patients, settings.seed, avoid, settings.canary_digits,
                                    secrets.get(canaries.KEY, ()))
        planted[canary_patients.KEY] = _record(canary_patients, made, patients, fmt, {
            "n": len(made), "digits": settings.canary_digits,
            "notes_per_patient": list(canary_patients.NOTES_PER_PATIENT),
            "included": sum(p["included"] for p in made),
            "notes": sum(len(p["notes"]) for p in made if p["included"])})
    return planted


def _record(kind: ModuleType, made: list[dict], patients: set[str], fmt: str, counts: dict
            ) -> tuple[str, list[dict], dict]:
    """``kind``'s file text, ``made``, and the manifest's record (``counts``, the format of
    the notes, the file's SHA-256); stops when a patient id is one of the corpus's."""
    clash = sorted({m["patient_id"] for m in made} & patients)
    if clash:
        raise InputError(f"{kind.FLAG}: the canary patient id {clash[0]} is a patient of the corpus")
    text = jsonl_text(made)
    record = counts | {"notes_format": fmt, "file": kind.FILE,
                       "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    log.info("Planted %d %s (%d included, %d notes to add to the training data: %s)",
             record["n"], kind.WHAT, record["included"], record["notes"], kind.NOTES_FILE)
    return text, made, record


def record_and_write(stage: Path, manifest: dict, kept: dict[str, dict | None],
                     planted: dict[str, tuple[str, list[dict], dict] | None]) -> None:
    """Each kind's record into ``manifest`` and its files into ``stage``: the kept ones as
    they were, byte for byte, or the planted ones."""
    for kind in KINDS:
        if kept[kind.KEY]:
            manifest[kind.KEY] = kept[kind.KEY]["record"]
            (stage / kind.FILE).write_bytes(kept[kind.KEY]["text"])
            if kept[kind.KEY]["notes"] is not None:
                (stage / kind.NOTES_FILE).write_bytes(kept[kind.KEY]["notes"])
        elif planted[kind.KEY]:
            text, made, record = planted[kind.KEY]
            manifest[kind.KEY] = record
            (stage / kind.FILE).write_text(text, encoding="utf-8")
            kind.write_notes(stage / kind.NOTES_FILE, made, record["notes_format"])
