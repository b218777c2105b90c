"""The sentence sets that prepare_data_MIA.py writes and score_MIA.py reads."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .errors import InputError

# population: extra non-members (RMIA's population, the per-patient test's null), never
# in a comparison
SET_NAMES = ("members", "non_members", "externals", "population")
# the sets whose patients the shadow models train on (halves of them); the externals, from
# another hospital, stay OUT of every shadow model
SHADOW_SETS = ("members", "non_members", "population")


def load_sets(data_dir: Path) -> pd.DataFrame:
    """The sentence sets in ``data_dir``: columns set, id, patient_id, text."""
    rows = []
    for name in SET_NAMES:
        path = data_dir / f"{name}.jsonl"
        if not path.exists():
            continue
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise InputError(f"{path}:{number}: not a JSON object ({err.msg})") from None
                missing = {"id", "patient_id", "text"} - set(record)
                if missing:
                    raise InputError(f"{path}:{number}: missing field(s) {sorted(missing)}; "
                                     "write the sets with prepare_data_MIA.py")
                if not str(record["text"]).strip():
                    raise InputError(f"{path}:{number}: empty text")
                rows.append({"set": name, "id": str(record["id"]),
                             "patient_id": str(record["patient_id"]), "text": str(record["text"])})
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
