"""Shadow models for LiRA (Carlini et al. 2022) and memorization (Choi et al. 2023): small
RoBERTa MLMs, each trained on a seeded random half of the study population's *patients*.

Models come in complementary pairs: model ``2j`` trains on a random half ``H_j`` of the
patients, model ``2j + 1`` on the other half. With an even number of models every
sentence is IN for exactly half of them, and model ``i`` is the same whatever the number
of models asked for, so a study with 8 models reuses the 4 of an earlier one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
from transformers import PreTrainedTokenizerBase

from .errors import InputError
from .digests import texts_sha256
from .outputs import json_text, replaced_dir
from .sets import SHADOW_SETS
from .sources import note_source
from .train import TinyShape, train_tiny_mlm

log = logging.getLogger(__name__)

RECORD_FILE = "shadow.json"


def patient_halves(patients: Sequence[str], n_models: int, seed: int) -> list[frozenset[str]]:
    """The patients each of ``n_models`` shadow models trains on (complementary pairs)."""
    pool = sorted(set(patients))
    halves = []
    for i in range(n_models):
        order = np.random.default_rng([seed, i // 2]).permutation(len(pool))
        first = frozenset(pool[j] for j in order[: len(pool) // 2])
        halves.append(first if i % 2 == 0 else frozenset(pool) - first)
    return halves


def population_text(data_dir: Path) -> tuple[list[str], list[str]]:
    """Every sentence (patient id, text) of the patients of the members, non-members and
    (RMIA's) population sets, read from the notes the sets were drawn from, as named in
    ``manifest.json``: a shadow model trains on the whole text of its patients, as the
    target did on its members' patients.

    The externals (another hospital) are not drawn from the target's population and stay
    OUT of every shadow model. On the demo, each shadow model trains on 145 patients'
    notes, close to the target's 200 (closer shadows calibrate LiRA better: with only the
    members' and non-members' 90 per model, LiRA-offline's AUC fell from 0.63 to 0.57)."""
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
        if sources.get(flag):
            try:
                source = note_source(sources[flag], f"--{flag.replace('_', '-')}", arguments["splitter"])
            except InputError as err:
                raise InputError(f"{err} (named in {manifest_path}: shadow models read the whole "
                                 "text of the sets' patients from there)") from None
            for patient, sentence in source.sentences(arguments["min_chars"], patients):
                ids.append(patient)
                texts.append(sentence)
    return ids, texts


def train_shadow_models(patient_ids: Sequence[str], texts: Sequence[str], n_models: int,
                        tokenizer: PreTrainedTokenizerBase, tokenizer_fingerprint: str,
                        out_dir: Path, epochs: int, seed: int, shape: TinyShape = TinyShape()
                        ) -> list[tuple[Path, frozenset[str]]]:
    """Train (or reuse) ``n_models`` shadow models with ``tokenizer`` on the sentences
    ``texts`` of the patients ``patient_ids`` (row by row; see :func:`population_text`);
    returns each model's folder and the patients it saw. Each folder's ``shadow.json``
    records what it was trained on, patients included, and ``tokenizer_fingerprint`` (the
    caller's hash of the folder the tokenizer came from); a folder whose record differs from
    what would be trained now is trained again."""
    halves = patient_halves(patient_ids, n_models, seed)
    result = []
    for i, half in enumerate(halves):
        chosen = [t for p, t in zip(patient_ids, texts) if p in half]
        init_seed = int(np.random.default_rng([seed, i, 1]).integers(2**31))
        record = {"index": i, "seed": seed, "init_seed": init_seed, "epochs": epochs,
                  "shape": asdict(shape), "tokenizer": tokenizer_fingerprint,
                  "n_sentences": len(chosen), "texts_sha256": texts_sha256(chosen),
                  "patients": sorted(half)}
        folder = out_dir / f"shadow_{i:02d}"
        record_file = folder / RECORD_FILE
        if not (record_file.exists() and json.loads(record_file.read_text(encoding="utf-8")) == record):
            log.info("Training shadow model %d/%d on %d sentences of %d patients (%d epochs)",
                     i + 1, n_models, len(chosen), len(half), epochs)
            with replaced_dir(folder) as scratch:
                train_tiny_mlm(chosen, scratch, tokenizer, epochs=epochs, seed=init_seed, shape=shape)
                (scratch / RECORD_FILE).write_text(json_text(record), encoding="utf-8")
        result.append((folder, half))
    return result
