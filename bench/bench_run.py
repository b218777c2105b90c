#!/usr/bin/env python
"""A whole score_MIA.py run against minicons merely scoring the same sentences, stage by stage.

    python bench/bench_run.py [--per-set 100] [--work DIR]

The workload a new user would try: sets of ``--per-set`` sentences each (members,
non-members, externals) sampled from a NOTEEVENTS-format synthetic corpus, and two
random tiny RoBERTa models (hidden 128, 2 layers) with roberta-base's 50,265-row
vocabulary as target and reference. Timed as whole processes, in one run:

- ``import mlm_mia.study.run`` (the start-up every run pays);
- minicons' ``MaskedLMScorer`` scoring every sentence under both models, nothing else;
- ``score_MIA.py --no-cache`` with its defaults (every attack, 1000 bootstrap resamples,
  the plot), with the seconds of each stage from the run's own log line;
- ``metrics.py`` on the scores it wrote.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlm_mia.cli import prepare
from mlm_mia.data import synthetic  # noqa: E402
from mlm_mia.data.sentences import clean_sentences  # noqa: E402

MINICONS = """
import sys, json
from minicons import scorer
sentences = [json.loads(line)["text"] for name in ("members", "non_members", "externals")
             for line in open(f"{sys.argv[1]}/{name}.jsonl")]
for model in sys.argv[2:]:
    reference = scorer.MaskedLMScorer(model, "cpu")
    for start in range(0, len(sentences), 8):
        reference.token_score(sentences[start:start + 8])
"""


def build(work: Path, per_set: int, shape: str = "tiny") -> tuple[Path, Path, Path]:
    """The sets and the two models of ``shape`` (bench_pll.SHAPES), made once, reused."""
    data, target, reference = work / "data", work / "target", work / "reference"
    if not (data / "manifest.json").exists():
        corpus = synthetic.write_corpus(work / "corpus", seed=3, n_mimic_patients=200, n_n2c2_patients=60)
        from mlm_mia.data import split
        split.split_notes([corpus["noteevents"]], work / "corpus" / "split", 0.5, seed=0)
        prepare.main(["--train-notes", str(work / "corpus" / "split" / split.TRAIN_FILE),
                      "--heldout-notes", str(work / "corpus" / "split" / split.HELDOUT_FILE),
                      "--n2c2", str(corpus["n2c2"]), "--n-patients", "20", "--n-sentences", str(per_set),
                      "--out-dir", str(data)])
    if not (target.exists() and reference.exists()):
        from bench_pll import SHAPES, build_model
        import gzip
        with gzip.open(work / "corpus" / "NOTEEVENTS.csv.gz", "rt") as handle:
            texts = list(clean_sentences(handle.read(), "rules", 20))
        for folder in (target, reference):
            build_model(folder, SHAPES[shape], texts)
        # two different random models: the reference's weights from another seed
        from transformers import RobertaForMaskedLM
        import torch
        torch.manual_seed(1)
        model = RobertaForMaskedLM(RobertaForMaskedLM.config_class.from_pretrained(reference))
        model.save_pretrained(reference)
    return data, target, reference


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        sys.exit(f"{' '.join(command[:3])} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-set", type=int, default=100)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data, target, reference = build(args.work, args.per_set)
    python = sys.executable
    t_import, _ = timed([python, "-c", "import mlm_mia.study.run"])
    t_minicons, _ = timed([python, "-c", MINICONS, str(data), str(target), str(reference)])
    out = args.work / "results"
    t_run, result = timed([python, str(ROOT / "score_MIA.py"), "--target", str(target), "--reference",
                           str(reference), "--data-dir", str(data), "--out-dir", str(out), "--no-cache"])
    stages = {name: float(seconds) for name, seconds in re.findall(
        r"([A-Za-z_ ]+?) ([0-9.]+) s", result.stderr.split("Seconds: ")[-1].splitlines()[0])}
    t_metrics, _ = timed([python, str(ROOT / "metrics.py"), str(out / "scores.csv")])
    report = {"sentences": 3 * args.per_set, "import_mlm_mia_score_s": t_import,
              "minicons_scoring_only_s": t_minicons, "score_MIA_default_run_s": t_run,
              "ratio_minicons_over_run": t_minicons / t_run, "run_stages_s": stages,
              "metrics_py_s": t_metrics}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
