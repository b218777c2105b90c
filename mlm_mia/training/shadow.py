"""Shadow models for LiRA (Carlini et al. 2022) and memorization (Choi et al. 2023), trained
like the target: the target's architecture (its ``config.json``) and tokenizer, the
target's recipe (``--shadow-recipe``), from scratch or from the checkpoint the target was
continued from (``--shadow-init``), each on a seeded random half of the study
population's *patients*.

Models come in complementary pairs: model ``2j`` trains on a random half ``H_j`` of the
patients, model ``2j + 1`` on the other half. With an even number of models every
sentence is IN for exactly half of them, and model ``i`` is the same whatever the number
of models asked for, so a study with 8 models reuses the 4 of an earlier one.

A shadow's folder holds ``shadow.json``, the record of what it was trained on and how
(recipe, initial weights, tokenizer, patients, data, the halves' seed); a finished shadow
is reused while its record matches, and one trained for other settings is never replaced
without ``--replace-shadows``. A run holds each shadow it uses with a lock (exclusive while
it trains it, shared while it scores with it), and checks the record again where it hashes
and loads the model, so the IN/OUT labels it writes are those of the model it scored.
Training checkpoints into a work folder beside it, so an interrupted shadow resumes where
it stopped.

Longer than most modules (about 330 lines): planning, locking, recording and training
a shadow model check one record, kept together so that no step reads it differently.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..common import columns
from ..engine import models
from ..common.digests import folder_sha256, texts_sha256
from ..common.errors import InputError
from ..common.outputs import held, json_text, replaced_dir
from ..data.prepare import unchanged
from .recipe import Recipe
from ..engine.scoring import ModelDir, ScoreSettings
from ..data.sets import SHADOW_SETS
from ..data.sources import note_source
from ..common.stopwatch import Stopwatch

log = logging.getLogger(__name__)

RECORD_FILE = "shadow.json"
INITS = ("scratch", "tiny")  # or a model folder
# what must agree for a shadow to be "the target's architecture"
ARCHITECTURE = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "vocab_size", "max_position_embeddings")


def patient_halves(patients: Sequence[str], n_models: int, seed: int) -> list[frozenset[str]]:
    """The patients each of ``n_models`` shadow models trains on (complementary pairs)."""
    pool = sorted(set(patients))
    halves = []
    for i in range(n_models):
        order = np.random.default_rng([seed, i // 2]).permutation(len(pool))
        first = frozenset(pool[j] for j in order[: len(pool) // 2])
        halves.append(first if i % 2 == 0 else frozenset(pool) - first)
    return halves


def population_text(data_dir: Path, unit: str = "sentences") -> tuple[list[str], list[str]]:
    """The text of the patients of the members, non-members and population sets, as
    ``(patient ids, texts)`` row by row: their cleaned sentences, or (``unit="notes"``)
    their whole notes, read from the notes the sets were drawn from (named in
    ``manifest.json``): a shadow model trains on the whole text of its patients, as the
    target did on its members' patients.

    The externals (another hospital) are not drawn from the target's population and stay
    OUT of every shadow model."""
    manifest_path = data_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{manifest_path}: not found; shadow models need the manifest that "
                         "prepare_data_MIA.py writes beside the sets") from None
    if "sources" not in manifest:
        raise InputError(f"{manifest_path}: written by an older version, without the input "
                         "notes; run prepare_data_MIA.py again")
    arguments, sources = manifest["arguments"], manifest["sources"]
    patients = {p for name in SHADOW_SETS if name in manifest["sets"]
                for p in manifest["sets"][name]["patients"]}
    ids, texts = [], []
    for flag in ("train_notes", "heldout_notes"):
        if not sources.get(flag):
            continue
        try:
            source = note_source(sources[flag], f"--{flag.replace('_', '-')}", arguments["splitter"])
        except InputError as err:
            raise InputError(f"{err} (named in {manifest_path}: shadow models read the whole "
                             "text of the sets' patients from there)") from None
        if not unchanged(manifest, flag, source):
            raise InputError(f"{sources[flag]}: not the notes the sets were drawn from (its SHA-256 "
                             f"differs from the one {manifest_path} records); draw the sets again "
                             "with prepare_data_MIA.py")
        if unit == "notes":
            rows = ((n.patient_id, n.text) for n, _ in source.notes() if n.patient_id in patients)
        else:
            rows = source.sentences(arguments["min_chars"], patients)
        for patient, text in rows:
            ids.append(patient)
            texts.append(text)
    return ids, texts


def _recorded(path: Path) -> dict | str | None:
    """The record at ``path``: None where there is none, a sentence where it cannot be read."""
    try:
        record = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:  # cut short, not UTF-8, not JSON
        return f"{path} cannot be read as a shadow record ({' '.join(str(err).split())[:80]})"
    return record if isinstance(record, dict) else f"{path} is not a shadow record"


@dataclass(frozen=True)
class Shadow:
    """One shadow model to have: where it lives, what it sees, how it is trained."""

    index: int
    folder: Path
    patients: frozenset[str]
    texts: tuple[str, ...]
    record: dict

    @property
    def work(self) -> Path:
        return self.folder.parent / f".{self.folder.name}.work"

    @property
    def lock(self) -> Path:
        return self.folder.parent / f".{self.folder.name}.lock"

    @property
    def done(self) -> bool:
        return _recorded(self.folder / RECORD_FILE) == self.record

    def conflict(self) -> str | None:
        """What the folder or its work folder holds of other settings or data (a model or a
        partial training, or a record that cannot be read), if anything."""
        for where in (self.folder, self.work):
            found = _recorded(where / RECORD_FILE)
            if isinstance(found, str):
                return found
            if found is None and where == self.folder and where.exists():
                return f"{where} holds no {RECORD_FILE}"
            if found is not None and found != self.record:
                keys = sorted(k for k in found.keys() | self.record.keys() if found.get(k) != self.record.get(k))
                return f"{where} was trained for other settings or data ({RECORD_FILE} differs in {', '.join(keys)})"
        return None

    def check(self) -> None:
        """That the model in the folder is still the one this run planned (another run,
        or a hand, may have trained it again since): called where the model is hashed and
        loaded, so that its scores and its IN/OUT labels belong together."""
        if not self.done:
            raise InputError(f"{self.folder}: changed while this run was using it ({self.conflict() or 'removed'}); "
                             "run again, and give each study its own --shadow-dir")


def claim(shadows: Sequence[Shadow], stack: contextlib.ExitStack, train: bool, replace: bool) -> list[Shadow]:
    """Holds each shadow for the rest of the run (``stack``): shared where it is trained,
    so that no run trains it again while this one scores with it; exclusive where ``train``
    and it must be trained. Returns those to train (without ``train``: those missing). A
    model or partial training of other settings is refused, naming the folder, unless
    ``replace``: it is never deleted silently."""
    missing = []
    for s in shadows:
        s.folder.parent.mkdir(parents=True, exist_ok=True)
        exclusive = train and not s.done
        busy = (f"--shadow-dir {s.folder.parent}: shadow model {s.index} is being trained or used by another "
                "run; wait for it to end, or give another --shadow-dir")
        stack.enter_context(held(s.lock, exclusive, busy))
        if s.done:
            continue
        if train and not exclusive:
            s.check()  # trained when looked at, no longer once held: check says so
        conflict = s.conflict()
        if train and conflict and not replace:
            raise InputError(f"{conflict}; give another --shadow-dir, or --replace-shadows to train it again "
                             "for this run (the model there is deleted)")
        if train and conflict:
            log.warning("Replacing shadow model %d (--replace-shadows): %s", s.index, conflict)
        missing.append(s)
    if shadows:  # tokenized notes that earlier versions kept beside the shadows: nothing reads them
        shutil.rmtree(shadows[0].folder.parent / ".examples", ignore_errors=True)
    return missing


class ShadowModelDir(ModelDir):
    """A shadow's model folder in a scoring run: its record checked again when its files are
    hashed (the key of its cached scores) and when its model is loaded."""

    def __init__(self, planned: Shadow, settings: ScoreSettings, stopwatch: Stopwatch):
        planned.check()
        super().__init__(planned.folder, "--shadow-dir", columns.shadow_name(planned.index), settings, stopwatch)
        self.planned = planned

    @cached_property
    def fingerprint(self) -> str:
        self.planned.check()
        value = ModelDir.fingerprint.func(self)
        self.planned.check()
        return value

    @cached_property
    def loaded(self):
        value = ModelDir.loaded.func(self)
        self.planned.check()
        return value


def init_description(init: str, target: Path) -> tuple[str, dict]:
    """What ``--shadow-init`` names, for the record: ``(kind, config)``, checked against
    the target's architecture (a folder must match it; ``tiny`` differs on purpose) and
    against the target itself (shadows started from its weights have seen every member)."""
    from transformers import AutoConfig
    target_config = AutoConfig.from_pretrained(target, local_files_only=True).to_dict()
    if init == "scratch":
        return "scratch", target_config
    if init == "tiny":
        return "tiny", {}
    folder = models.check_model_dir(init, "--shadow-init")
    config = AutoConfig.from_pretrained(folder, local_files_only=True).to_dict()
    different = {k: (config.get(k), target_config.get(k)) for k in ARCHITECTURE if config.get(k) != target_config.get(k)}
    if different:
        raise InputError(f"--shadow-init {init}: its architecture is not the target's "
                         f"({', '.join(f'{k} {a} vs {b}' for k, (a, b) in different.items())}); give "
                         "the checkpoint the target was trained from, or scratch")
    models.check_weights(folder, "--shadow-init")
    if models.weights_sha256(folder) == models.weights_sha256(target):
        raise InputError(f"--shadow-init {init}: holds the target's own weights, which have seen every "
                         "member: shadows started from them are never OUT; give the checkpoint the target "
                         "was trained from, or scratch")
    return f"folder:{folder_sha256(folder)}", config


def plan(data_dir: Path, n_models: int, target: Path, target_fingerprint: str, recipe: Recipe,
         init: str, out_dir: Path, seed: int) -> list[Shadow]:
    """The ``n_models`` shadows of a run, with the records they must carry (``seed``: the
    halves' seed, ``--shadow-seed``)."""
    init_kind, _ = init_description(init, target)
    patient_ids, texts = population_text(data_dir, recipe.input)
    shadows = []
    for i, half in enumerate(patient_halves(patient_ids, n_models, seed)):
        chosen = tuple(t for p, t in zip(patient_ids, texts) if p in half)
        record = {"index": i, "seed": seed, "train_seed": int(np.random.default_rng([recipe.seed, i, 1]).integers(2**31)),
                  "recipe": recipe.as_dict(), "init": init_kind, "target": target_fingerprint,
                  "n_texts": len(chosen), "texts_sha256": texts_sha256(chosen), "patients": sorted(half)}
        shadows.append(Shadow(i, out_dir / f"shadow_{i:02d}", half, chosen, record))
    return shadows


def _initial_model(init: str, target: Path, tokenizer, train_seed: int):
    from transformers import AutoConfig, AutoModelForMaskedLM

    from .train import TinyShape, new_model
    torch.manual_seed(train_seed)
    if init == "scratch":
        return AutoModelForMaskedLM.from_config(AutoConfig.from_pretrained(target, local_files_only=True))
    if init == "tiny":
        return new_model(tokenizer, TinyShape(), train_seed)
    return AutoModelForMaskedLM.from_pretrained(init, local_files_only=True, trust_remote_code=False)


def train(shadow: Shadow, init: str, target: Path, tokenizer, recipe: Recipe, device: str = "auto",
          callbacks=()) -> None:
    """Train one shadow (resuming from its work folder's checkpoint when the work folder
    belongs to the same record) and put it, with its tokenizer and record, in its folder."""
    from .train import train_mlm

    work_record = shadow.work / RECORD_FILE
    if shadow.work.exists() and _recorded(work_record) != shadow.record:  # replaced: see claim
        shutil.rmtree(shadow.work)
    shadow.work.mkdir(parents=True, exist_ok=True)
    work_record.write_text(json_text(shadow.record), encoding="utf-8")
    log.info("Training shadow model %d on %d %s of %d patients", shadow.index, len(shadow.texts),
             recipe.input, len(shadow.patients))
    model = _initial_model(init, target, tokenizer, shadow.record["train_seed"])
    model = train_mlm(model, tokenizer, shadow.texts, recipe, shadow.work, shadow.record["train_seed"],
                      device, callbacks, stage=f"training {columns.shadow_name(shadow.index)}")
    with replaced_dir(shadow.folder) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        (scratch / RECORD_FILE).write_text(json_text(shadow.record), encoding="utf-8")
    shutil.rmtree(shadow.work, ignore_errors=True)


def architecture_key(target: Path) -> str:
    """What shadows trained like the target depend on: its config and tokenizer files (not
    its weights: a retrained target keeps its shadows)."""
    files = ["config.json", *models.TOKENIZER_FILES, "merges.txt", "tokenizer_config.json",
             "special_tokens_map.json"]
    return texts_sha256(f"{name}\0{(target / name).read_text(encoding='utf-8', errors='replace')}"
                        for name in files if (target / name).is_file())


def differences(shadow_folder: Path, target: Path) -> dict[str, list]:
    """Where a shadow model's architecture differs from the target's (empty: the same)."""
    load = lambda folder: json.loads((folder / "config.json").read_text(encoding="utf-8"))  # noqa: E731
    mine, theirs = load(shadow_folder), load(target)
    return {k: [mine.get(k), theirs.get(k)] for k in ARCHITECTURE if mine.get(k) != theirs.get(k)}


def train_in_child(argv: Sequence[str], indices: Sequence[int], local_rank: int) -> None:
    """Train the shadows ``indices`` in a child process (``score_MIA.py ARGV --shadow-index
    ...``) whose environment is free of torchrun's: a rank of a scoring run trains its
    own shadows, each on its own device, never as one distributed job."""
    env = {k: v for k, v in os.environ.items() if k not in (
        "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
        "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE", "TORCHELASTIC_RUN_ID")}
    if torch.cuda.is_available():
        env["CUDA_VISIBLE_DEVICES"] = str(local_rank)
    script = Path(__file__).resolve().parents[2] / "score_MIA.py"
    result = subprocess.run([sys.executable, str(script), *argv, "--shadow-index",
                             ",".join(map(str, indices))], env=env, capture_output=True, text=True)
    if result.returncode:
        lines = result.stderr.strip().splitlines()
        raise InputError(f"training shadow models {list(indices)} failed: {lines[-1] if lines else result.returncode}")
