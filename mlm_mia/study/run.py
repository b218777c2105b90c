"""One study, as score_MIA.py runs it: plan, (the demo's data), models, scores, attacks,
statistics, outputs. :func:`run_study` is the entry point for notebooks and pipelines."""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import attacks
from ..common import columns
from ..common.outputs import locked_output_dir
from ..common.stopwatch import Stopwatch
from ..attacks import neighbourhood
from ..engine import distributed, neighbours
from ..engine.cache import ScoreCache
from ..settings.study import StudySettings
from ..stats import evaluation, validity
from ..training import demo, shadow
from . import name_probe
from .context import run_context
from .canaries import add_canary_columns, add_canary_patient_columns
from .outputs import check_not_another_run, most_exposed, write_outputs
from .plan import check_paths, data_lock, plan_study
from .record import run_record
from .scoring import score_models
from .shadows import plan_shadows, train_shadows

log = logging.getLogger(__name__)


@dataclass
class Results:
    """What a study found: metrics.json's content, the scores table (scores.csv), the
    per-patient tests (patients.csv, with a population), settings.json's content and the
    name-condition probe's scores (name_probe.csv).
    Empty on the ranks of ``torchrun`` other than 0 and for a ``--shadow-index`` job."""

    metrics: dict = field(default_factory=dict)
    table: pd.DataFrame | None = None
    patients: pd.DataFrame | None = None
    record: dict = field(default_factory=dict)
    left_out: dict = field(default_factory=dict)  # attack -> what it needs
    out_dir: Path | None = None
    seconds: str = ""  # the time each stage took
    name_probe: pd.DataFrame | None = None  # name_probe.csv, with --name-probe


def run_study(settings: StudySettings) -> Results:
    """Score the sets under the models, run the attacks, compute the statistics and write
    them into ``settings.out_dir``."""
    ranks = distributed.init(settings.device)
    try:
        return _run(settings, ranks)
    finally:
        distributed.finish(ranks)


def _run(settings: StudySettings, ranks: distributed.Ranks) -> Results:
    check_paths(settings)
    # rank 0 alone writes (a --shadow-index job writes shadow models only); the out-dir and
    # the cache are checked before any work
    writes = ranks.main and settings.shadow_index is None
    out = locked_output_dir(settings.out_dir, "--out-dir") if writes else contextlib.nullcontext()
    identity = settings.identity()  # as given: the demo's models are its own
    watch = Stopwatch()
    with out, ScoreCache(None if settings.no_cache else settings.cache_dir / "pll.sqlite") as cache, \
            contextlib.ExitStack() as holds:
        if settings.demo:
            settings = _demo_models(settings, ranks, watch, identity)
        # the demo checked the out-dir under the data folder's lock, before it trained
        return _study(settings, ranks, cache, holds, identity, watch, writes and not settings.demo)


def _demo_models(settings: StudySettings, ranks: distributed.Ranks, watch: Stopwatch,
                 identity: dict) -> StudySettings:
    """The settings with the demo's target and reference, its sets and models made (once)
    in the data folder; the out-dir checked for another run's results before they are."""
    if ranks.main:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # a shadow job that torchrun's rank started finds the sets made, and its rank holding them
        with data_lock(settings, True) if settings.shadow_index is None else contextlib.nullcontext():
            if settings.shadow_index is None:  # the data folder's own check first, then before training
                check_not_another_run(settings, identity)
            target, references = demo.prepare(settings.data_dir, settings.canaries, watch, settings.canary_patients)
    distributed.barrier(ranks)
    if not ranks.main:
        target, references = demo.prepare(settings.data_dir, settings.canaries, watch, settings.canary_patients)
    return settings.replace(target=target, reference=tuple(references))


def _study(settings: StudySettings, ranks: distributed.Ranks, cache: ScoreCache,
           holds: contextlib.ExitStack, identity: dict, watch: Stopwatch, check_out_dir: bool) -> Results:
    """The pipeline, the data folder and the shadow models held in ``holds`` until the
    outputs are written (timed in ``watch``); the out-dir checked for another run's results
    after the inputs' own checks, before any work, where ``check_out_dir``."""
    with watch.stage("checks"):
        plan = plan_study(settings, ranks, watch, holds)
        shadow_plan = plan_shadows(settings, ranks, plan.model_dirs[0], holds) if settings.shadow_models else None
        if check_out_dir:
            check_not_another_run(settings, identity)
    shadows = train_shadows(shadow_plan, settings, ranks, plan.model_dirs[0], watch, holds) if shadow_plan else []
    if settings.shadow_index is not None:
        log.info("Shadow models %s are trained; a run without --shadow-index scores with them",
                 ",".join(map(str, settings.shadow_index)))
        log.info("Seconds: %s", watch.summary())
        return Results()
    halves = {}
    for s in shadows:  # the IN/OUT labels of the record checked where each model is hashed and loaded
        plan.model_dirs.append(shadow.ShadowModelDir(s, plan.engine, watch))
        halves[columns.shadow_name(s.index)] = (s.index, s.patients)
    scored = score_models(plan.model_dirs, plan.sets, halves, attacks.probe_requests(plan.runnable), plan.engine,
                          cache, settings, ranks, plan.alternatives)
    if plan.neighbour_cache is not None:
        with watch.stage("neighbours"):
            neighbour_values = neighbours.neighbour_plls(
                plan.neighbour_dir, plan.model_dirs[0], plan.sets["text"].tolist(), settings.neighbours,
                settings.seed, plan.engine, cache, plan.neighbour_cache, ranks)
        scored.features |= dict(zip((neighbourhood.PLL, neighbourhood.N_TOKENS), neighbour_values))
    if not ranks.main:
        return Results()
    with watch.stage("attacks"):
        inputs = attacks.Inputs(scored.table, plan.sets["text"].tolist(), plan.references, scored.target_tokens,
                                settings.backend == "engine", attacks.Settings(
                                    reduction=settings.reduction, min_k_fraction=settings.min_k_fraction,
                                    rmia_offline_a=settings.rmia_offline_a, seed=settings.seed),
                                scored.features, scored.model_values)
        table = attacks.add_attacks(inputs, plan.runnable)
        evaluation.check_scores(table)
    if plan.planted:
        add_canary_columns(table, plan.planted, scored.target_extra_pll, plan.n_alternatives)
    if plan.planted_patients:
        add_canary_patient_columns(table, plan.planted_patients)
    with watch.stage("validity check"):
        text_only, validity_tests = validity.text_only(plan.sets, evaluation.COMPARISONS, settings.seed)
        for name, values in text_only.items():
            table[name] = values
    record = run_record(settings, plan, scored, shadows, inputs, validity_tests, ranks.world)
    record["run"] = run_context(sys.argv, plan.model_dirs[0], settings.backend, columns.attack_names(table),
                                settings.demo)
    record["settings"] = identity
    probe, probe_table = None, None
    if plan.name_probe:
        with watch.stage("name probe"):
            probe, probe_table = name_probe.run(plan.name_probe, plan.model_dirs[0], plan.engine,
                                                settings.bootstrap, settings.seed)
    with watch.stage("statistics"):
        metrics, patients = evaluation.compare(table, n_boot=settings.bootstrap, seed=settings.seed,
                                               audit_delta=settings.audit_delta, validity_tests=validity_tests,
                                               name_probe=probe)
    with watch.stage("writing"):
        exposed = most_exposed(table, plan.sets, metrics, settings.show_exposed) if settings.show_exposed else None
        write_outputs(settings, table, metrics, record, patients, exposed, watch, probe_table)
    log.info("Seconds: %s", watch.summary())
    return Results(metrics, table, patients, record, plan.left_out, settings.out_dir, watch.summary(), probe_table)
