"""The planted canaries of a study's data folder: read and checked against the sets'
manifest, and their columns in the scores table (numbers only)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from ..common import columns
from ..common.digests import file_sha256
from ..common.errors import InputError
from ..data import canaries, prepare
from ..stats import audit


def load_canaries(data_dir: Path, sets: pd.DataFrame, kind: ModuleType = canaries) -> list[dict]:
    """The canaries (or, ``kind`` :mod:`canary_patients`, the canary patients) of the data
    folder, if any: the very file prepare_data_MIA.py wrote for these sets (its SHA-256 in
    manifest.json), apart from every set."""
    path = data_dir / kind.FILE
    if not path.is_file():
        return []
    manifest = data_dir / prepare.MANIFEST
    recorded = json.loads(manifest.read_text(encoding="utf-8")).get(kind.KEY) if manifest.is_file() else None
    if not recorded or recorded["sha256"] != file_sha256(path):
        raise InputError(f"{path}: does not match the run ({manifest} records "
                         f"{'other ' + kind.WHAT if recorded else 'none'}); write the sets and the {kind.WHAT} "
                         f"together with prepare_data_MIA.py {kind.FLAG} M")
    return kind.load(path, set(sets["id"]), set(sets["text"]), set(sets["patient_id"]))


def with_canaries(sets: pd.DataFrame, planted: list[dict], patients: list[dict]) -> pd.DataFrame:
    """The sets with a row per canary and per canary patient's note appended."""
    rows = [{"set": audit.SET, "id": c["id"], "patient_id": c["patient_id"], "text": c["text"]} for c in planted]
    rows += [{"set": audit.PATIENT_SET, "id": note["id"], "patient_id": p["patient_id"], "text": note["text"]}
             for p in patients for note in p["notes"]]
    return pd.concat([sets, pd.DataFrame(rows)], ignore_index=True) if rows else sets


def add_canary_columns(table: pd.DataFrame, planted: list[dict], alternative_plls: list[float],
                        n_alternatives: int) -> None:
    """Whether each canary was included, its repeats and its secret's exposure (numbers
    only, on the canaries' rows)."""
    rows = (table["set"] == audit.SET).to_numpy()
    by_id = {c["id"]: c for c in planted}
    ids = table.loc[rows, "id"]
    table.loc[rows, audit.INCLUDED] = [int(by_id[i]["included"]) for i in ids]
    table.loc[rows, audit.REPEATS] = [by_id[i]["repeats"] for i in ids]
    plls = np.asarray(alternative_plls, dtype=float).reshape(len(planted), n_alternatives)
    own = dict(zip(table.loc[rows, "id"], table.loc[rows, columns.pll(columns.TARGET)]))
    table.loc[rows, audit.EXPOSURE] = [audit.exposure_bits(own[c["id"]], alt) for c, alt in zip(planted, plls)]


def add_canary_patient_columns(table: pd.DataFrame, patients: list[dict]) -> None:
    """Whether each canary patient was included, on its notes' rows."""
    included = {note["id"]: int(p["included"]) for p in patients for note in p["notes"]}
    rows = (table["set"] == audit.PATIENT_SET).to_numpy()
    table.loc[rows, audit.INCLUDED] = table.loc[rows, "id"].map(included).to_numpy()
