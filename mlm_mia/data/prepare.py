"""prepare_data_MIA.py: sample the members, non-members and externals sentence sets."""

from __future__ import annotations

import dataclasses
import glob
import logging
from pathlib import Path

import numpy as np

from .. import __version__
from . import planting, sampling, split, synthetic
from ..settings.prepare import PrepareSettings
from ..common.errors import InputError
from ..common.outputs import (check_apart, json_text, jsonl_text, locked_output_dir, remove_stale_staging,
    replaced_dir, staging_dir)
from .sets import SET_NAMES
from .sources import Source, n2c2_source, note_source, training_text_source
from ..common.stopwatch import Stopwatch
from ..common.workers import Workers

log = logging.getLogger(__name__)

SYNTHETIC_PATIENTS = 500
# 3 or 4 notes (about 47 sentences) per patient: enough for sets of 1000 sentences from 90
# patients, and little enough that the demo trains its target and 8 shadow models like it
# on 2 CPU cores within minutes
SYNTHETIC_NOTES_PER_PATIENT = (3, 5)
SYNTHETIC_TRAIN_FRACTION = 0.4
MANIFEST = "manifest.json"
# what a run writes; the canary files too, so that a run that replaces canaries by none
# (--replace-canaries) leaves no older ones
OUTPUTS = tuple(f"{name}.jsonl" for name in SET_NAMES) + (MANIFEST, *planting.FILES)


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


def _resolve_inputs(settings: PrepareSettings, split_stage: Path | None) -> dict[str, str | None]:
    """The training, held-out and n2c2 inputs; with ``--split``, the halves written into
    ``split_stage`` (moved into the split folder only once the whole run succeeds)."""
    if settings.synthetic:
        files = ensure_synthetic(settings.synthetic_dir)
        log.info("No data arguments: using the built-in synthetic corpus in %s "
                 "(not real patient data)", settings.synthetic_dir)
        return {"train": str(files["train"]), "heldout": str(files["heldout"]),
                "n2c2": str(files["n2c2"])}
    if settings.split:
        files = note_source(settings.split, "--split", None).paths  # headers checked here
        summary = split.split_notes(list(files), split_stage, settings.train_fraction, settings.seed)
        log.info("Split %s by patient: %d training, %d held-out patients, for %s",
                 settings.split, summary["n_patients"]["train"], summary["n_patients"]["heldout"],
                 settings.split_folder)
        return {"train": str(split_stage / split.TRAIN_FILE),
                "heldout": str(split_stage / split.HELDOUT_FILE), "n2c2": settings.n2c2}
    if not (settings.train_notes and settings.heldout_notes):
        raise InputError("give both --train-notes and --heldout-notes (or --split NOTES, "
                         "or no data arguments for the synthetic demo)")
    both = set(map(Path.resolve, map(Path, _given(settings.train_notes)))) & set(
        map(Path.resolve, map(Path, _given(settings.heldout_notes))))
    if both:
        raise InputError(f"--heldout-notes: {sorted(both)[0]} is also in --train-notes; the held-out "
                         "notes (the non-members' patients) must be other notes than the training ones")
    return {"train": settings.train_notes, "heldout": settings.heldout_notes, "n2c2": settings.n2c2}


def prepare_sets(settings: PrepareSettings, watch: Stopwatch | None = None) -> dict:
    """Sample the sets and write them with their manifest; return the manifest. Nothing is
    written unless the whole run succeeds (the split halves included). Timed in ``watch``."""
    watch = watch or Stopwatch()
    _check_apart(settings)
    with locked_output_dir(settings.out_dir, "--out-dir"):
        kept = planting.kept(settings, settings.out_dir / MANIFEST)
        if not settings.split:
            return _prepare(settings, None, kept, watch)
        split_dir = settings.split_folder
        remove_stale_staging(split_dir)
        with staging_dir(split_dir, split.FILES) as split_stage:
            return _prepare(settings, split_stage, kept, watch)


def _given(pattern: str | None) -> list[str]:
    """The paths an input flag names (a file, a folder or a glob)."""
    return sorted(glob.glob(pattern)) or [pattern] if pattern else []


def _check_apart(settings: PrepareSettings) -> None:
    """The files and folders this run writes are none of those it reads."""
    inputs = {flag: _given(getattr(settings, flag[2:].replace("-", "_")))
              for flag in ("--train-notes", "--heldout-notes", "--n2c2", "--split", "--members-from")}
    if not any(inputs.values()):
        inputs["--synthetic-dir"] = [settings.synthetic_dir]
    outputs = {"--out-dir": [settings.out_dir, *(settings.out_dir / name for name in OUTPUTS)]}
    if settings.split:
        outputs["--split-dir"] = [settings.split_folder / name for name in split.FILES]
    check_apart(outputs, inputs)


def _prepare(settings: PrepareSettings, split_stage: Path | None, kept: dict[str, dict | None],
             watch: Stopwatch) -> dict:
    with Workers(settings.workers) as workers, watch.stage("drawing sets"):  # less its inner stages
        return _sample(settings, split_stage, workers, kept, watch)


def _sample(settings: PrepareSettings, split_stage: Path | None, workers: Workers,
            kept: dict[str, dict | None], watch: Stopwatch) -> dict:
    """Draw the sets, plant the canaries and canary patients not ``kept`` (keyed by their
    manifest key), and write them all."""
    with watch.stage("reading notes"):
        read = _resolve_inputs(settings, split_stage)
        # what the manifest records: the split halves where they will be, not where they are read
        recorded = (lambda path: path) if split_stage is None else (
            lambda path: path.replace(str(split_stage), str(settings.split_folder), 1))
        inputs = {role: None if path is None else recorded(path) for role, path in read.items()}
        train = note_source(read["train"], "--train-notes", settings.splitter)
        heldout = note_source(read["heldout"], "--heldout-notes", settings.splitter)
        external = n2c2_source(read["n2c2"], "--n2c2", settings.splitter) if read["n2c2"] else None
        seen_text = (training_text_source(settings.members_from, "--members-from", settings.splitter)
                     if settings.members_from else None)

        allowed = sampling.scan(seen_text, settings.min_chars, workers=workers).hashes if seen_text else None
        train_scan = sampling.scan(train, settings.min_chars, allowed, workers)
        training_hashes = train_scan.hashes if allowed is None else np.union1d(train_scan.hashes, allowed)
        heldout_scan = sampling.scan(heldout, settings.min_chars, workers=workers)
    avoid = sampling.Texts(training_hashes)
    members_allowed = sampling.Texts(allowed if allowed is not None else training_hashes)
    heldout_text = sampling.Texts(heldout_scan.hashes)

    # Symmetric exclusion: members never repeat a held-out sentence and non-members never
    # a training sentence, so boilerplate common to both halves is in neither set (else
    # only the members would have it, and the sets would differ in distribution).
    sets, summaries = {}, {}
    eligible = [p for p, n in train_scan.sentence_counts.items() if n > 0]
    sets["members"], summaries["members"] = sampling.draw_set(
        "members", train, eligible,
        "training patients with a sentence" + (" seen in --members-from" if allowed is not None else ""),
        lambda s: s in members_allowed and s not in heldout_text, settings, 0, workers)
    avoid.sampled.update(r["text"] for r in sets["members"])

    eligible_heldout = [p for p, n in heldout_scan.sentence_counts.items()
                        if n > 0 and p not in train_scan.patients]
    sets["non_members"], summaries["non_members"] = sampling.draw_set(
        "non_members", heldout, eligible_heldout,
        "held-out patients with no note in the training split", lambda s: s not in avoid, settings, 1,
        workers)
    avoid.sampled.update(r["text"] for r in sets["non_members"])

    if external is not None:
        external_scan = sampling.scan(external, settings.min_chars, workers=workers)
        eligible = [p for p, n in external_scan.sentence_counts.items() if n > 0]
        sets["externals"], summaries["externals"] = sampling.draw_set(
            "externals", external, eligible, "n2c2 patients with a usable sentence",
            lambda s: s not in avoid, settings, 2, workers)
        avoid.sampled.update(r["text"] for r in sets["externals"])

    if settings.population:
        taken = set(summaries["non_members"]["patients"])
        eligible = [p for p in eligible_heldout if p not in taken]
        exact = settings.population_patients is not None
        sets["population"], summaries["population"] = sampling.draw_set(
            "population", heldout, eligible,
            "held-out patients outside the training split and the non-members",
            lambda s: s not in avoid, settings, 3, workers,
            n_patients=settings.population_patients if exact else min(settings.population, len(eligible)),
            n_sentences=settings.population, exact_patients=exact,
            hint="lower --population, give more held-out notes")

    sources = {"train_notes": train, "heldout_notes": heldout, "n2c2": external,
               "members_from": seen_text}
    manifest = {
        "tool": "mlm_mia prepare_data_MIA.py", "version": __version__, "seed": settings.seed,
        # every argument that can change the outputs (--workers cannot)
        "arguments": {k: (str(v) if isinstance(v, Path) else v)
                      for k, v in sorted(dataclasses.asdict(settings).items()) if k != "workers"},
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
    planted = planting.plant(settings, train, [training_hashes, heldout_scan.hashes] + (
        [external_scan.hashes] if external is not None else []), sets,
        train_scan.patients | heldout_scan.patients, kept)
    with watch.stage("writing sets"), staging_dir(settings.out_dir, OUTPUTS) as stage:
        for name, records in sets.items():
            (stage / f"{name}.jsonl").write_text(jsonl_text(records), encoding="utf-8")
        planting.record_and_write(stage, manifest, kept, planted)
        (stage / MANIFEST).write_text(json_text(manifest), encoding="utf-8")
    log.info("Wrote %s to %s", ", ".join(f"{n}.jsonl" for n in sets), settings.out_dir)
    return manifest
