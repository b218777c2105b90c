"""prepare_data_MIA.py: sample the members, non-members and externals sentence sets."""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from .. import __version__
from . import canaries, csv_notes, sampling, split, synthetic
from ..settings.flags import Parser, add_flag, bounded, non_negative_int, positive_int
from ..common.errors import InputError
from ..common.digests import file_sha256
from ..common.outputs import (check_apart, json_text, jsonl_text, locked_output_dir, remove_stale_staging,
    replaced_dir, staging_dir)
from .sentences import SPLITTERS, text_hash
from .sets import SET_NAMES
from .sources import Source, n2c2_source, note_source, training_text_source
from ..common.workers import Workers

log = logging.getLogger(__name__)

SYNTHETIC_DIR = Path("data") / "synthetic"
SYNTHETIC_PATIENTS = 500
# 3 or 4 notes (about 47 sentences) per patient: enough for sets of 1000 sentences from 90
# patients, and little enough that the demo trains its target and 8 shadow models like it
# on 2 CPU cores within minutes
SYNTHETIC_NOTES_PER_PATIENT = (3, 5)
SYNTHETIC_TRAIN_FRACTION = 0.4
MANIFEST = "manifest.json"
# what a run writes; the canary files too, so that a run that replaces canaries by none
# (--replace-canaries) leaves no older ones
OUTPUTS = tuple(f"{name}.jsonl" for name in SET_NAMES) + (MANIFEST, canaries.FILE, canaries.NOTES_FILE)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="prepare_data_MIA.py",
        description="Sample members, non-members and externals sentence sets by patient. "
                    "With no data arguments, uses the built-in synthetic corpus.")
    data = parser.add_argument_group("inputs (a file, a folder or a glob each)")
    data.add_argument("--train-notes", help="notes of the target's training split "
                      "(NOTEEVENTS or SUBJECT_ID,TEXT; .csv or .csv.gz)")
    data.add_argument("--heldout-notes", help="held-out notes, for non-members")
    data.add_argument("--n2c2", help="n2c2 2014 records: a folder, nested folders or .tar.gz")
    data.add_argument("--split", metavar="NOTES", help="split these notes by patient first "
                      "(writes both halves to --split-dir) and sample from the halves")
    data.add_argument("--train-fraction", type=bounded(float, lambda x: 0 < x < 1, "a fraction strictly "
                                                       "between 0 and 1"), default=0.5,
                      help="fraction of patients in the training half (default 0.5)")
    data.add_argument("--split-dir", type=Path, help="where --split writes its halves "
                      "(default OUT_DIR/split)")
    data.add_argument("--members-from", metavar="FILE", help="the target's actual training text "
                      "(.txt, or note CSVs), e.g. after deduplication: members are only "
                      "sentences it contains")
    sampling_group = parser.add_argument_group("sampling")
    sampling_group.add_argument("--n-patients", type=positive_int, default=90, help="patients per set (90)")
    sampling_group.add_argument("--n-sentences", type=positive_int, default=1000, help="sentences per set (1000)")
    sampling_group.add_argument("--population", type=non_negative_int, default=0, metavar="N",
                                help="also write N population sentences (population.jsonl) from "
                                "held-out patients outside every other set: known non-members, "
                                "for RMIA and as the per-patient test's null (0)")
    sampling_group.add_argument("--population-patients", type=positive_int, default=None,
                                metavar="P", help="from exactly P patients (default: one sentence "
                                "per patient while there are enough). The per-patient test needs "
                                "several sentences from each of at least 20 patients, and is "
                                "better calibrated from 100: e.g. --population 2000 "
                                "--population-patients 200")
    sampling_group.add_argument("--min-chars", type=positive_int, default=20,
                                help="drop sentences shorter than this (20)")
    add_flag(sampling_group, "--seed", help="random seed (0)")
    sampling_group.add_argument("--splitter", choices=SPLITTERS, help="sentence splitter for all "
                                "inputs (default: lines for 1a/1b files, rules for raw notes)")
    sampling_group.add_argument("--allow-fewer", action="store_true", help="take all eligible "
                                "patients/sentences when fewer than asked, and record it")
    audit = parser.add_argument_group("planted canaries (for a provable audit; see README)")
    add_flag(audit, "--canaries", help="write M canary sentences carrying random secrets "
             "(canaries.jsonl), each included by a seeded coin, and the included ones as notes to "
             "add to the training data (canary_notes.csv.gz) (0: none)")
    audit.add_argument("--canary-repeats", type=canaries.parse_repeats, default=(1, 2, 4, 8),
                       metavar="R1,R2,...", help="how many times an included canary is repeated "
                       "in the training data; the canaries are spread evenly over these (1,2,4,8)")
    add_flag(audit, "--canary-digits")
    audit.add_argument("--replace-canaries", action="store_true", help="the out-dir holds "
                       "canaries.jsonl: draw new canaries as --canaries says (0: none) and drop "
                       "those. Without it, a run keeps them when --canaries, --canary-repeats "
                       "and --canary-digits are theirs, and stops otherwise")
    parser.add_argument("--workers", type=positive_int, default=len(os.sched_getaffinity(0)),
                        help="processes that split the notes into sentences (default: every "
                        "CPU this process may use); the outputs are the same for any number")
    parser.add_argument("--out-dir", type=Path, default=Path("data"), help="output folder (data/)")
    parser.add_argument("--synthetic-dir", type=Path, default=SYNTHETIC_DIR,
                        help="where the built-in synthetic corpus lives (data/synthetic)")
    return parser


def ensure_synthetic(folder: Path) -> dict[str, Path]:
    """The synthetic corpus and its 40/60 patient split, generated on first use (and again
    when an older version of this code made it): 200 training patients, and 300 held-out
    ones, enough for the non-members, a population and the demo reference's own patients,
    apart."""
    files = {
        "noteevents": folder / "NOTEEVENTS.csv.gz",
        "train": folder / "split" / split.TRAIN_FILE,
        "heldout": folder / "split" / split.HELDOUT_FILE,
        "n2c2": folder / "n2c2",
        "n2c2_tar": folder / "n2c2.tar.gz",
        # the name-condition probe's inputs (a corpus made before them is made again: the
        # same notes, byte for byte, and these files beside them)
        "names": folder / "SUBJECT_ID_NAME.csv",
        "diagnoses": folder / "DIAGNOSES_ICD.csv.gz",
        "diagnosis_titles": folder / "D_ICD_DIAGNOSES.csv.gz",
    }
    record = json_text({"patients": SYNTHETIC_PATIENTS, "notes_per_patient": list(SYNTHETIC_NOTES_PER_PATIENT),
                        "train_fraction": SYNTHETIC_TRAIN_FRACTION})
    record_file = folder / "corpus.json"
    if all(p.exists() for p in files.values()) and record_file.is_file() and record_file.read_text() == record:
        return files
    log.info("Generating the synthetic corpus in %s", folder)
    with replaced_dir(folder) as scratch:
        corpus = synthetic.write_corpus(scratch, n_mimic_patients=SYNTHETIC_PATIENTS,
                                        notes_per_patient=SYNTHETIC_NOTES_PER_PATIENT)
        split.split_notes([corpus["noteevents"]], scratch / "split", SYNTHETIC_TRAIN_FRACTION, seed=0)
        (scratch / "corpus.json").write_text(record, encoding="utf-8")
    return files


def unchanged(manifest: dict, flag: str, source: Source) -> bool:
    """Whether the files of the input ``flag`` (``train_notes``, ``heldout_notes``), read
    again as ``source``, still have the SHA-256 that ``manifest`` recorded when the sets
    were drawn from them."""
    return sorted(source.fingerprint().values()) == sorted(manifest["inputs"][flag]["files"].values())


class _Texts:
    """Sentence texts to avoid: sorted hashes plus the texts already sampled."""

    def __init__(self, hashes: np.ndarray):
        self.hashes = hashes
        self.sampled: set[str] = set()

    def __contains__(self, sentence: str) -> bool:
        if sentence in self.sampled:
            return True
        value = np.array([text_hash(sentence)], dtype=np.uint64)
        return bool(sampling.in_sorted(value, self.hashes)[0])


def _draw(name: str, source: Source, eligible: list[str], why: str,
          usable, args: argparse.Namespace, index: int, workers: Workers,
          n_patients: int | None = None,
          n_sentences: int | None = None, exact_patients: bool = True,
          hint: str = "lower --n-sentences, raise --n-patients") -> tuple[list[dict], dict]:
    """One set: ``n_patients`` patients (exactly, unless ``exact_patients`` is false or
    --allow-fewer is given) and ``n_sentences`` usable sentences spread over them."""
    n_patients = args.n_patients if n_patients is None else n_patients
    n_sentences = args.n_sentences if n_sentences is None else n_sentences
    rng = np.random.default_rng([args.seed, index])
    patients, by_patient, passed_over = sampling.draw_patients(
        source, eligible, n_patients, rng, lambda s: usable(s) and not canaries.is_canary(s),
        args.min_chars, name,
        args.allow_fewer or not exact_patients, why, workers)
    picked = sampling.round_robin(patients, by_patient, n_sentences, rng)
    contributing = {p for p, _ in picked}
    if len(contributing) < len(patients) and not args.allow_fewer:
        raise InputError(
            f"{name}: {len(patients) - len(contributing)} of the {len(patients)} sampled patients "
            "have no sentence left that another patient of the set did not already give; "
            "lower --n-patients, or pass --allow-fewer")
    if len(picked) < n_sentences and not args.allow_fewer:
        raise InputError(
            f"{name}: the {len(patients)} sampled patients have only {len(picked)} usable "
            f"sentences in {source.flag} (at least {args.min_chars} characters, distinct, "
            f"not in another set{' or the held-out text' if name == 'members' else ' or the training text'}), "
            f"{n_sentences} asked; {hint}, or pass --allow-fewer")
    records = [{"id": f"{name}-{i:05d}", "set": name, "patient_id": p, "text": s}
               for i, (p, s) in enumerate(picked)]
    summary = {
        "n_sentences": len(records), "n_patients": len({p for p, _ in picked}),
        "n_eligible_patients": len(eligible), "patients": sorted({p for p, _ in picked}),
        "n_passed_over": passed_over,
        "shortfall": {"patients": n_patients - len(contributing),
                      "sentences": n_sentences - len(records)}
        if (len(contributing), len(records)) != (n_patients, n_sentences) else None,
    }
    log.info("%s: %d sentences from %d patients", name, summary["n_sentences"], summary["n_patients"])
    return records, summary


def _resolve_inputs(args: argparse.Namespace, split_stage: Path | None) -> dict[str, str | None]:
    """The training, held-out and n2c2 inputs; with ``--split``, the halves written into
    ``split_stage`` (moved into the split folder only once the whole run succeeds)."""
    given = [args.train_notes, args.heldout_notes, args.n2c2, args.split]
    if args.split and (args.train_notes or args.heldout_notes):
        raise InputError("--split makes the training and held-out halves itself; drop "
                         "--train-notes/--heldout-notes, or drop --split")
    if not any(given):
        files = ensure_synthetic(args.synthetic_dir)
        log.info("No data arguments: using the built-in synthetic corpus in %s "
                 "(not real patient data)", args.synthetic_dir)
        return {"train": str(files["train"]), "heldout": str(files["heldout"]),
                "n2c2": str(files["n2c2"])}
    if args.split:
        files = note_source(args.split, "--split", None).paths  # headers checked here
        summary = split.split_notes(list(files), split_stage, args.train_fraction, args.seed)
        log.info("Split %s by patient: %d training, %d held-out patients, for %s",
                 args.split, summary["n_patients"]["train"], summary["n_patients"]["heldout"],
                 _split_dir(args))
        return {"train": str(split_stage / split.TRAIN_FILE),
                "heldout": str(split_stage / split.HELDOUT_FILE), "n2c2": args.n2c2}
    if not (args.train_notes and args.heldout_notes):
        raise InputError("give both --train-notes and --heldout-notes (or --split NOTES, "
                         "or no data arguments for the synthetic demo)")
    both = set(map(Path.resolve, map(Path, _given(args.train_notes)))) & set(
        map(Path.resolve, map(Path, _given(args.heldout_notes))))
    if both:
        raise InputError(f"--heldout-notes: {sorted(both)[0]} is also in --train-notes; the held-out "
                         "notes (the non-members' patients) must be other notes than the training ones")
    return {"train": args.train_notes, "heldout": args.heldout_notes, "n2c2": args.n2c2}


def _split_dir(args: argparse.Namespace) -> Path:
    return args.split_dir or args.out_dir / "split"


def prepare(args: argparse.Namespace) -> dict:
    """Sample the sets and write them with their manifest; return the manifest. Nothing is
    written unless the whole run succeeds (the split halves included)."""
    if args.n_sentences < args.n_patients:
        raise InputError(f"--n-sentences {args.n_sentences} is fewer than --n-patients "
                         f"{args.n_patients}: every patient of a set gives at least one sentence")
    if args.canaries:
        canaries.check_space(args.canaries, args.canary_digits)
    if args.population_patients is not None and args.population < args.population_patients:
        raise InputError(f"--population {args.population} is fewer than --population-patients "
                         f"{args.population_patients}: every patient gives at least one sentence")
    _check_apart(args)
    with locked_output_dir(args.out_dir, "--out-dir"):
        kept = kept_canaries(args)
        if not args.split:
            return _prepare(args, None, kept)
        split_dir = _split_dir(args)
        remove_stale_staging(split_dir)
        with staging_dir(split_dir, split.FILES) as split_stage:
            return _prepare(args, split_stage, kept)


def _given(pattern: str | None) -> list[str]:
    """The paths an input flag names (a file, a folder or a glob)."""
    return sorted(glob.glob(pattern)) or [pattern] if pattern else []


def _check_apart(args: argparse.Namespace) -> None:
    """The files and folders this run writes are none of those it reads."""
    inputs = {flag: _given(getattr(args, flag[2:].replace("-", "_")))
              for flag in ("--train-notes", "--heldout-notes", "--n2c2", "--split", "--members-from")}
    if not any(inputs.values()):
        inputs["--synthetic-dir"] = [args.synthetic_dir]
    outputs = {"--out-dir": [args.out_dir, *(args.out_dir / name for name in OUTPUTS)]}
    if args.split:
        outputs["--split-dir"] = [_split_dir(args) / name for name in split.FILES]
    check_apart(outputs, inputs)


def kept_canaries(args: argparse.Namespace) -> dict | None:
    """The out-dir's canaries, to be kept as they are (``canaries.jsonl``, the canary
    notes and their manifest record), or None (there are none, or --replace-canaries).
    They are the only record of which canaries the target was trained with: a run that
    would drop them or draw others stops, naming the file."""
    path = args.out_dir / canaries.FILE
    if not path.exists() or args.replace_canaries:
        return None
    manifest = args.out_dir / MANIFEST
    try:
        record = (json.loads(manifest.read_text(encoding="utf-8")).get("canaries") or {}) if manifest.is_file() else {}
    except (ValueError, AttributeError):  # not JSON (cut short, edited), or not a mapping
        raise InputError(f"{manifest}: not a manifest prepare_data_MIA.py wrote, so the canaries in "
                         f"{path} cannot be checked; restore it, or give --replace-canaries to draw "
                         "new ones") from None
    asked = {"n": args.canaries, "repeats": list(args.canary_repeats), "digits": args.canary_digits}
    theirs = {key: record.get(key) for key in asked}
    if asked != theirs or record.get("sha256") != file_sha256(path):
        flags = (f"--canaries {theirs['n']} --canary-repeats {','.join(map(str, theirs['repeats']))} "
                 f"--canary-digits {theirs['digits']}" if record else "the flags that planted them")
        raise InputError(f"{path}: this run would drop or replace the planted canaries (the only record "
                         f"of which went into training); give {flags} to keep them, or pass "
                         "--replace-canaries")
    notes = args.out_dir / canaries.NOTES_FILE
    return {"record": record, "text": path.read_bytes(),
            "notes": notes.read_bytes() if notes.is_file() else None}


def _prepare(args: argparse.Namespace, split_stage: Path | None, kept: dict | None) -> dict:
    with Workers(args.workers) as workers:
        return _sample(args, split_stage, workers, kept)


def _sample(args: argparse.Namespace, split_stage: Path | None, workers: Workers, kept: dict | None) -> dict:
    read = _resolve_inputs(args, split_stage)
    # what the manifest records: the split halves where they will be, not where they are read
    recorded = (lambda path: path) if split_stage is None else (
        lambda path: path.replace(str(split_stage), str(_split_dir(args)), 1))
    inputs = {role: None if path is None else recorded(path) for role, path in read.items()}
    train = note_source(read["train"], "--train-notes", args.splitter)
    heldout = note_source(read["heldout"], "--heldout-notes", args.splitter)
    external = n2c2_source(read["n2c2"], "--n2c2", args.splitter) if read["n2c2"] else None
    seen_text = (training_text_source(args.members_from, "--members-from", args.splitter)
                 if args.members_from else None)

    allowed = sampling.scan(seen_text, args.min_chars, workers=workers).hashes if seen_text else None
    train_scan = sampling.scan(train, args.min_chars, allowed, workers)
    training_hashes = train_scan.hashes if allowed is None else np.union1d(train_scan.hashes, allowed)
    heldout_scan = sampling.scan(heldout, args.min_chars, workers=workers)
    avoid = _Texts(training_hashes)
    members_allowed = _Texts(allowed if allowed is not None else training_hashes)
    heldout_text = _Texts(heldout_scan.hashes)

    # Symmetric exclusion: members never repeat a held-out sentence and non-members never
    # a training sentence, so boilerplate common to both halves is in neither set (else
    # only the members would have it, and the sets would differ in distribution).
    sets, summaries = {}, {}
    eligible = [p for p, n in train_scan.sentence_counts.items() if n > 0]
    sets["members"], summaries["members"] = _draw(
        "members", train, eligible,
        "training patients with a sentence" + (" seen in --members-from" if allowed is not None else ""),
        lambda s: s in members_allowed and s not in heldout_text, args, 0, workers)
    avoid.sampled.update(r["text"] for r in sets["members"])

    eligible_heldout = [p for p, n in heldout_scan.sentence_counts.items()
                        if n > 0 and p not in train_scan.patients]
    sets["non_members"], summaries["non_members"] = _draw(
        "non_members", heldout, eligible_heldout,
        "held-out patients with no note in the training split", lambda s: s not in avoid, args, 1,
        workers)
    avoid.sampled.update(r["text"] for r in sets["non_members"])

    if external is not None:
        external_scan = sampling.scan(external, args.min_chars, workers=workers)
        eligible = [p for p, n in external_scan.sentence_counts.items() if n > 0]
        sets["externals"], summaries["externals"] = _draw(
            "externals", external, eligible, "n2c2 patients with a usable sentence",
            lambda s: s not in avoid, args, 2, workers)
        avoid.sampled.update(r["text"] for r in sets["externals"])

    if args.population:
        taken = set(summaries["non_members"]["patients"])
        eligible = [p for p in eligible_heldout if p not in taken]
        exact = args.population_patients is not None
        sets["population"], summaries["population"] = _draw(
            "population", heldout, eligible,
            "held-out patients outside the training split and the non-members",
            lambda s: s not in avoid, args, 3, workers,
            n_patients=args.population_patients if exact else min(args.population, len(eligible)),
            n_sentences=args.population, exact_patients=exact,
            hint="lower --population, give more held-out notes")

    sources = {"train_notes": train, "heldout_notes": heldout, "n2c2": external,
               "members_from": seen_text}
    manifest = {
        "tool": "mlm_mia prepare_data_MIA.py", "version": __version__, "seed": args.seed,
        # every argument that can change the outputs (--workers cannot)
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items())
                      if k != "workers"},
        "inputs": {name: {"files": {recorded(k): v for k, v in src.fingerprint().items()},
                          "splitter": {recorded(k): v for k, v in src.splitters().items()}}
                   for name, src in sources.items() if src is not None},
        "sets": summaries,
        # the inputs as resolved (the synthetic corpus included), as absolute paths so a
        # run from another folder finds them: shadow models read the whole text of the
        # sets' patients from them
        "sources": {flag: str(Path(inputs[key]).resolve()) if inputs[key] else None
                    for flag, key in (("train_notes", "train"), ("heldout_notes", "heldout"), ("n2c2", "n2c2"))},
        "training_text_sentences": int(training_hashes.size),
    }
    planted = None if kept else _plant_canaries(args, train, [training_hashes, heldout_scan.hashes] + (
        [external_scan.hashes] if external is not None else []), sets,
        train_scan.patients | heldout_scan.patients)
    if planted or kept:
        manifest["canaries"] = kept["record"] if kept else planted[2]
    with staging_dir(args.out_dir, OUTPUTS) as stage:
        for name, records in sets.items():
            (stage / f"{name}.jsonl").write_text(jsonl_text(records), encoding="utf-8")
        if kept:  # as they were, byte for byte
            (stage / canaries.FILE).write_bytes(kept["text"])
            if kept["notes"] is not None:
                (stage / canaries.NOTES_FILE).write_bytes(kept["notes"])
        elif planted:
            (stage / canaries.FILE).write_text(planted[0], encoding="utf-8")
            canaries.write_notes(stage / canaries.NOTES_FILE, planted[1], planted[2]["notes_format"])
        (stage / MANIFEST).write_text(json_text(manifest), encoding="utf-8")
    log.info("Wrote %s to %s", ", ".join(f"{n}.jsonl" for n in sets), args.out_dir)
    return manifest


def _plant_canaries(args: argparse.Namespace, train: Source, corpus_hashes: list[np.ndarray],
                    sets: dict[str, list[dict]], patients: set[str]) -> tuple[str, list[dict], dict] | None:
    """``canaries.jsonl``'s text, the canaries, and the manifest's record of them: texts in
    no note of the corpus and no set, patients apart from the corpus's."""
    if not args.canaries:
        return None
    in_sets = {r["text"] for records in sets.values() for r in records}
    corpus = _Texts(np.unique(np.concatenate(corpus_hashes)))
    planted = canaries.make(args.canaries, args.canary_repeats, args.seed,
                            lambda text: text in in_sets or text in corpus, args.canary_digits)
    clash = sorted({c["patient_id"] for c in planted} & patients)
    if clash:
        raise InputError(f"--canaries: the canary patient id {clash[0]} is a patient of the corpus")
    text = jsonl_text(planted)
    fmt = csv_notes.detect_format(train.paths[0])
    record = {"n": len(planted), "repeats": list(args.canary_repeats), "digits": args.canary_digits,
              "included": sum(c["included"] for c in planted),
              "notes": sum(c["repeats"] for c in planted if c["included"]), "notes_format": fmt,
              "file": canaries.FILE, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    log.info("Planted %d canaries (%d included, %d notes to add to the training data: %s)",
             record["n"], record["included"], record["notes"], canaries.NOTES_FILE)
    return text, planted, record


def main(argv: list[str] | None = None) -> int:
    prepare(build_parser().parse_args(argv))
    return 0
