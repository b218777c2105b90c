"""``score_MIA.py --demo``: sets drawn from the built-in synthetic corpus and two tiny
RoBERTa models trained on it here (a target, and a reference that saw none of the sets),
made once and kept in the data folder."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path

from ..data import canaries, canary_patients, prepare as prepare_sets
from . import recipe as recipe_module
from ..common.errors import InputError
from ..common.outputs import json_text, replaced_dir
from ..common.stopwatch import Stopwatch
from .recipe import Recipe
from ..data.sources import note_source
from ..settings.prepare import SYNTHETIC_DIR, PrepareSettings

log = logging.getLogger(__name__)

POPULATION = 1000
POPULATION_PATIENTS = 110


def _train_model(folder: Path, texts: list[str], tokenizer_dir: Path, recipe: Recipe) -> None:
    """Train the demo model ``folder`` is named after."""
    from transformers import RobertaTokenizerFast

    from .train import train_tiny_mlm

    with replaced_dir(folder) as scratch:
        tokenizer = RobertaTokenizerFast.from_pretrained(tokenizer_dir)
        train_tiny_mlm(texts, scratch, tokenizer, recipe, seed=recipe.seed, stage=f"training {folder.name}")


def target_texts(data_dir: Path) -> list[str]:
    """What the demo's target trains on: the sentences of the synthetic training split of
    the sets in ``data_dir``, each included canary as often as its repeats, and every note
    of the included canary patients (one sentence each)."""
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    train_file = Path(manifest["arguments"]["synthetic_dir"]) / "split" / "train_notes.csv.gz"
    texts = [s for _, s in note_source(str(train_file), "train", None).sentences(20)]
    if (data_dir / canaries.FILE).exists():
        texts += [c["text"] for c in canaries.load(data_dir / canaries.FILE, set(), set())
                  for _ in range(c["repeats"]) if c["included"]]
    if (data_dir / canary_patients.FILE).exists():
        texts += [note["text"] for p in canary_patients.load(data_dir / canary_patients.FILE, set(), set())
                  if p["included"] for note in p["notes"]]
    return texts


def _drawn_from_the_corpus(manifest: dict, n_canaries: int, n_canary_patients: int = 0) -> bool:
    """Whether the sets of ``manifest`` were drawn, with ``n_canaries`` canaries and
    ``n_canary_patients`` canary patients, from the synthetic corpus as it is now (a corpus
    made again by newer code is another corpus)."""
    sources = manifest.get("sources") or {}
    if ((manifest.get(canaries.KEY) or {}).get("n", 0), (manifest.get(canary_patients.KEY) or {}).get("n", 0)
            ) != (n_canaries, n_canary_patients):
        return False
    return all(sources.get(flag) and Path(sources[flag]).exists()
               and prepare_sets.unchanged(manifest, flag, note_source(sources[flag], flag, None))
               for flag in ("train_notes", "heldout_notes"))


def name_probe_files() -> tuple[Path, Path, Path]:
    """The synthetic corpus's inputs of ``--name-probe``: the diagnoses, their titles and
    the patients' names."""
    files = prepare_sets.ensure_synthetic(SYNTHETIC_DIR)
    return files["diagnoses"], files["diagnosis_titles"], files["names"]


def prepare(data_dir: Path, n_canaries: int, watch: Stopwatch, n_canary_patients: int = 0
            ) -> tuple[Path, list[Path]]:
    """Sets from the synthetic corpus in ``data_dir`` and the two tiny models, made once
    and kept there (timed in ``watch``); returns the target's folder and the reference's,
    as a list."""
    with watch.stage("demo data"):
        manifest = _sets(data_dir, n_canaries, n_canary_patients)
    with watch.stage("training"):
        return _models(data_dir, manifest)


def _sets(data_dir: Path, n_canaries: int, n_canary_patients: int) -> dict:
    """The manifest of the demo's sets in ``data_dir``, drawn there unless they are."""
    manifest_path = data_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    if manifest and (manifest["arguments"]["train_notes"] or manifest["arguments"]["split"]):
        raise InputError(f"--demo: {data_dir} holds sets of real inputs; give the demo its "
                         "own --data-dir")
    prepare_sets.ensure_synthetic(SYNTHETIC_DIR)
    if not _drawn_from_the_corpus(manifest, n_canaries, n_canary_patients):
        prepare_sets.prepare_sets(PrepareSettings(
            out_dir=data_dir, population=POPULATION, population_patients=POPULATION_PATIENTS,
            canaries=n_canaries, canary_patients=n_canary_patients, replace_canaries=True))
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return manifest


def _models(data_dir: Path, manifest: dict) -> tuple[Path, list[Path]]:
    """The demo's target and reference for the sets of ``manifest``, trained unless they are."""
    from .train import train_tokenizer

    heldout_file = Path(manifest["arguments"]["synthetic_dir"]) / "split" / "heldout_notes.csv.gz"
    folder = data_dir / "models"
    target, reference = folder / "target", folder / "reference"
    # models are tied to the sets (the reference must not have seen the non-members), to
    # the canaries planted in the target's training data and to the notes they train on
    stamp = folder / "sets.sha256"
    sets_digest = hashlib.sha256(json_text([manifest["sets"], manifest.get("canaries"), manifest["inputs"]]
                                           + ([manifest[canary_patients.KEY]] if canary_patients.KEY in manifest
                                              else [])).encode()).hexdigest()
    if folder.exists() and not (stamp.exists() and stamp.read_text().strip() == sets_digest):
        log.info("The sets or their notes changed since the demo models were trained: training them again")
        shutil.rmtree(folder)
    if not (target.exists() and reference.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        train_texts = target_texts(data_dir)
        # neither the non-members nor the population (the per-patient test's null, RMIA's
        # population): the reference must be a model that saw none of the sets
        excluded = {p for name in ("non_members", "population") for p in manifest["sets"][name]["patients"]}
        population = [s for p, s in note_source(str(heldout_file), "heldout", None).sentences(20)
                      if p not in excluded]
        tokenizer_dir = folder / "tokenizer"
        # The reference follows the target's recipe (same initialisation, same number of
        # optimisation steps) on held-out patients outside the sets, so the two models differ
        # in what they saw and little else.
        recipe = recipe_module.load(recipe_module.DEMO_RECIPE, "recipe")
        reference_recipe = dataclasses.replace(
            recipe, epochs=max(1.0, round(recipe.epochs * len(train_texts) / len(population))))
        log.info("Training the demo tokenizer and two tiny RoBERTa models (%s): target on %d "
                 "sentences x %g epochs, reference on %d sentences x %g epochs", recipe_module.DEMO_RECIPE.name,
                 len(train_texts), recipe.epochs, len(population), reference_recipe.epochs)
        train_tokenizer(train_texts + population, tokenizer_dir)
        if not target.exists():
            _train_model(target, train_texts, tokenizer_dir, recipe)
        if not reference.exists():
            _train_model(reference, population, tokenizer_dir, reference_recipe)
        stamp.write_text(sets_digest + "\n")
    return target, [reference]
