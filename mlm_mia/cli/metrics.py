"""metrics.py: recompute and print every metric from a saved scores.csv."""

from __future__ import annotations

import gzip
import json
import logging
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..stats import audit, evaluation, name_probe
from ..common import columns
from ..report import tables as report
from .common import Parser, add_flag
from ..common.errors import InputError
from ..common.progress import set_verbosity
from ..common.outputs import atomic_path, check_apart, json_text, write_text_atomic
from ..data.sets import SET_NAMES

log = logging.getLogger(__name__)


def build_parser() -> Parser:
    parser = Parser(
        prog="metrics.py", description="AUC, TPR at 0.1/1/10% FPR, precision/recall/F1 at 10% "
        "FPR, patient-bootstrap CIs, the validity check and the per-patient tests, from a "
        "scores.csv (and the name-condition probe from the name_probe.csv beside it); with "
        "several, the targets compared on the same sets (paired intervals).")
    parser.add_argument("scores", type=Path, nargs="+", help="scores.csv written by score_MIA.py; "
                        "several: one per target, all on the same sets")
    parser.add_argument("--names", help="comma-separated names of the runs (default: the name of "
                        "each file's folder)")
    parser.add_argument("--json", type=Path, help="also write the metrics (several runs: the "
                        "comparison) to this JSON file")
    parser.add_argument("--patients", type=Path, help="also write the per-patient tests here (one run)")
    parser.add_argument("--html", type=Path, help="also write a report.html here")
    add_flag(parser, "--bootstrap")
    add_flag(parser, "--seed", help="bootstrap seed (0)")
    add_flag(parser, "--audit-delta")
    add_flag(parser, "--quiet")
    add_flag(parser, "--verbose")
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
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise InputError(f"{path}: the gzip file is truncated or corrupt ({err}); copy it again, "
                         "or give the scores.csv score_MIA.py wrote") from None
    missing = set(columns.ID_COLUMNS) - set(table.columns)
    if missing:
        raise InputError(f"{path}: missing column(s) {sorted(missing)}; expected a scores.csv "
                         "written by score_MIA.py")
    attacks = columns.attack_names(table)
    if not attacks:
        raise InputError(f"{path}: no score_<attack> columns")
    _check_shadow_columns(table, path)
    for column in columns.ID_COLUMNS:
        blank = table[column].str.strip() == ""
        if blank.any():
            raise InputError(f"{path}: row {int(blank.idxmax()) + 2} has an empty {column}")
    known = [*SET_NAMES, audit.SET, audit.PATIENT_SET]
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
    _check_canary_columns(table, path)
    return table


def _check_canary_columns(table: pd.DataFrame, path: Path) -> None:
    """Canary rows carry whether each canary was included (0 or 1) and its repeats (a
    whole number from 1), canary patients' rows whether the patient was (one value for all
    of a patient's notes): without them the audit would be left out, or wrong, silently."""
    _check_canary_patient_columns(table, path)
    rows = table[table["set"] == audit.SET]
    if rows.empty:
        return
    missing = sorted({audit.INCLUDED, audit.REPEATS} - set(table.columns))
    if missing:
        raise InputError(f"{path}: canary rows but no {missing} column(s); give the whole scores.csv "
                         "score_MIA.py wrote")
    included, repeats = rows[audit.INCLUDED].to_numpy(float), rows[audit.REPEATS].to_numpy(float)
    bad = ~np.isin(included, (0, 1)) | ~(repeats >= 1) | (repeats != np.round(repeats))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: row {int(rows.index[row]) + 2}: {audit.INCLUDED} must be 0 or 1 and "
                         f"{audit.REPEATS} a whole number from 1, not {included[row]:g} and {repeats[row]:g}")


def _check_canary_patient_columns(table: pd.DataFrame, path: Path) -> None:
    rows = table[table["set"] == audit.PATIENT_SET]
    if rows.empty:
        return
    if audit.INCLUDED not in table.columns:
        raise InputError(f"{path}: canary patient rows but no ['{audit.INCLUDED}'] column; give the whole "
                         "scores.csv score_MIA.py wrote")
    included = rows[audit.INCLUDED].to_numpy(float)
    bad = ~np.isin(included, (0, 1))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: row {int(rows.index[row]) + 2}: {audit.INCLUDED} must be 0 or 1, "
                         f"not {included[row]:g}")
    mixed = rows.groupby("patient_id")[audit.INCLUDED].nunique() > 1
    if mixed.any():
        raise InputError(f"{path}: canary patient {mixed.idxmax()} has notes both included and left out; a "
                         "canary patient goes in or out whole: give the scores.csv score_MIA.py wrote")


def _check_shadow_columns(table: pd.DataFrame, path: Path) -> None:
    """Each shadow model's two columns together, and the target's statistic and the
    memorization beside them: the LiRA report reads them all."""
    shadow = [c for c in table.columns if re.fullmatch(r"shadow_\d+_(score|in)", c)]
    indices = sorted({int(c.split("_")[1]) for c in shadow})
    wanted = {name for i in indices for name in (columns.shadow_score(i), columns.shadow_in(i))}
    if indices or columns.MEMORIZATION in table.columns:
        wanted |= {columns.TARGET_STATISTIC, columns.MEMORIZATION}
    missing = sorted(wanted - set(table.columns)) + (
        ["shadow_<i>_score", "shadow_<i>_in"] if not indices and columns.MEMORIZATION in table.columns else [])
    if missing:
        raise InputError(f"{path}: shadow model column(s) {missing} missing beside the others; give "
                         "the whole scores.csv score_MIA.py wrote")


def _settings(scores: Path) -> dict:
    """The settings.json a run wrote beside its scores.csv, if any."""
    path = scores.parent / "settings.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_verbosity(args.quiet, args.verbose)
    check_apart({flag: [path] for flag, path in (("--json", args.json), ("--patients", args.patients),
                                                 ("--html", args.html)) if path},
                {"the scores file": args.scores,
                 "the run's settings": [p.parent / "settings.json" for p in args.scores]})
    if len(args.scores) > 1 and args.patients:
        raise InputError("--patients writes one run's per-patient tests; give one scores file")
    if len(args.scores) > 1:
        return compare_main(args)
    if args.names:
        raise InputError("--names names several runs; give several scores files")
    table = read_scores(args.scores[0])
    settings = _settings(args.scores[0])
    probe_scores = args.scores[0].parent / "name_probe.csv"  # score_MIA.py --name-probe wrote it there
    probe = name_probe.evaluate(name_probe.read_scores(probe_scores), args.bootstrap, args.seed) \
        if probe_scores.is_file() else None
    try:
        results, patients = evaluation.compare(table, n_boot=args.bootstrap, seed=args.seed,
                                               audit_delta=args.audit_delta,
                                               validity_tests=settings.get("validity_tests"), name_probe=probe)
    except ValueError as err:
        raise InputError(f"{args.scores[0]}: {err}") from None
    if not any(k not in evaluation.SECTIONS for k in results):
        raise InputError(f"{args.scores[0]}: needs members and non_members or externals rows")
    if args.patients and patients is None:  # before any output is written
        raise InputError(f"--patients: {args.scores[0]} has no per-patient tests (they need population "
                         "rows of at least 20 patients: prepare_data_MIA.py --population N "
                         "--population-patients P)")
    print(report.tables(results), end="")
    if args.json:
        write_text_atomic(args.json, json_text(results))
    if args.patients:
        write_text_atomic(args.patients, patients.to_csv(index=False))
    if args.html:
        write_html(args.html, table, results, settings, patients)
    return 0


def write_html(path: Path, table: pd.DataFrame, results: dict, settings: dict,
               patients: pd.DataFrame | None, comparison: dict | None = None) -> None:
    from ..report import html as report_html

    with atomic_path(path) as staged:
        report_html.write_report(staged, table, results, settings, patients, comparison)


def compare_main(args) -> int:
    """Several runs on the same sets: each run's figures and the paired differences."""
    from ..stats.comparison import check_same_sets, compare_runs, comparison_tables, not_comparable

    names = args.names.split(",") if args.names else [p.parent.name or str(p) for p in args.scores]
    if len(names) != len(args.scores) or len(set(names)) < len(names):
        raise InputError(f"--names: give {len(args.scores)} distinct names, one per scores file "
                         "(the folders' names repeat)")
    tables = {name: read_scores(path) for name, path in zip(names, args.scores)}
    settings = {n: _settings(p) for n, p in zip(names, args.scores)}
    check_same_sets(tables, {n: s.get("sets_sha256") for n, s in settings.items()})
    for name, path in zip(names, args.scores):
        if not settings[name]:
            log.warning("WARNING %s: no settings.json beside %s: whether its attacks are defined as "
                        "the other runs' cannot be checked", name, path)
    result = compare_runs(tables, n_boot=args.bootstrap, seed=args.seed,
                          not_compared=not_comparable(tables, settings))
    print(comparison_tables(result), end="")
    if args.json:
        write_text_atomic(args.json, json_text(result))
    if args.html:
        first, first_settings = tables[names[0]], settings[names[0]]
        results, patients = evaluation.compare(first, n_boot=args.bootstrap, seed=args.seed,
                                               validity_tests=first_settings.get("validity_tests"))
        write_html(args.html, first, results, first_settings, patients, result)
    return 0
