#!/usr/bin/env python
"""roberta-base-sized models on the CPU: a whole default run, one 510-token sentence, a shadow's first steps.

    nice -n 10 python bench/bench_base_size.py [--sentences 200] [--steps 20] [--parts run,long,shadow]

Target and reference are random RoBERTa masked LMs of roberta-base's size (hidden 768, 12
layers, 12 heads, 3072, 514 positions, 50,265-row vocabulary; bench_pll's ``base`` shape,
the tokenizer trained here on the synthetic corpus), each from its own seed; the sets come
from prepare_data_MIA.py on the synthetic corpus, about ``--sentences`` in all (members,
non-members, externals; no population set, as prepare's default). Made once under
``--work`` and reused. Each part is a whole process, timed with ``/usr/bin/time -v``
(peak RSS), the load average read before and after:

- ``run``: ``score_MIA.py --no-cache`` with its defaults, and its own stage seconds;
- ``long``: one sentence of 510 tokens through the PLL engine at the default CPU token
  budget (peak RSS after loading the model, and after scoring);
- ``shadow``: one shadow model (``--shadow-models 2 --shadow-index 0``) trained from
  scratch with configs/shadow_recipe.yaml, ``max_steps`` set to ``--steps``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_run import build  # noqa: E402

LONG = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from mlm_mia import models
from mlm_mia.pll import PLLEngine
gib = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
device = models.resolve_device("cpu")
model, tokenizer = models.load_masked_lm(sys.argv[2], "--target", device, models.resolve_dtype("auto", device))
loaded = gib()
words = " ".join(open(sys.argv[3]).read().split()[:2000])
ids = tokenizer(words, add_special_tokens=False)["input_ids"][:510]
engine = PLLEngine(model, tokenizer, models.max_sequence_length(model, tokenizer),
                   batch_tokens=models.default_batch_tokens(device), progress=False)
start = time.perf_counter()
scores = engine.score([tokenizer.decode(ids)])
print(json.dumps({"tokens": scores[0].n_tokens, "seconds": time.perf_counter() - start,
       "rss_after_load_gib": loaded, "peak_rss_gib": gib()}))
"""


def measured(command: list[str], log: Path) -> dict:
    """Wall seconds, CPU seconds, peak RSS and the load average around ``command``; its
    stderr kept, and written to ``log``."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    log.write_text(result.stderr)
    if result.returncode:
        sys.exit(f"{' '.join(command[:3])} failed:\n{result.stderr[-3000:]}")
    field = {name: re.search(rf"{re.escape(name)}: ([0-9.]+)", result.stderr)[1]
             for name in ("Maximum resident set size (kbytes)", "User time (seconds)", "System time (seconds)")}
    cpu = float(field["User time (seconds)"]) + float(field["System time (seconds)"])
    # on a shared machine the CPU seconds say more than the wall clock: its share of the cores
    return {"wall_s": wall, "cpu_s": cpu, "cpu_share": cpu / wall,
            "peak_rss_gib": int(field["Maximum resident set size (kbytes)"]) / 2**20, "load_before": load,
            "load_after": os.getloadavg()[0], "stdout": result.stdout, "stderr": result.stderr}


def stages(stderr: str) -> dict[str, float]:
    """The run's own ``Seconds:`` log line, stage by stage."""
    line = stderr.split("Seconds: ")[-1].splitlines()[0]
    return {name.strip(): float(seconds) for name, seconds in re.findall(r"([A-Za-z_ -]+?) ([0-9.]+) s", line)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=200, help="in all, a third per set")
    parser.add_argument("--steps", type=int, default=20, help="shadow optimiser steps")
    parser.add_argument("--parts", default="run,long,shadow")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "base_size")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    work = args.work / f"s{args.sentences}"
    work.mkdir(parents=True, exist_ok=True)
    data, target, reference = build(work, -(-args.sentences // 3), "base")
    config = json.loads((target / "config.json").read_text())
    from transformers import AutoConfig, AutoModelForMaskedLM
    parameters = sum(p.numel() for p in AutoModelForMaskedLM.from_config(
        AutoConfig.from_pretrained(target)).parameters())
    n_sentences = sum(1 for name in ("members", "non_members", "externals")
                      for _ in open(data / f"{name}.jsonl"))
    report = {"cpu_threads": os.cpu_count(), "parameters": parameters, "vocab_size": config["vocab_size"],
              "max_position_embeddings": config["max_position_embeddings"], "sentences": n_sentences}
    python, score = sys.executable, str(ROOT / "score_MIA.py")
    common = ["--target", str(target), "--reference", str(reference), "--data-dir", str(data), "--device", "cpu"]

    if "run" in parts:
        run = measured([python, score, *common, "--out-dir", str(work / "results"), "--no-cache"],
                       work / "run.log")
        report["run"] = {k: run[k] for k in ("wall_s", "cpu_s", "cpu_share", "peak_rss_gib", "load_before", "load_after")}
        report["run"]["stages_s"] = stages(run["stderr"])
        report["run"]["seconds_per_sentence"] = run["wall_s"] / n_sentences
        report["run"]["cpu_seconds_per_sentence"] = run["cpu_s"] / n_sentences
    if "long" in parts:
        import gzip
        text = work / "corpus" / "long.txt"
        with gzip.open(work / "corpus" / "NOTEEVENTS.csv.gz", "rt") as handle:
            text.write_text(handle.read(200_000))
        long = measured([python, "-c", LONG, str(ROOT), str(target), str(text)], work / "long.log")
        report["long"] = {**json.loads(long["stdout"].strip().splitlines()[-1]), "process_peak_rss_gib": long["peak_rss_gib"],
                          "wall_s": long["wall_s"], "cpu_s": long["cpu_s"], "load_before": long["load_before"], "load_after": long["load_after"]}
    if "shadow" in parts:
        recipe = yaml.safe_load((ROOT / "configs" / "shadow_recipe.yaml").read_text())
        recipe["max_steps"] = args.steps
        recipe_file = work / f"shadow_recipe_{args.steps}.yaml"
        recipe_file.write_text(yaml.safe_dump(recipe))
        shadow_dir = work / "shadows"
        shutil.rmtree(shadow_dir, ignore_errors=True)  # a fresh training, nothing reused
        shadow = measured([python, score, *common, "--out-dir", str(work / "shadow_results"),
                           "--shadow-models", "2", "--shadow-index", "0", "--shadow-recipe", str(recipe_file),
                           "--shadow-dir", str(shadow_dir)], work / "shadow.log")
        seconds = stages(shadow["stderr"])["shadow training"]
        tokens = recipe["batch_size"] * recipe["gradient_accumulation"] * recipe["block_size"] * args.steps
        report["shadow"] = {k: shadow[k] for k in ("wall_s", "cpu_s", "cpu_share", "peak_rss_gib", "load_before", "load_after")}
        report["shadow"].update({"steps": args.steps, "training_s": seconds, "seconds_per_step": seconds / args.steps,
                                 "tokens_per_s": tokens / seconds,
                                 "log": [line for line in shadow["stderr"].splitlines() if "shadow" in line.lower()]})
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
