"""prepare_data_MIA.py's flags: parsed once into :class:`PrepareSettings`."""

from __future__ import annotations

import argparse
import logging

from ..common.progress import set_verbosity
from ..settings.prepare import PrepareSettings
from .common import Parser, add_flag, add_setting, settings_from

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="prepare_data_MIA.py",
        description="Sample members, non-members and externals sentence sets by patient. "
                    "With no data arguments, uses the built-in synthetic corpus.")

    def add(group, flag: str, **wording) -> None:
        add_setting(group, PrepareSettings, flag, **wording)

    data = parser.add_argument_group("inputs (a file, a folder or a glob each)")
    add(data, "--train-notes", help="notes of the target's training split "
        "(NOTEEVENTS or SUBJECT_ID,TEXT; .csv or .csv.gz)")
    add(data, "--heldout-notes", help="held-out notes, for non-members")
    add(data, "--n2c2", help="n2c2 2014 records: a folder, nested folders or .tar.gz")
    add(data, "--split", metavar="NOTES", help="split these notes by patient first "
        "(writes both halves to --split-dir) and sample from the halves")
    add(data, "--train-fraction", help="fraction of patients in the training half (default 0.5)")
    add(data, "--split-dir", help="where --split writes its halves (default OUT_DIR/split)")
    add(data, "--members-from", metavar="FILE", help="the target's actual training text "
        "(.txt, or note CSVs), e.g. after deduplication: members are only sentences it contains")
    sampling = parser.add_argument_group("sampling")
    add(sampling, "--n-patients", help="patients per set (90)")
    add(sampling, "--n-sentences", help="sentences per set (1000)")
    add(sampling, "--population", metavar="N", help="also write N population sentences "
        "(population.jsonl) from held-out patients outside every other set: known non-members, "
        "for RMIA and as the per-patient test's null (0)")
    add(sampling, "--population-patients", metavar="P", help="from exactly P patients (default: "
        "one sentence per patient while there are enough). The per-patient test needs several "
        "sentences from each of at least 20 patients, and is better calibrated from 100: e.g. "
        "--population 2000 --population-patients 200")
    add(sampling, "--min-chars", help="drop sentences shorter than this (20)")
    add(sampling, "--seed", help="random seed (0)")
    add(sampling, "--splitter", help="sentence splitter for all inputs (default: lines for 1a/1b "
        "files, rules for raw notes)")
    add(sampling, "--allow-fewer", help="take all eligible patients/sentences when fewer than "
        "asked, and record it")
    audit = parser.add_argument_group("planted canaries (for a provable audit; see README)")
    add(audit, "--canaries", help="write M canary sentences carrying random secrets "
        "(canaries.jsonl), each included by a seeded coin, and the included ones as notes to add "
        "to the training data (canary_notes.csv.gz) (0: none)")
    add(audit, "--canary-repeats", metavar="R1,R2,...", help="how many times an included canary "
        "is repeated in the training data; the canaries are spread evenly over these (1,2,4,8)")
    add(audit, "--canary-patients", help="write M fictional canary patients (canary_patients.jsonl), "
        "each with 2 to 8 notes carrying the patient's secret record number, each patient included "
        "or left out as a whole by a seeded coin, and the included patients' notes to add to the "
        "training data (canary_patient_notes.csv.gz): the audit then bounds patient-level privacy "
        "(0: none)")
    add(audit, "--canary-digits")
    add(audit, "--replace-canaries", help="the out-dir holds canaries.jsonl or canary_patients.jsonl: "
        "draw new ones as --canaries and --canary-patients say (0: none) and drop those. Without it, "
        "a run keeps them when --canaries, --canary-repeats, --canary-patients and --canary-digits "
        "are theirs, and stops otherwise")
    add(parser, "--workers", help="processes that split the notes into sentences (default: every "
        "CPU this process may use); the outputs are the same for any number")
    add(parser, "--out-dir", help="output folder (data/)")
    add(parser, "--synthetic-dir", help="where the built-in synthetic corpus lives (data/synthetic)")
    add_flag(parser, "--quiet")
    add_flag(parser, "--verbose")
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..common.stopwatch import Stopwatch
    from ..data.prepare import prepare_sets

    arguments = build_parser().parse_args(argv)
    set_verbosity(arguments.quiet, arguments.verbose)
    watch = Stopwatch()
    prepare_sets(settings_from(PrepareSettings, arguments, "quiet", "verbose"), watch)
    log.info("Seconds: %s", watch.summary())
    return 0
