"""score_MIA.py: score the sentence sets under the target and reference models, run the
attacks and report the risk metrics."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__, attacks, columns, distributed, evaluation, models, prepare, report, shadow
from .attacks import ProbeRequest, encodermi, lira, reduce, rmia
from .cache import ScoreCache
from .cli import Parser, config_argv, non_negative_int, positive_int
from .errors import InputError
from .outputs import json_text, locked_output_dir, replaced_dir, staging_dir
from .pll import PLL_METRICS, TokenScores
from .scoring import BACKENDS, ModelDir, ScoreSettings, probe_features, score_sentences
from .sets import load_sets
from .sources import note_source

log = logging.getLogger(__name__)

DEMO_EPOCHS = 12
DEMO_SEED = 1
DEMO_POPULATION = 1000
OUTPUTS = ("scores.csv", "metrics.json", "settings.json", "roc.png")  # what a run writes


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
    parser.add_argument("--shadow-models", type=non_negative_int, default=0, metavar="K",
                        help="train K >= 2 tiny RoBERTa shadow models (the target's tokenizer), "
                        "each on a seeded random half of the sets' patients, for LiRA, "
                        "memorization and EncoderMI-V (0: none)")
    parser.add_argument("--shadow-epochs", type=positive_int, default=DEMO_EPOCHS,
                        help=f"training epochs of each shadow model ({DEMO_EPOCHS})")
    parser.add_argument("--shadow-dir", type=Path, help="where shadow models are kept and "
                        "reused (DATA_DIR/shadow_models)")
    parser.add_argument("--rmia-offline-a", type=float, default=attacks.Settings.rmia_offline_a,
                        help="RMIA without shadow models: a in Pr(x) = ((1+a) Pr_ref(x) + (1-a)) / 2 "
                        f"({attacks.Settings.rmia_offline_a}; 1: the plain reference likelihood)")
    parser.add_argument("--min-k-fraction", type=float, default=attacks.Settings.min_k_fraction,
                        help="Min-K%% and Min-K%%++: the fraction of a sentence's tokens, the "
                        "lowest int(n x fraction) (at least one) averaged (0.2)")
    parser.add_argument("--lira-statistic", choices=lira.STATISTICS, default="pll",
                        help="LiRA's per-sentence statistic: the PLL (reduced as --reduction says) "
                        "or the mean logit-scaled token probability log(p / (1 - p)) (pll)")
    parser.add_argument("--bootstrap", type=non_negative_int, default=1000,
                        help="bootstrap resamples of patients for the 95%% CIs (1000; 0: none)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the bootstrap (0)")
    parser.add_argument("--no-plot", action="store_true", help="skip roc.png")
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


def _train_demo_model(folder: Path, texts: list[str], tokenizer_dir: Path, epochs: int) -> None:
    from .train import train_tiny_mlm
    from transformers import RobertaTokenizerFast

    with replaced_dir(folder) as scratch:
        tokenizer = RobertaTokenizerFast.from_pretrained(tokenizer_dir)
        train_tiny_mlm(texts, scratch, tokenizer, epochs=epochs, seed=DEMO_SEED)


def prepare_demo(args: argparse.Namespace) -> None:
    """Sets from the synthetic corpus and the two tiny models, made once and cached."""
    from .train import train_tokenizer

    manifest_path = args.data_dir / "manifest.json"
    if not manifest_path.exists():
        prepare.main(["--out-dir", str(args.data_dir), "--population", str(DEMO_POPULATION)])
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    synthetic = Path(manifest["arguments"]["synthetic_dir"])
    train_file = synthetic / "split" / "train_notes.csv.gz"
    heldout_file = synthetic / "split" / "heldout_notes.csv.gz"
    if manifest["arguments"]["train_notes"] or manifest["arguments"]["split"]:
        raise InputError(f"--demo: {args.data_dir} holds sets of real inputs; give the demo its "
                         "own --data-dir")
    folder = args.data_dir / "models"
    target, reference = folder / "target", folder / "reference"
    # models are tied to the sets: the reference must not have seen the non-members
    stamp = folder / "sets.sha256"
    sets_digest = hashlib.sha256(json_text(manifest["sets"]).encode()).hexdigest()
    if folder.exists() and not (stamp.exists() and stamp.read_text().strip() == sets_digest):
        log.info("The sets changed since the demo models were trained: training them again")
        shutil.rmtree(folder)
    if not (target.exists() and reference.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        train_texts = [s for _, s in note_source(str(train_file), "train", None).sentences(20)]
        # the population (RMIA's) may overlap: RMIA ranks sentences the same whatever it is
        excluded = set(manifest["sets"]["non_members"]["patients"])
        population = [s for p, s in note_source(str(heldout_file), "heldout", None).sentences(20)
                      if p not in excluded]
        tokenizer_dir = folder / "tokenizer"
        # The reference follows the target's recipe (same initialisation, same number of
        # optimisation steps) on held-out patients outside the non-members, so the two models differ
        # in what they saw and little else.
        reference_epochs = max(1, round(DEMO_EPOCHS * len(train_texts) / len(population)))
        log.info("Training the demo tokenizer and two tiny RoBERTa models: target on %d "
                 "sentences x %d epochs, reference on %d sentences x %d epochs",
                 len(train_texts), DEMO_EPOCHS, len(population), reference_epochs)
        train_tokenizer(train_texts + population, tokenizer_dir)
        if not target.exists():
            _train_demo_model(target, train_texts, tokenizer_dir, DEMO_EPOCHS)
        if not reference.exists():
            _train_demo_model(reference, population, tokenizer_dir, reference_epochs)
        stamp.write_text(sets_digest + "\n")
    args.target, args.reference = target, [reference]


def run(args: argparse.Namespace) -> dict:
    """The whole scoring step; returns metrics.json's content (empty on ranks other than 0
    under ``torchrun``, which only score their shard)."""
    ranks = distributed.init(args.device)
    try:
        return _run(args, ranks)
    finally:
        distributed.finish(ranks)


def _shadow_models(args: argparse.Namespace, ranks: distributed.Ranks, target: ModelDir
                   ) -> list[tuple[Path, frozenset[str]]]:
    """Shadow models with the target's tokenizer, trained by rank 0 (or found ready), for
    every rank."""
    train = lambda: shadow.train_shadow_models(  # noqa: E731
        *shadow.population_text(args.data_dir), args.shadow_models, target.tokenizer,
        target.fingerprint, args.shadow_dir or args.data_dir / "shadow_models",
        args.shadow_epochs, args.seed)
    if ranks.main:
        result = train()
    distributed.barrier(ranks)
    if not ranks.main:
        result = train()
    return result


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


def score_models(model_dirs: list[ModelDir], sets: pd.DataFrame,
                 halves: dict[str, tuple[int, frozenset[str]]],
                 requests: list[ProbeRequest], settings: ScoreSettings, cache: ScoreCache,
                 args: argparse.Namespace, ranks: distributed.Ranks) -> Scored:
    """Every model over every sentence (this rank's share), one model in memory at a time:
    PLLs into the table (shadow models: their reduced score and IN flag), and the probe
    passes ``requests`` asks for."""
    table = sets.drop(columns="text")
    texts = sets["text"].tolist()
    mine = distributed.shard(len(texts), ranks)
    mine_texts = [texts[i] for i in mine]
    result = Scored(table, [], {}, {}, {})
    for model_dir in model_dirs:
        name = model_dir.name
        # Min-K%++ is the target's alone; the statistics cost a third on a tiny model
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
        for request in (r for r in requests if r.model == name):
            rows = np.flatnonzero(sets["set"].isin(request.sets)) if request.sets else np.arange(len(texts))
            my_rows = np.intersect1d(mine, rows)
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
    if args.compile and args.backend != "engine":
        raise InputError("--compile applies to --backend engine only")
    if not 0 < args.rmia_offline_a <= 1:
        raise InputError("--rmia-offline-a must be in (0, 1]")
    if not 0 < args.min_k_fraction <= 1:
        raise InputError("--min-k-fraction must be in (0, 1]")
    if args.shadow_models == 1:
        raise InputError("--shadow-models must be 0 (none) or at least 2 (an IN and an OUT model "
                         "for every sentence)")
    if args.data_dir.exists() and not args.data_dir.is_dir():
        raise InputError(f"--data-dir {args.data_dir}: not a folder")


def _run(args: argparse.Namespace, ranks: distributed.Ranks) -> dict:
    _check_args(args)
    # rank 0 alone writes; the out-dir and the cache are checked before any work
    held = locked_output_dir(args.out_dir, "--out-dir") if ranks.main else contextlib.nullcontext()
    with held, ScoreCache(None if args.no_cache else args.cache_dir / "pll.sqlite") as cache:
        if args.demo:
            if ranks.main:
                prepare_demo(args)
            distributed.barrier(ranks)
            if not ranks.main:
                prepare_demo(args)
        if args.target is None:
            raise InputError("give --target MODEL_DIR (and, for the likelihood-ratio attacks, "
                             "--reference MODEL_DIR), or --demo")
        return _score(args, ranks, cache)


def _score(args: argparse.Namespace, ranks: distributed.Ranks, cache: ScoreCache) -> dict:
    sets = load_sets(args.data_dir)
    device = distributed.rank_device(args.device, ranks)
    settings = ScoreSettings(pll=args.pll, backend=args.backend, device=device, dtype=args.dtype,
                             batch_tokens=args.batch_tokens or models.default_batch_tokens(
                                 models.resolve_device(device)),
                             compile=args.compile, progress=ranks.main)
    reference_paths = args.reference or []
    references = reference_names(reference_paths)
    # every given folder checked before any work starts
    model_dirs = [ModelDir(args.target, "--target", columns.TARGET, settings)] + [
        ModelDir(path, "--reference", name, settings) for name, path in zip(references, reference_paths)]
    for reference in model_dirs[1:]:
        if reference.fingerprint == model_dirs[0].fingerprint:
            log.warning("WARNING: --reference %s holds the same model as --target: its likelihood "
                        "ratio is 0 for every sentence", reference.path)
    available = {"reference"} if references else set()
    available |= {"shadows"} if args.shadow_models else set()
    available |= {"population"} if (sets["set"] == "population").any() else set()
    available |= {"distribution_stats"} if args.backend == "engine" else set()
    runnable, left_out = attacks.plan(available)
    shadows = _shadow_models(args, ranks, model_dirs[0]) if args.shadow_models else []
    halves = {}
    for i, (path, half) in enumerate(shadows):
        model_dirs.append(ModelDir(path, "--shadow-models", columns.shadow_name(i), settings))
        halves[columns.shadow_name(i)] = (i, half)
    scored = score_models(model_dirs, sets, halves, attacks.probe_requests(runnable), settings,
                          cache, args, ranks)
    if not ranks.main:
        return {}
    attack_settings = attacks.Settings(reduction=args.reduction, min_k_fraction=args.min_k_fraction,
                                       rmia_offline_a=args.rmia_offline_a, seed=args.seed)
    inputs = attacks.Inputs(scored.table, sets["text"].tolist(), references, scored.target_tokens,
                            args.backend == "engine", attack_settings, scored.features,
                            scored.model_values)
    table = attacks.add_attacks(inputs, runnable)
    evaluation.check_scores(table)
    results = evaluation.compare(table, n_boot=args.bootstrap, seed=args.seed)
    run_settings = {
        "version": __version__, "models": {d.name: str(d.path) for d in model_dirs},
        "data_dir": str(args.data_dir), "pll": args.pll, "reduction": args.reduction,
        "backend": args.backend, "device": args.device, "dtype": args.dtype,
        "batch_tokens": settings.batch_tokens, "compile": args.compile, "bootstrap": args.bootstrap, "seed": args.seed,
        "truncated_sentences": scored.truncated, "n_sentences": sets["set"].value_counts().to_dict(),
        "processes": ranks.world, "min_k_fraction": args.min_k_fraction,
        "shadow_models": {"n": len(shadows), "epochs": args.shadow_epochs,
                          "patients_seen": [sorted(h) for _, h in shadows]} if shadows else None,
        "encodermi": {"views": encodermi.N_VIEWS, "mask_probability": encodermi.MASK_PROBABILITY},
        "rmia": _rmia_settings(inputs, runnable, args),
        "lira": _lira_settings(inputs, args) if shadows else None,
        "attacks_left_out": left_out,
    }
    write_outputs(args, table, results, run_settings)
    print(report.tables(results), end="")
    if left_out:
        print("\n" + attacks.left_out_message(left_out))
    return results


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


def write_outputs(args: argparse.Namespace, table: pd.DataFrame, results: dict, run_settings: dict) -> None:
    """scores.csv, metrics.json, settings.json and the ROC plot, into the out-dir at once
    (an older run's outputs that this one does not write are removed)."""
    with staging_dir(args.out_dir, OUTPUTS) as stage:
        table.to_csv(stage / "scores.csv", index=False)  # shortest exact floats
        (stage / "metrics.json").write_text(json_text(results), encoding="utf-8")
        (stage / "settings.json").write_text(json_text(run_settings), encoding="utf-8")
        if not args.no_plot:
            report.roc_plot(table, stage / "roc.png")
    log.info("Wrote scores.csv, metrics.json, settings.json%s to %s",
             "" if args.no_plot else ", roc.png", args.out_dir)


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0
