"""The sentence sets that prepare_data_MIA.py writes and score_MIA.py reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pandas as pd

from ..common.errors import InputError

# population: extra non-members (RMIA's population, the per-patient test's null), never
# in a comparison
SET_NAMES = ("members", "non_members", "externals", "population")
# the sets whose patients the shadow models train on (halves of them); the externals, from
# another hospital, stay OUT of every shadow model
SHADOW_SETS = ("members", "non_members", "population")


def _field(record: dict, key: str, where: str, numbers: bool) -> str:
    """One field of a set record as a non-empty string (a whole number too, where ids may
    be numbers), or an :class:`InputError` naming the line."""
    value = record[key]
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        kind = "a whole number or " if numbers else ""
        raise InputError(f"{where}: {key} must be {kind}a non-empty string, not {json.dumps(value)}; "
                         "write the sets with prepare_data_MIA.py")
    return value


def _records(path: Path, name: str) -> Iterator[dict]:
    """The validated records of one set file (blank lines skipped)."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(f"{where}: bytes that are not UTF-8 ({err.reason}); the set files "
                                 "are UTF-8 JSON lines") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{where}: not a JSON object ({err.msg})") from None
            if not isinstance(record, dict):
                raise InputError(f"{where}: expected a JSON object with id, patient_id and text, "
                                 f"not {json.dumps(record)[:40]}")
            missing = {"id", "patient_id", "text"} - set(record)
            if missing:
                raise InputError(f"{where}: missing field(s) {sorted(missing)}; "
                                 "write the sets with prepare_data_MIA.py")
            if record.get("set", name) != name:
                raise InputError(f"{where}: set {json.dumps(record['set'])} in {name}.jsonl")
            yield {"set": name, "id": _field(record, "id", where, True),
                   "patient_id": _field(record, "patient_id", where, True),
                   "text": _field(record, "text", where, False)}


def sets_digest(data_dir: Path) -> str:
    """SHA-256 over the set files present (their names and contents): runs compared as
    targets must have scored the same sets."""
    from ..common.digests import file_sha256, texts_sha256
    return texts_sha256(f"{name}:{file_sha256(data_dir / f'{name}.jsonl')}" for name in SET_NAMES
                        if (data_dir / f"{name}.jsonl").is_file())


def load_sets(data_dir: Path) -> pd.DataFrame:
    """The sentence sets in ``data_dir``: columns set, id, patient_id, text; every field
    of every row checked."""
    rows = [record for name in SET_NAMES if (data_dir / f"{name}.jsonl").is_file()
            for record in _records(data_dir / f"{name}.jsonl", name)]
    table = pd.DataFrame(rows, columns=["set", "id", "patient_id", "text"])
    present = set(table["set"])
    if "members" not in present or not present & {"non_members", "externals"}:
        raise InputError(f"{data_dir}: needs members.jsonl and non_members.jsonl or "
                         "externals.jsonl; run prepare_data_MIA.py --out-dir there first")
    duplicated = table["id"].duplicated()
    if duplicated.any():
        raise InputError(f"{data_dir}: sentence id {table['id'][duplicated].iloc[0]!r} "
                         "appears twice; ids must be unique across the sets")
    return table
