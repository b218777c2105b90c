"""score_MIA.py's flags: flags over a YAML file over defaults, parsed once into
:class:`StudySettings`; then the study, and its tables printed. Light to import: the
models' libraries load only when the study runs, so ``--help`` is quick."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..common.outputs import check_apart
from ..settings.study import StudySettings
from ..common.progress import set_verbosity
from .common import Parser, add_flag, add_setting, config_argv, settings_from

DESCRIPTION = (
    "Membership inference on a masked LM: scores the sentence sets written by "
    "prepare_data_MIA.py under the target (and reference, shadow) models, runs every attack "
    "the models allow (loss, likelihood ratio, reference_only blind baseline, Min-K%, "
    "Min-K%++, zlib, LiRA online and offline, RMIA online and offline, EncoderMI-T and -V, "
    "the masked-LM loss), checks the sets with a text-only classifier, and prints AUC / TPR "
    "at low FPR tables with patient-bootstrap intervals.")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="score_MIA.py", description=DESCRIPTION)

    def add(group, flag: str, **wording) -> None:
        add_setting(group, StudySettings, flag, **wording)

    parser.add_argument("--config", type=Path, help="YAML file of settings (keys as the long "
                        "flags, with _ for -); flags given on the command line win")
    inputs = parser.add_argument_group("models and sets")
    add(inputs, "--demo", help="whole study on the synthetic corpus with two tiny RoBERTa models "
        "trained here")
    add(inputs, "--canaries", help="with --demo: plant M canaries (prepare_data_MIA.py --canaries) "
        "in the demo target's training data and audit them (0)")
    add(inputs, "--canary-patients", help="with --demo: plant M canary patients (prepare_data_MIA.py "
        "--canary-patients) in the demo target's training data and audit them per patient (0)")
    add(inputs, "--target", help="local directory of the target masked LM")
    add(inputs, "--reference", help="local directory of a reference masked LM (a model of the same "
        "population, not trained on the target's data); repeat for several. Without one, the "
        "attacks that need it are left out")
    add(inputs, "--data-dir", help="folder with members/non_members/externals.jsonl (data/)")
    add(inputs, "--out-dir", help="output folder (results/)")
    engine = parser.add_argument_group("scoring")
    add(engine, "--pll", help="PLL variant, as minicons defines it (original)")
    add(engine, "--reduction", help="PLL per scored token (mean) or summed (sum)")
    add(engine, "--backend", help="this project's engine, or minicons itself for cross-checks")
    add(engine, "--device", help="auto, cpu, cuda, cuda:1, ... (auto)")
    add(engine, "--dtype", help="auto: bf16 on a GPU that supports it, fp32 otherwise; PyTorch's "
        "names float32, bfloat16, float16 are the same settings")
    add(engine, "--batch-tokens", help="tokens per forward pass (masked copies x length; default "
        "262144 on a GPU, 16384 on the CPU)")
    add(engine, "--compile", help="run the engine's forward pass through torch.compile (one graph "
        "for all shapes; pays off on a GPU)")
    add(engine, "--cache-dir", help="per-sentence score cache (data/cache); holds no text")
    add(engine, "--no-cache", help="neither read nor write the cache")
    shadows = parser.add_argument_group("shadow models (LiRA, memorization, EncoderMI-V, RMIA online)")
    add(shadows, "--shadow-models", metavar="K", help="K >= 2 shadow models, each trained like the "
        "target on a seeded random half of the sets' patients (0: none)")
    add(shadows, "--shadow-recipe", help="the target's training recipe, a YAML file as "
        "configs/shadow_recipe.yaml (default: that file; with --demo, configs/demo_recipe.yaml)")
    add(shadows, "--shadow-init", help="scratch (fresh weights from the target's config), a model "
        "folder (the checkpoint the target was continued from), or tiny (a small RoBERTa with the "
        "target's tokenizer: cheap, and said to differ from the target) (scratch)")
    add(shadows, "--shadow-index", metavar="I[,J...]", help="train only these shadow models (of "
        "--shadow-models K) and exit: one job of a cluster job array")
    add(shadows, "--shadows-ready", help="use the trained shadow models only: stop, naming them, "
        "if some are not trained yet")
    add(shadows, "--shadow-dir", help="where shadow models are kept and reused (DATA_DIR/shadow_models)")
    add(shadows, "--shadow-seed", help="seed of the patient halves the shadow models train on, "
        "recorded with each (0)")
    add(shadows, "--replace-shadows", help="train again the shadow models in --shadow-dir that were "
        "trained for other settings or data (without it, such a folder is refused, never deleted)")
    attack = parser.add_argument_group("attacks")
    add(attack, "--rmia-offline-a")
    add(attack, "--min-k-fraction")
    add(attack, "--neighbours", metavar="N", help="the neighbourhood attack (ne): N neighbours of each "
        "sentence, each the sentence with one word replaced by a masked LM; every neighbour costs one "
        "PLL of the sentence under the target, so N multiplies the scoring time (0: the attack is left out)")
    add(attack, "--neighbour-model", metavar="MODEL_DIR", help="local masked LM that makes the "
        "neighbours (default: the first --reference)")
    add(attack, "--lira-statistic", help="LiRA's per-sentence statistic: the PLL (reduced as "
        "--reduction says) or the mean logit-scaled token probability log(p / (1 - p)) (pll)")
    probe = parser.add_argument_group("the name-condition probe (Lehman et al. 2021)")
    add(probe, "--name-probe", help="does the target tie a patient's name to their conditions? "
        "member against non-member patients (with --demo: the synthetic corpus's files)")
    add(probe, "--diagnoses", metavar="FILE", help="MIMIC-III DIAGNOSES_ICD.csv.gz")
    add(probe, "--diagnosis-titles", metavar="FILE", help="MIMIC-III D_ICD_DIAGNOSES.csv.gz")
    add(probe, "--patient-names", metavar="FILE", help="the patients' surrogate names: a SUBJECT_ID,NAME "
        "CSV, or the 1b notes (SUBJECT_ID,TEXT, every line prefixed with the name)")
    statistics = parser.add_argument_group("statistics and audit")
    add(statistics, "--bootstrap")
    add(statistics, "--seed", help="seed of the bootstrap, of the scoring's other draws (EncoderMI's "
        "views, ...) and of the canaries' alternative secrets; the shadows' halves have "
        "--shadow-seed (0)")
    add(statistics, "--exposure-alternatives")
    add(statistics, "--audit-delta")
    outputs = parser.add_argument_group("outputs")
    add(outputs, "--no-plot", help="skip roc.png and report.html (the figures)")
    add(outputs, "--overwrite", help="replace the results of another run in --out-dir (without it, "
        "a run replaces only the results of an earlier run of the same settings, and stops otherwise)")
    add_flag(outputs, "--quiet")
    add_flag(outputs, "--verbose")
    add(outputs, "--show-exposed", metavar="N", help="list in report.html the N member sentences the "
        "best attack scores highest, with their TEXT: report.html then holds note text (0: never)")
    return parser


def parse_settings(argv: list[str] | None) -> StudySettings:
    """Flags over YAML settings over defaults; the file's values pass the flags' checks.
    The verbosity (--quiet, --verbose) is set here: it is how the run talks, not what it does."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    config = arguments.config
    if config is not None:
        from_file = config_argv(parser, config)
        if arguments.reference:  # given on the command line: replaces the file's list, not added to it
            from_file = [t for i, t in enumerate(from_file)
                         if t != "--reference" and (i == 0 or from_file[i - 1] != "--reference")]
        arguments = parser.parse_args(from_file + (sys.argv[1:] if argv is None else argv))
    set_verbosity(arguments.quiet, arguments.verbose)
    settings = settings_from(StudySettings, arguments, "config", "quiet", "verbose")
    if config is not None:  # the file is an input of the run too
        from ..study.outputs import OUTPUTS

        check_apart({"--out-dir": [settings.out_dir, *(settings.out_dir / name for name in OUTPUTS)]},
                    {"--config": [config]})
    return settings


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    from .. import attacks
    from ..report import tables
    from ..study.run import run_study

    results = run_study(settings)
    if results.metrics:
        print(tables.tables(results.metrics), end="")
        if results.left_out:
            print("\n" + attacks.left_out_message(results.left_out))
    return 0
