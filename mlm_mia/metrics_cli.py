"""metrics.py: recompute and print every metric from a saved scores.csv."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from . import columns, evaluation, report
from .cli import Parser, non_negative_int
from .errors import InputError
from .outputs import json_text, write_text_atomic
from .sets import SET_NAMES


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="metrics.py", description="AUC, TPR at 0.1/1/10%% FPR, precision/recall/F1 at 10%% "
        "FPR and patient-bootstrap CIs, from the score_* columns of a scores.csv.")
    parser.add_argument("scores", type=Path, help="scores.csv written by score_MIA.py")
    parser.add_argument("--json", type=Path, help="also write the metrics to this JSON file")
    parser.add_argument("--bootstrap", type=non_negative_int, default=1000,
                        help="patient resamples (1000; 0: none)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="bootstrap seed (0)")
    return parser


def read_scores(path: Path) -> pd.DataFrame:
    """A scores file, checked for what the metrics need: the id columns filled, ids
    unique, known set names, numeric attack scores."""
    try:
        table = pd.read_csv(path, dtype={c: str for c in columns.ID_COLUMNS}, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: a folder; give the scores.csv inside it") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable CSV ({' '.join(str(err).split())})") from None
    missing = set(columns.ID_COLUMNS) - set(table.columns)
    if missing:
        raise InputError(f"{path}: missing column(s) {sorted(missing)}; expected a scores.csv "
                         "written by score_MIA.py")
    attacks = columns.attack_names(table)
    if not attacks:
        raise InputError(f"{path}: no score_<attack> columns")
    for column in columns.ID_COLUMNS:
        blank = table[column].str.strip() == ""
        if blank.any():
            raise InputError(f"{path}: row {int(blank.idxmax()) + 2} has an empty {column}")
    unknown = sorted(set(table["set"]) - set(SET_NAMES))
    if unknown:
        raise InputError(f"{path}: unknown set name(s) {unknown}; expected {list(SET_NAMES)}")
    duplicated = table["id"].duplicated()
    if duplicated.any():
        raise InputError(f"{path}: sentence id {table['id'][duplicated].iloc[0]!r} appears "
                         f"{int((table['id'] == table['id'][duplicated].iloc[0]).sum())} times; "
                         "every row must be one sentence")
    for name in [c for c in table.columns if c not in columns.ID_COLUMNS]:
        if not pd.api.types.is_numeric_dtype(table[name]):
            numbers = pd.to_numeric(table[name].replace("", np.nan), errors="coerce")
            bad = numbers.isna() & (table[name] != "")
            if bad.any():
                raise InputError(f"{path}: row {int(bad.idxmax()) + 2} of {name} is "
                                 f"{table[name][bad].iloc[0]!r}, not a number")
            table[name] = numbers
    evaluation.check_scores(table)
    return table


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    table = read_scores(args.scores)
    try:
        results = evaluation.compare(table, n_boot=args.bootstrap, seed=args.seed)
    except ValueError as err:
        raise InputError(f"{args.scores}: {err}") from None
    if not results:
        raise InputError(f"{args.scores}: needs members and non_members or externals rows")
    print(report.tables(results), end="")
    if args.json:
        write_text_atomic(args.json, json_text(results))
    return 0
