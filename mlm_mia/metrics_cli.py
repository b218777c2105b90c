"""metrics.py: recompute and print every metric from a saved scores.csv."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import audit, columns, evaluation, report
from .cli import Parser, non_negative_int
from .errors import InputError
from .outputs import atomic_path, json_text, write_text_atomic
from .sets import SET_NAMES


def build_parser() -> Parser:
    parser = Parser(
        prog="metrics.py", description="AUC, TPR at 0.1/1/10% FPR, precision/recall/F1 at 10% "
        "FPR, patient-bootstrap CIs, the validity check and the per-patient tests, from a "
        "scores.csv; with several, the targets compared on the same sets (paired intervals).")
    parser.add_argument("scores", type=Path, nargs="+", help="scores.csv written by score_MIA.py; "
                        "several: one per target, all on the same sets")
    parser.add_argument("--names", help="comma-separated names of the runs (default: the name of "
                        "each file's folder)")
    parser.add_argument("--json", type=Path, help="also write the metrics (several runs: the "
                        "comparison) to this JSON file")
    parser.add_argument("--patients", type=Path, help="also write the per-patient tests here (one run)")
    parser.add_argument("--html", type=Path, help="also write a report.html here")
    parser.add_argument("--bootstrap", type=non_negative_int, default=1000,
                        help="patient resamples (1000; 0: none)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="bootstrap seed (0)")
    parser.add_argument("--audit-delta", type=float, default=0.0,
                        help="with canaries: the delta of the (epsilon, delta) the audit bounds (0)")
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
    known = [*SET_NAMES, audit.SET]
    unknown = sorted(set(table["set"]) - set(known))
    if unknown:
        raise InputError(f"{path}: unknown set name(s) {unknown}; expected {known}")
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


def _settings(scores: Path) -> dict:
    """The settings.json a run wrote beside its scores.csv, if any."""
    path = scores.parent / "settings.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if len(args.scores) > 1:
        return compare_main(args)
    if args.names:
        raise InputError("--names names several runs; give several scores files")
    table = read_scores(args.scores[0])
    settings = _settings(args.scores[0])
    try:
        results, patients = evaluation.compare(table, n_boot=args.bootstrap, seed=args.seed,
                                               audit_delta=args.audit_delta,
                                               validity_tests=settings.get("validity_tests"))
    except ValueError as err:
        raise InputError(f"{args.scores[0]}: {err}") from None
    if not any(k not in evaluation.SECTIONS for k in results):
        raise InputError(f"{args.scores[0]}: needs members and non_members or externals rows")
    print(report.tables(results), end="")
    if args.json:
        write_text_atomic(args.json, json_text(results))
    if args.patients:
        if patients is None:
            raise InputError(f"--patients: {args.scores[0]} has no population rows for the "
                             "per-patient tests' null (prepare_data_MIA.py --population N)")
        write_text_atomic(args.patients, patients.to_csv(index=False))
    if args.html:
        write_html(args.html, table, results, settings, patients)
    return 0


def write_html(path: Path, table: pd.DataFrame, results: dict, settings: dict,
               patients: pd.DataFrame | None, comparison: dict | None = None) -> None:
    from . import report_html

    with atomic_path(path) as staged:
        report_html.write_report(staged, table, results, settings, patients, comparison)


def compare_main(args) -> int:
    """Several runs on the same sets: each run's figures and the paired differences."""
    from .comparison import check_same_sets, compare_runs, comparison_tables

    names = args.names.split(",") if args.names else [p.parent.name or str(p) for p in args.scores]
    if len(names) != len(args.scores) or len(set(names)) < len(names):
        raise InputError(f"--names: give {len(args.scores)} distinct names, one per scores file "
                         "(the folders' names repeat)")
    tables = {name: read_scores(path) for name, path in zip(names, args.scores)}
    check_same_sets(tables, {n: _settings(p).get("sets_sha256") for n, p in zip(names, args.scores)})
    result = compare_runs(tables, n_boot=args.bootstrap, seed=args.seed)
    print(comparison_tables(result), end="")
    if args.json:
        write_text_atomic(args.json, json_text(result))
    if args.html:
        first = tables[names[0]]
        settings = _settings(args.scores[0])
        results, patients = evaluation.compare(first, n_boot=args.bootstrap, seed=args.seed,
                                               validity_tests=settings.get("validity_tests"))
        write_html(args.html, first, results, settings, patients, result)
    return 0
