"""What a study will do, settled before any model runs: its files apart and its recipe
readable, the sets and canaries read under the data folder's lock, the model folders
checked, and the attacks that can run."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import attacks
from ..common import columns
from ..common.errors import InputError
from ..common.outputs import check_apart, held
from ..common.stopwatch import Stopwatch
from ..data import canaries, canary_patients
from ..data.sets import load_sets, sets_digest
from ..engine import distributed, models, neighbours
from ..engine.cache import TextCache
from ..engine.scoring import ModelDir, ScoreSettings
from ..settings.study import PROBE_FILES, StudySettings
from ..stats import evaluation
from . import name_probe
from .canaries import load_canaries, with_canaries
from .outputs import OUTPUTS
from .shadows import shadow_recipe

log = logging.getLogger(__name__)


def check_paths(settings: StudySettings) -> None:
    """What the settings name on disk, before any work: the shadow recipe readable, the
    data folder a folder, and no output over an input."""
    if settings.shadow_models:
        shadow_recipe(settings)  # a bad recipe stops the run before any work
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        raise InputError(f"--data-dir {settings.data_dir}: not a folder")
    given = {"--data-dir": [settings.data_dir], "--target": [settings.target], "--reference": settings.reference,
             "--shadow-dir": [settings.shadow_dir], "--shadow-recipe": [settings.shadow_recipe],
             "--neighbour-model": [settings.neighbour_model],
             **{flag: [getattr(settings, name)] for flag, name in PROBE_FILES.items()}}
    check_apart({"--out-dir": [settings.out_dir, *(settings.out_dir / name for name in OUTPUTS)]},
                {flag: [p for p in paths or () if p is not None] for flag, paths in given.items()})


def data_lock(settings: StudySettings, exclusive: bool) -> contextlib.AbstractContextManager:
    """The data folder held for the run: shared while it reads the sets, so that
    prepare_data_MIA.py, which holds it exclusively while it writes them, cannot draw other
    sets under it (either stops at once); exclusive while the demo makes its sets and models."""
    return held(settings.data_dir, exclusive, f"--data-dir {settings.data_dir}: " + (
        "another run is using it" if exclusive else "prepare_data_MIA.py or a demo is writing the sets there")
        + "; wait for it to end")


def reference_names(paths: tuple[Path, ...]) -> list[str]:
    """``reference`` for one reference; ``reference_<folder name>`` for several."""
    if len(paths) == 1:
        return ["reference"]
    names = [f"reference_{p.resolve().name}" for p in paths]
    if len(set(names)) < len(names):
        names = [f"reference_{i + 1}" for i in range(len(paths))]
    return names


@dataclass
class Plan:
    """The sets (canaries appended), what the scoring needs and the attacks that run."""

    sets: pd.DataFrame
    sets_sha256: dict
    planted: list[dict]
    planted_patients: list[dict]
    n_alternatives: int
    alternatives: list[str]  # the canaries' alternative secrets, scored for their exposure
    engine: ScoreSettings
    references: list[str]
    model_dirs: list[ModelDir]  # the target, then the references
    runnable: list[attacks.Attack]
    left_out: dict
    neighbour_dir: ModelDir | None  # the masked LM that makes the neighbours
    neighbour_cache: TextCache | None  # None: the neighbourhood attack does not run
    name_probe: name_probe.Plan | None  # None: no --name-probe


def plan_study(settings: StudySettings, ranks: distributed.Ranks, watch: Stopwatch,
               holds: contextlib.ExitStack) -> Plan:
    """Read the sets (the data folder held shared in ``holds``), check every model folder
    and choose the attacks, before any model runs."""
    if settings.data_dir.is_dir():
        holds.enter_context(data_lock(settings, False))
    sets = load_sets(settings.data_dir)
    sets_sha256 = sets_digest(settings.data_dir)  # of the files as read, under the lock
    compared = sets[sets["set"].isin({s for pair in evaluation.COMPARISONS.values() for s in pair})]
    for name, n in compared.groupby("set")["patient_id"].nunique().items():
        if n < 2:  # the text-only check's folds and the intervals resample patients
            raise InputError(f"{settings.data_dir / f'{name}.jsonl'}: sentences of {n} patient; every "
                             "set needs at least 2 patients (prepare_data_MIA.py --n-patients 2 or more)")
    probe = name_probe.plan(sets, settings) if settings.name_probe else None
    planted = load_canaries(settings.data_dir, sets)
    planted_patients = load_canaries(settings.data_dir, sets, canary_patients)
    sets = with_canaries(sets, planted, planted_patients)
    n_alternatives = canaries.alternatives_count(planted, settings.exposure_alternatives)
    alternatives = [text for c in planted for text in canaries.alternatives(
        c, n_alternatives, settings.seed, len(c["secret"]))]
    device = distributed.rank_device(settings.device, ranks)
    engine = ScoreSettings(pll=settings.pll, backend=settings.backend, device=device, dtype=settings.dtype,
                           batch_tokens=settings.batch_tokens or models.default_batch_tokens(
                               models.resolve_device(device)),
                           compile=settings.compile, progress=ranks.main)
    references = reference_names(settings.reference)
    # every given folder checked before any work starts
    model_dirs = [ModelDir(settings.target, "--target", columns.TARGET, engine, watch)] + [
        ModelDir(path, "--reference", name, engine, watch) for name, path in zip(references, settings.reference)]
    for reference in model_dirs[1:]:
        if reference.fingerprint == model_dirs[0].fingerprint:
            log.warning("WARNING: --reference %s holds the same model as --target: its "
                        "likelihood ratio is 0 for every sentence", reference.path)
    available = {"reference"} if references else set()
    available |= {"shadows"} if settings.shadow_models else set()
    available |= {"population"} if (sets["set"] == "population").any() else set()
    available |= {"distribution_stats"} if settings.backend == "engine" else set()
    available |= {"neighbours"} if settings.neighbours else set()
    available |= {"neighbour_model"} if settings.neighbour_model else set()
    neighbour_dir = (ModelDir(settings.neighbour_model, "--neighbour-model", "neighbour_model", engine, watch)
                     if settings.neighbour_model else next(iter(model_dirs[1:]), None))
    runnable, left_out = attacks.plan(available)
    neighbour_cache = None
    if any(a.name == "ne" for a in runnable):  # in the data folder: the neighbours are note text
        neighbour_cache = holds.enter_context(neighbours.cache_for(settings.data_dir, settings.no_cache))
    return Plan(sets, sets_sha256, planted, planted_patients, n_alternatives, alternatives, engine, references, model_dirs,
                runnable, left_out, neighbour_dir, neighbour_cache, probe)
