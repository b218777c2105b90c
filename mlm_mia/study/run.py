"""score_MIA.py: score the sentence sets under the target and reference models, run the
attacks and report the risk metrics."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__, attacks
from ..stats import audit, evaluation, validity
from ..data import canaries, prepare
from ..common import columns
from ..training import demo, shadow
from . import name_probe
from ..engine import distributed, models
from ..report import figures, tables as report, html as report_html
from ..attacks import ProbeRequest, encodermi, lira, reduce, rmia
from ..engine.cache import ScoreCache
from ..common.digests import file_sha256
from ..settings.flags import Parser, add_flag, config_argv, non_negative_int, positive_int
from ..common.errors import InputError
from ..common.outputs import check_apart, held, json_text, locked_output_dir, staging_dir
from ..engine.pll import PLL_METRICS, TokenScores
from ..engine.scoring import BACKENDS, ModelDir, ScoreSettings, probe_features, score_sentences
from ..training import recipe as recipe_module
from ..training.recipe import Recipe
from ..data.sets import load_sets, sets_digest
from ..common.stopwatch import Stopwatch

log = logging.getLogger(__name__)

SHADOW_RECIPE = recipe_module.ROOT / "configs" / "shadow_recipe.yaml"
# what a run writes (report.html and roc.png unless --no-plot, patients.csv with a population)
OUTPUTS = ("scores.csv", "metrics.json", "settings.json", "patients.csv", "roc.png", "report.html")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="score_MIA.py",
        description="Membership-inference attacks (loss, likelihood ratio, blind baseline) on a "
                    "masked LM: scores the sets written by prepare_data_MIA.py and prints AUC / "
                    "TPR-at-low-FPR tables.")
    parser.add_argument("--config", type=Path, help="YAML file of settings (keys as the long "
                        "flags, with _ for -); flags given on the command line win")
    parser.add_argument("--demo", action="store_true", help="whole study on the synthetic corpus "
                        "with two tiny RoBERTa models trained here")
    add_flag(parser, "--canaries", help="with --demo: plant M canaries (prepare_data_MIA.py --canaries) "
             "in the demo target's training data and audit them (0)")
    parser.add_argument("--target", type=Path, help="local directory of the target masked LM")
    parser.add_argument("--reference", type=Path, action="append", default=None,
                        help="local directory of a reference masked LM (a model of the same "
                        "population, not trained on the target's data); repeat for several. "
                        "Without one, the attacks that need it are left out")
    parser.add_argument("--data-dir", type=Path, default=Path("data"),
                        help="folder with members/non_members/externals.jsonl (data/)")
    parser.add_argument("--out-dir", type=Path, default=Path("results"), help="output folder (results/)")
    parser.add_argument("--pll", choices=PLL_METRICS, default="original",
                        help="PLL variant, as minicons defines it (original)")
    parser.add_argument("--reduction", choices=attacks.REDUCTIONS, default="mean",
                        help="PLL per scored token (mean) or summed (sum)")
    parser.add_argument("--backend", choices=BACKENDS, default="engine",
                        help="this project's engine, or minicons itself for cross-checks")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (auto)")
    parser.add_argument("--dtype", type=models.dtype_name, choices=models.DTYPES, default="auto",
                        help="auto: bf16 on a GPU that supports it, fp32 otherwise; PyTorch's "
                        "names float32, bfloat16, float16 are the same settings")
    parser.add_argument("--batch-tokens", type=positive_int, default=None,
                        help="tokens per forward pass (masked copies x length; default 262144 "
                        "on a GPU, 16384 on the CPU)")
    parser.add_argument("--compile", action="store_true", help="run the engine's forward pass "
                        "through torch.compile (one graph for all shapes; pays off on a GPU)")
    parser.add_argument("--cache-dir", type=Path, default=Path("data") / "cache",
                        help="per-sentence score cache (data/cache); holds no text")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    shadows = parser.add_argument_group("shadow models (LiRA, memorization, EncoderMI-V, RMIA online)")
    shadows.add_argument("--shadow-models", type=non_negative_int, default=0, metavar="K",
                         help="K >= 2 shadow models, each trained like the target on a seeded "
                         "random half of the sets' patients (0: none)")
    shadows.add_argument("--shadow-recipe", type=Path, help="the target's training recipe, a YAML "
                         "file as configs/shadow_recipe.yaml (default: that file; with --demo, "
                         "configs/demo_recipe.yaml)")
    shadows.add_argument("--shadow-init", default="scratch", help="scratch (fresh weights from the "
                         "target's config), a model folder (the checkpoint the target was "
                         "continued from), or tiny (a small RoBERTa with the target's tokenizer: "
                         "cheap, and said to differ from the target) (scratch)")
    shadows.add_argument("--shadow-index", type=shadow.parse_indices, metavar="I[,J...]",
                         help="train only these shadow models (of --shadow-models K) and exit: "
                         "one job of a cluster job array")
    shadows.add_argument("--shadows-ready", action="store_true", help="use the trained shadow "
                         "models only: stop, naming them, if some are not trained yet")
    shadows.add_argument("--shadow-dir", type=Path, help="where shadow models are kept and "
                         "reused (DATA_DIR/shadow_models)")
    shadows.add_argument("--shadow-seed", type=non_negative_int, default=0, help="seed of the "
                         "patient halves the shadow models train on, recorded with each (0)")
    shadows.add_argument("--replace-shadows", action="store_true", help="train again the shadow "
                         "models in --shadow-dir that were trained for other settings or data "
                         "(without it, such a folder is refused, never deleted)")
    add_flag(parser, "--rmia-offline-a")
    add_flag(parser, "--min-k-fraction")
    parser.add_argument("--lira-statistic", choices=lira.STATISTICS, default="pll",
                        help="LiRA's per-sentence statistic: the PLL (reduced as --reduction says) "
                        "or the mean logit-scaled token probability log(p / (1 - p)) (pll)")
    add_flag(parser, "--bootstrap")
    add_flag(parser, "--seed", help="seed of the bootstrap, of the scoring's other draws (EncoderMI's "
             "views, ...) and of the canaries' alternative secrets; the shadows' halves have "
             "--shadow-seed (0)")
    add_flag(parser, "--exposure-alternatives")
    add_flag(parser, "--audit-delta")
    probe = parser.add_argument_group("the name-condition probe (Lehman et al. 2021)")
    probe.add_argument("--name-probe", action="store_true", help="does the target tie a patient's "
                       "name to their conditions? member against non-member patients (with --demo: "
                       "the synthetic corpus's files)")
    probe.add_argument("--diagnoses", type=Path, help="MIMIC-III DIAGNOSES_ICD.csv.gz")
    probe.add_argument("--diagnosis-titles", type=Path, help="MIMIC-III D_ICD_DIAGNOSES.csv.gz")
    probe.add_argument("--names", type=Path, help="the patients' surrogate names: a SUBJECT_ID,NAME "
                       "CSV, or the 1b notes (SUBJECT_ID,TEXT, every line prefixed with the name)")
    parser.add_argument("--no-plot", action="store_true",
                        help="skip roc.png and report.html (the figures)")
    parser.add_argument("--show-exposed", type=non_negative_int, default=0, metavar="N",
                        help="list in report.html the N member sentences the best attack scores "
                        "highest, with their TEXT: report.html then holds note text (0: never)")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Flags over YAML settings over defaults; the file's values pass the flags' checks."""
    parser = build_parser()
    first = parser.parse_args(argv)
    if first.config is None:
        return first
    from_file = config_argv(parser, first.config)
    if first.reference:  # given on the command line: replaces the file's list, not added to it
        from_file = [t for i, t in enumerate(from_file)
                     if t != "--reference" and (i == 0 or from_file[i - 1] != "--reference")]
    return parser.parse_args(from_file + (sys.argv[1:] if argv is None else argv))


def reference_names(paths: list[Path]) -> list[str]:
    """``reference`` for one reference; ``reference_<folder name>`` for several."""
    if len(paths) == 1:
        return ["reference"]
    names = [f"reference_{p.resolve().name}" for p in paths]
    if len(set(names)) < len(names):
        names = [f"reference_{i + 1}" for i in range(len(paths))]
    return names


def run(args: argparse.Namespace) -> dict:
    """The whole scoring step; returns metrics.json's content (empty on ranks other than 0
    under ``torchrun``, which only score their shard)."""
    ranks = distributed.init(args.device)
    try:
        return _run(args, ranks)
    finally:
        distributed.finish(ranks)


def shadow_recipe(args: argparse.Namespace) -> Recipe:
    """The recipe the shadow models are trained with."""
    if args.shadow_recipe:
        return recipe_module.load(args.shadow_recipe)
    return recipe_module.load(recipe_module.DEMO_RECIPE if args.demo else SHADOW_RECIPE, "recipe")


def _shadow_models(args: argparse.Namespace, ranks: distributed.Ranks, target: ModelDir,
                   watch: Stopwatch, holds: contextlib.ExitStack) -> list[shadow.Shadow]:
    """The K shadow models, trained where missing: here, one after the other; under
    torchrun, each rank its share (models r, r + N, ...) in a process of its own; never with
    ``--shadows-ready``, which names the missing ones instead. Each is held locked in
    ``holds`` while the run trains or uses it."""
    recipe = shadow_recipe(args)
    planned = shadow.plan(args.data_dir, args.shadow_models, target.path, shadow.architecture_key(target.path),
                          recipe, args.shadow_init, args.shadow_dir or args.data_dir / "shadow_models",
                          args.shadow_seed)
    wanted = [s for s in planned if args.shadow_index is None or s.index in args.shadow_index]
    # under torchrun each rank's child trains (and locks) its share; the rank locks them after
    children = ranks.world > 1 and args.shadow_index is None
    missing = [s for s in wanted if not s.done] if children else shadow.claim(
        wanted, holds, train=not args.shadows_ready, replace=args.replace_shadows)
    if missing and args.shadows_ready:
        raise InputError(f"shadow models {[s.index for s in missing]} of {args.shadow_models} are not "
                         f"trained (or were trained for other data or settings); train them with "
                         f"--shadow-index {','.join(str(s.index) for s in missing)}, or drop --shadows-ready")
    with watch.stage("shadow training"):
        if children:
            mine = [s.index for s in missing if s.index % ranks.world == ranks.rank]
            if mine:
                shadow.train_in_child(sys.argv[1:], mine, ranks.local_rank)
            distributed.barrier(ranks)
            shadow.claim(planned, holds, train=False, replace=False)
        else:
            for planned_shadow in missing:
                shadow.train(planned_shadow, args.shadow_init, target.path, target.tokenizer, recipe, args.device)
    return planned


@dataclass
class Scored:
    """What the models said about the sentences: the table's model columns, the target's
    token scores and the probes' features (complete on rank 0 only)."""

    table: pd.DataFrame
    target_tokens: list[TokenScores]
    features: dict[tuple[str, str], np.ndarray]
    truncated: dict[str, int]
    # (shadow model, "pll_per_token" / "pll" / "logit"): per-sentence values beside the table's
    model_values: dict[tuple[str, str], np.ndarray]
    target_extra_pll: list[float]


def score_models(model_dirs: list[ModelDir], sets: pd.DataFrame,
                 halves: dict[str, tuple[int, frozenset[str]]],
                 requests: list[ProbeRequest], settings: ScoreSettings, cache: ScoreCache,
                 args: argparse.Namespace, ranks: distributed.Ranks,
                 target_extra: list[str] = ()) -> Scored:
    """Every model over every sentence (this rank's share), one model in memory at a time:
    PLLs into the table (shadow models: their reduced score and IN flag), the probe
    passes ``requests`` asks for, and the target's summed PLL of ``target_extra`` (the
    canaries' alternative secrets)."""
    table = sets.drop(columns="text")
    texts = sets["text"].tolist()
    mine = distributed.shard(len(texts), ranks)
    mine_texts = [texts[i] for i in mine]
    result = Scored(table, [], {}, {}, {}, [])
    for model_dir in model_dirs:
        name = model_dir.name
        # Min-K%++ is the target's alone; the statistics cost a third on a tiny model
        with model_dir.stopwatch.stage("PLL"):
            scores = score_sentences(model_dir, mine_texts, settings, cache,
                                     distribution_stats=name == columns.TARGET)
        if name != columns.TARGET:  # only the sums travel
            scores = [(s.pll, s.n_tokens, s.truncated, lira.token_logit_mean(s.logprobs)) for s in scores]
        scores = distributed.gather(mine, scores, len(texts), ranks)
        if name == columns.TARGET:
            result.target_tokens = scores
            scores = [(s.pll, s.n_tokens, s.truncated, lira.token_logit_mean(s.logprobs)) for s in scores]
        pll, n_tokens, truncated, logit = (np.array(v) for v in zip(*scores))
        result.truncated[name] = int(truncated.sum())
        # the LiRA statistic of this model (--lira-statistic)
        statistic = {"pll": reduce(pll, n_tokens, args.reduction), "logit": logit}
        if name in halves:
            index, half = halves[name]
            table[columns.shadow_score(index)] = statistic[args.lira_statistic]
            table[columns.shadow_in(index)] = sets["patient_id"].isin(half).astype(int)
            result.model_values |= {(name, "pll_per_token"): reduce(pll, n_tokens, "mean"), **{
                (name, kind): values for kind, values in statistic.items()}}
        else:
            table[columns.pll(name)], table[columns.n_tokens(name)] = pll, n_tokens
            if name == columns.TARGET and halves:
                table[columns.TARGET_STATISTIC] = statistic[args.lira_statistic]
        if name == columns.TARGET and target_extra:
            extra = distributed.shard(len(target_extra), ranks)
            with model_dir.stopwatch.stage("canary alternatives"):
                extra_scores = score_sentences(model_dir, [target_extra[i] for i in extra], settings,
                                               cache, distribution_stats=False)
            result.target_extra_pll = distributed.gather(extra, [s.pll for s in extra_scores],
                                                          len(target_extra), ranks)
        for request in (r for r in requests if r.model == name):
            rows = np.flatnonzero(sets["set"].isin(request.sets)) if request.sets else np.arange(len(texts))
            my_rows = np.intersect1d(mine, rows)
            with model_dir.stopwatch.stage(request.probe.name):
                values = probe_features(model_dir, request.probe, [texts[i] for i in my_rows],
                                        settings, cache, args.seed)
            gathered = distributed.gather(my_rows.tolist(), values, len(texts), ranks)
            if ranks.main:
                width = len(gathered[rows[0]]) if len(rows) else 0
                full = np.full((len(texts), width), np.nan)
                full[rows] = np.stack([gathered[i] for i in rows])
                result.features[name, request.probe.name] = full
        model_dir.release()
    return result


def _check_args(args: argparse.Namespace) -> None:
    """What the flags cannot check alone, before any work."""
    if args.canaries and not args.demo:
        raise InputError("--canaries plants canaries in the demo target's training data and goes "
                         "with --demo; for your own model, plant them with prepare_data_MIA.py "
                         "--canaries M before training it")
    if args.show_exposed and args.no_plot:
        raise InputError("--show-exposed lists sentences in report.html, which --no-plot does not "
                         "write; drop one of them")
    if args.compile and args.backend != "engine":
        raise InputError("--compile applies to --backend engine only")
    if args.shadow_models == 1:
        raise InputError("--shadow-models must be 0 (none) or at least 2 (an IN and an OUT model "
                         "for every sentence)")
    if args.shadow_index is not None and not args.shadow_models:
        raise InputError("--shadow-index picks among --shadow-models K; give K")
    if args.shadow_index is not None and max(args.shadow_index) >= args.shadow_models:
        raise InputError(f"--shadow-index {max(args.shadow_index)}: there are only --shadow-models "
                         f"{args.shadow_models} (indices 0 to {args.shadow_models - 1})")
    probe_files = {"--diagnoses": args.diagnoses, "--diagnosis-titles": args.diagnosis_titles,
                   "--names": args.names}
    given_files = [flag for flag, path in probe_files.items() if path is not None]
    if given_files and not args.name_probe:
        raise InputError(f"{given_files[0]} is an input of --name-probe; add --name-probe or drop it")
    if args.name_probe and args.demo and given_files:
        raise InputError(f"{given_files[0]}: --demo probes with the synthetic corpus's own files; "
                         "drop it, or run without --demo")
    if args.name_probe and not args.demo and len(given_files) < 3:
        missing = [flag for flag in probe_files if flag not in given_files]
        raise InputError(f"--name-probe needs {', '.join(missing)} (DIAGNOSES_ICD.csv.gz, "
                         "D_ICD_DIAGNOSES.csv.gz and SUBJECT_ID,NAME or 1b notes)")
    if args.shadow_models:
        shadow_recipe(args)  # a bad recipe stops the run before any work
    if args.data_dir.exists() and not args.data_dir.is_dir():
        raise InputError(f"--data-dir {args.data_dir}: not a folder")
    given = {"--data-dir": [args.data_dir], "--target": [args.target], "--reference": args.reference,
             "--shadow-dir": [args.shadow_dir], "--config": [args.config], "--shadow-recipe": [args.shadow_recipe]}
    check_apart({"--out-dir": [args.out_dir, *(args.out_dir / name for name in OUTPUTS)]},
                {flag: [p for p in paths or () if p is not None] for flag, paths in given.items()})


def _run(args: argparse.Namespace, ranks: distributed.Ranks) -> dict:
    _check_args(args)
    # rank 0 alone writes (a --shadow-index job writes shadow models only); the out-dir and
    # the cache are checked before any work
    writes = ranks.main and args.shadow_index is None
    out = locked_output_dir(args.out_dir, "--out-dir") if writes else contextlib.nullcontext()
    with out, ScoreCache(None if args.no_cache else args.cache_dir / "pll.sqlite") as cache, \
            contextlib.ExitStack() as holds:
        if args.demo:
            if ranks.main:
                args.data_dir.mkdir(parents=True, exist_ok=True)
                # a shadow job that torchrun's rank started finds the sets made, and its rank holding them
                with _data_lock(args, True) if args.shadow_index is None else contextlib.nullcontext():
                    args.target, args.reference = demo.prepare(args.data_dir, args.canaries)
            distributed.barrier(ranks)
            if not ranks.main:
                args.target, args.reference = demo.prepare(args.data_dir, args.canaries)
            if args.name_probe:
                args.diagnoses, args.diagnosis_titles, args.names = demo.name_probe_files()
        if args.target is None:
            raise InputError("give --target MODEL_DIR (and, for the likelihood-ratio attacks, "
                             "--reference MODEL_DIR), or --demo")
        return _score(args, ranks, cache, holds)


def _data_lock(args: argparse.Namespace, exclusive: bool) -> contextlib.AbstractContextManager:
    """The data folder held for the run: shared while it reads the sets, so that
    prepare_data_MIA.py, which holds it exclusively while it writes them, cannot draw other
    sets under it (either stops at once); exclusive while the demo makes its sets and models."""
    return held(args.data_dir, exclusive, f"--data-dir {args.data_dir}: " + (
        "another run is using it" if exclusive else "prepare_data_MIA.py or a demo is writing the sets there")
        + "; wait for it to end")


def _score(args: argparse.Namespace, ranks: distributed.Ranks, cache: ScoreCache,
           holds: contextlib.ExitStack) -> dict:
    """Score the models into the table, add the attacks, write and print (the data folder
    and the shadow models held in ``holds`` until the outputs are written)."""
    watch = Stopwatch()
    with watch.stage("checks"):
        if args.data_dir.is_dir():
            holds.enter_context(_data_lock(args, False))
        sets = load_sets(args.data_dir)
        sets_sha256 = sets_digest(args.data_dir)  # of the files as read, under the lock
        compared = sets[sets["set"].isin({s for pair in evaluation.COMPARISONS.values() for s in pair})]
        for name, n in compared.groupby("set")["patient_id"].nunique().items():
            if n < 2:  # the text-only check's folds and the intervals resample patients
                raise InputError(f"{args.data_dir / f'{name}.jsonl'}: sentences of {n} patient; every "
                                 "set needs at least 2 patients (prepare_data_MIA.py --n-patients 2 or more)")
        planted = load_canaries(args.data_dir, sets)
        if planted:
            sets = pd.concat([sets, pd.DataFrame([{"set": audit.SET, "id": c["id"], "patient_id": c["patient_id"],
                                                   "text": c["text"]} for c in planted])], ignore_index=True)
        probe = name_probe.plan(sets, args.diagnoses, args.diagnosis_titles, args.names, args.seed) \
            if args.name_probe else None
        n_alternatives = canaries.alternatives_count(planted, args.exposure_alternatives)
        alternatives = [text for c in planted for text in canaries.alternatives(
            c, n_alternatives, args.seed, len(c["secret"]))]
        device = distributed.rank_device(args.device, ranks)
        settings = ScoreSettings(pll=args.pll, backend=args.backend, device=device, dtype=args.dtype,
                                 batch_tokens=args.batch_tokens or models.default_batch_tokens(
                                     models.resolve_device(device)),
                                 compile=args.compile, progress=ranks.main)
        reference_paths = args.reference or []
        references = reference_names(reference_paths)
        # every given folder checked before any work starts
        model_dirs = [ModelDir(args.target, "--target", columns.TARGET, settings, watch)] + [
            ModelDir(path, "--reference", name, settings, watch)
            for name, path in zip(references, reference_paths)]
        for reference in model_dirs[1:]:
            if reference.fingerprint == model_dirs[0].fingerprint:
                log.warning("WARNING: --reference %s holds the same model as --target: its "
                            "likelihood ratio is 0 for every sentence", reference.path)
        available = {"reference"} if references else set()
        available |= {"shadows"} if args.shadow_models else set()
        available |= {"population"} if (sets["set"] == "population").any() else set()
        available |= {"distribution_stats"} if args.backend == "engine" else set()
        runnable, left_out = attacks.plan(available)
    shadows = _shadow_models(args, ranks, model_dirs[0], watch, holds) if args.shadow_models else []
    if args.shadow_index is not None:
        log.info("Shadow models %s are trained; a run without --shadow-index scores with them",
                 ",".join(map(str, args.shadow_index)))
        return {}
    halves = {}
    for s in shadows:  # the IN/OUT labels of the record checked where each model is hashed and loaded
        model_dirs.append(shadow.ShadowModelDir(s, settings, watch))
        halves[columns.shadow_name(s.index)] = (s.index, s.patients)
    scored = score_models(model_dirs, sets, halves, attacks.probe_requests(runnable), settings,
                          cache, args, ranks, alternatives)
    if not ranks.main:
        return {}
    with watch.stage("attacks"):
        inputs = attacks.Inputs(scored.table, sets["text"].tolist(), references, scored.target_tokens,
                                args.backend == "engine", attacks.Settings(
                                    reduction=args.reduction, min_k_fraction=args.min_k_fraction,
                                    rmia_offline_a=args.rmia_offline_a, seed=args.seed),
                                scored.features, scored.model_values)
        table = attacks.add_attacks(inputs, runnable)
        evaluation.check_scores(table)
    if planted:
        _add_canary_columns(table, planted, scored.target_extra_pll, n_alternatives)
    with watch.stage("validity check"):
        text_only, validity_tests = validity.text_only(sets, evaluation.COMPARISONS, args.seed)
        for name, values in text_only.items():
            table[name] = values
    run_settings = {
        "version": __version__, "models": {d.name: str(d.path) for d in model_dirs},
        "data_dir": str(args.data_dir), "pll": args.pll, "reduction": args.reduction,
        "backend": args.backend, "device": args.device, "dtype": args.dtype,
        "batch_tokens": settings.batch_tokens, "compile": args.compile,
        "bootstrap": args.bootstrap, "seed": args.seed, "truncated_sentences": scored.truncated,
        "n_sentences": sets["set"].value_counts().to_dict(), "processes": ranks.world,
        "min_k_fraction": args.min_k_fraction,
        "shadow_models": _shadow_settings(shadows, args, model_dirs[0].path),
        "encodermi": {"views": encodermi.N_VIEWS, "mask_probability": encodermi.MASK_PROBABILITY},
        "rmia": _rmia_settings(inputs, runnable, args),
        "lira": _lira_settings(inputs, args) if shadows else None,
        "attacks_left_out": left_out, "sets_sha256": sets_sha256,
        # what the reference models are, not where: attacks that read them compare on this
        "references": {d.name: d.fingerprint for d in model_dirs if d.name in references},
        "exposure_alternatives": n_alternatives if planted else None,
        "validity_tests": validity_tests,
        "name_probe": {flag: file_sha256(path) for flag, path in (
            ("diagnoses", args.diagnoses), ("diagnosis_titles", args.diagnosis_titles),
            ("names", args.names))} if probe else None,
    }
    with watch.stage("statistics"):
        results, patients = evaluation.compare(table, n_boot=args.bootstrap, seed=args.seed,
                                               audit_delta=args.audit_delta, validity_tests=validity_tests)
    if probe:
        with watch.stage("name probe"):
            results[evaluation.NAME_PROBE] = name_probe.run(probe, model_dirs[0], settings, args.bootstrap,
                                                            args.seed)
    with watch.stage("writing"):
        exposed = most_exposed(table, sets, results, args.show_exposed) if args.show_exposed else None
        write_outputs(args, table, results, run_settings, patients, exposed, watch)
    print(report.tables(results), end="")
    if left_out:
        print("\n" + attacks.left_out_message(left_out))
    log.info("Seconds: %s", watch.summary())
    return results


def _shadow_settings(shadows: list[shadow.Shadow], args: argparse.Namespace, target: Path) -> dict | None:
    """The shadow models' recipe and what each saw, and, plainly, whether they differ from
    the target."""
    if not shadows:
        return None
    differs = shadow.differences(shadows[0].folder, target)
    if differs:
        log.warning("WARNING: the shadow models are not the target's architecture (%s): LiRA's IN and "
                    "OUT statistics then describe another model than the target", differs)
    return {"n": len(shadows), "recipe": shadows[0].record["recipe"], "init": args.shadow_init,
            "init_kind": shadows[0].record["init"], "seed": args.shadow_seed,
            "differs_from_target": differs or None, "patients_seen": [sorted(s.patients) for s in shadows]}


def _rmia_settings(inputs: attacks.Inputs, runnable: list[attacks.Attack], args: argparse.Namespace
                   ) -> dict | None:
    """How RMIA's Pr(x) was had: online from shadow models, or offline with an ``a`` from
    the flag (untuned) and, where shadow models allow it, tuned."""
    names = {a.name for a in runnable}
    if "rmia" not in names:
        return None
    result = {"gamma": rmia.GAMMA, "pr_x": "shadow models (online)" if inputs.shadows else
              "reference models (offline)", "likelihood": "per token, whatever --reduction"}
    if not inputs.shadows:
        result |= {"offline_a": args.rmia_offline_a,
                   "offline_a_source": "--rmia-offline-a, not tuned: tuning needs a model whose "
                   "training sentences are known (shadow models), and a reference has none"}
    if "rmia_offline" in names:
        a, aucs = rmia.tune_offline_a(inputs)
        result["rmia_offline"] = {"offline_a": a, "offline_a_source": "tuned on shadow model 0",
                                  "auc_by_a": aucs}
    return result


def _lira_settings(inputs: attacks.Inputs, args: argparse.Namespace) -> dict:
    """The LiRA statistic, and how normal each statistic's IN and OUT values look."""
    shadows = inputs.shadows
    inside = inputs.table[[columns.shadow_in(i) for i in shadows]].to_numpy(bool)
    checks = {kind: lira.normality(np.column_stack([inputs.model_values[columns.shadow_name(i), kind]
                                                    for i in shadows]), inside)
              for kind in lira.STATISTICS}
    chosen = checks[args.lira_statistic]
    other = next(k for k in lira.STATISTICS if k != args.lira_statistic)
    if chosen and max(chosen["rejected_in"], chosen["rejected_out"]) > 2 * chosen["level"]:
        log.warning("LiRA: a Shapiro-Wilk test rejects normal IN/OUT statistics for %.0f%% / %.0f%% "
                    "of sentences (%.0f%% expected); with --lira-statistic %s: %.0f%% / %.0f%%",
                    100 * chosen["rejected_in"], 100 * chosen["rejected_out"], 100 * chosen["level"],
                    other, 100 * checks[other]["rejected_in"], 100 * checks[other]["rejected_out"])
    return {"statistic": args.lira_statistic, "normality": checks,
            "offline": "one-sided: (s - mu_out) / sd_out"}


def load_canaries(data_dir: Path, sets: pd.DataFrame) -> list[dict]:
    """The canaries of the data folder, if any: the very file prepare_data_MIA.py wrote
    for these sets (its SHA-256 in manifest.json), apart from every set."""
    path = data_dir / canaries.FILE
    if not path.is_file():
        return []
    manifest = data_dir / prepare.MANIFEST
    recorded = json.loads(manifest.read_text(encoding="utf-8")).get("canaries") if manifest.is_file() else None
    if not recorded or recorded["sha256"] != file_sha256(path):
        raise InputError(f"{path}: does not match the run ({manifest} records "
                         f"{'other canaries' if recorded else 'none'}); write the sets and the canaries "
                         "together with prepare_data_MIA.py --canaries M")
    return canaries.load(path, set(sets["id"]), set(sets["text"]))


def _add_canary_columns(table: pd.DataFrame, planted: list[dict], alternative_plls: list[float],
                        n_alternatives: int) -> None:
    """Whether each canary was included, its repeats and its secret's exposure (numbers
    only, on the canaries' rows)."""
    rows = (table["set"] == audit.SET).to_numpy()
    by_id = {c["id"]: c for c in planted}
    ids = table.loc[rows, "id"]
    table.loc[rows, audit.INCLUDED] = [int(by_id[i]["included"]) for i in ids]
    table.loc[rows, audit.REPEATS] = [by_id[i]["repeats"] for i in ids]
    plls = np.asarray(alternative_plls, dtype=float).reshape(len(planted), n_alternatives)
    own = dict(zip(table.loc[rows, "id"], table.loc[rows, columns.pll(columns.TARGET)]))
    table.loc[rows, audit.EXPOSURE] = [audit.exposure_bits(own[c["id"]], alt) for c, alt in zip(planted, plls)]


def most_exposed(table: pd.DataFrame, sets: pd.DataFrame, results: dict, n: int) -> pd.DataFrame:
    """The ``n`` member sentences that the attack with the best members-vs-non-members AUC
    (blind baselines aside) scores highest, with their text (only on explicit request)."""
    scored = results.get("members_vs_non_members") or next(
        v for k, v in results.items() if k not in evaluation.SECTIONS)
    best = max((a for a in scored if not attacks.is_blind(a)), key=lambda a: scored[a]["auc"])
    members = table.assign(text=sets["text"])[table["set"] == "members"]
    chosen = members.nlargest(n, columns.score(best))
    return chosen[["id", "patient_id", columns.score(best), "text"]].rename(
        columns={columns.score(best): f"{best} score"})


def write_outputs(args: argparse.Namespace, table: pd.DataFrame, results: dict, run_settings: dict,
                  patients: pd.DataFrame | None, exposed: pd.DataFrame | None, watch: Stopwatch) -> None:
    """Every output of the run into the out-dir at once (an older run's outputs that this
    one does not write are removed)."""
    with staging_dir(args.out_dir, OUTPUTS) as stage:
        table.to_csv(stage / "scores.csv", index=False)  # shortest exact floats
        (stage / "metrics.json").write_text(json_text(results), encoding="utf-8")
        (stage / "settings.json").write_text(json_text(run_settings), encoding="utf-8")
        if patients is not None:
            patients.to_csv(stage / "patients.csv", index=False)
        if not args.no_plot:
            with watch.stage("plot"):
                roc = figures.png(figures.roc_figure(table))
                (stage / "roc.png").write_bytes(roc)
                report_html.write_report(stage / "report.html", table, results, run_settings,
                                         patients, exposed=exposed, roc_png=roc)
    log.info("Wrote %s to %s", ", ".join(n for n in OUTPUTS if (args.out_dir / n).exists()), args.out_dir)


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0
