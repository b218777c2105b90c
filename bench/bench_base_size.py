#!/usr/bin/env python
"""roberta-base-sized models on the CPU: a whole default run, one 510-token sentence, a shadow's first steps.

    nice -n 10 python bench/bench_base_size.py [--sentences 200] [--steps 20] [--parts run,long,shadow]
    python bench/bench_base_size.py --shape tiny --sentences 201 --steps 2   # the bench itself, in minutes

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
- ``shadow``: shadow 0 of ``--shadow-models 2``, trained from scratch as score_MIA.py
  trains it (``shadow.plan``, ``shadow.train``) with configs/shadow_recipe.yaml,
  ``max_steps`` set to ``--steps``: each optimiser step's wall and CPU seconds and the
  tokens it saw (padding left out).

``--sentences`` below 201 can make prepare_data_MIA.py refuse the synthetic externals (a
patient left with no sentence of its own among the 20 drawn).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_run import build  # noqa: E402

LONG = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from mlm_mia.engine import models
from mlm_mia.engine.pll import PLLEngine
gib = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
device = models.resolve_device("cpu")
model, tokenizer = models.load_masked_lm(sys.argv[2], "--target", device, models.resolve_dtype("auto", device))
loaded = gib()
words = " ".join(open(sys.argv[3]).read().split()[:2000])
ids = tokenizer(words, add_special_tokens=False)["input_ids"][:510]
engine = PLLEngine(model, tokenizer, models.max_sequence_length(model, tokenizer),
                   batch_tokens=models.default_batch_tokens(device))
start = time.perf_counter()
scores = engine.score([tokenizer.decode(ids)])
print(json.dumps({"tokens": scores[0].n_tokens, "seconds": time.perf_counter() - start,
       "rss_after_load_gib": loaded, "peak_rss_gib": gib()}))
"""

# one shadow as score_MIA.py --shadow-models 2 trains shadow 0 (shadow.plan, shadow.train),
# the recipe's max_steps set; each optimiser step's wall and CPU seconds appended to a file
SHADOW = """
import dataclasses, json, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from transformers import TrainerCallback
from mlm_mia.engine import models
from mlm_mia.training import recipe, shadow
data, target, shadow_dir = map(Path, sys.argv[2:5])
steps, steps_file = int(sys.argv[5]), Path(sys.argv[6])
chosen = dataclasses.replace(recipe.load(Path(sys.argv[1]) / "configs" / "shadow_recipe.yaml"), max_steps=steps)
first = shadow.plan(data, 2, target, shadow.architecture_key(target), chosen, "scratch", shadow_dir, 0)[0]
steps_file.write_text("")

class Steps(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        pad = model.config.pad_token_id
        def count(module, args, kwargs):  # the tokens of each forward pass, padding left out
            self.tokens += int((kwargs["input_ids"] != pad).sum())
        model.base_model.register_forward_pre_hook(count, with_kwargs=True)  # as MaskedHeadTrainer calls it
    def on_step_begin(self, args, state, control, **kwargs):
        self.wall, self.cpu, self.tokens = time.perf_counter(), time.process_time(), 0
    def on_step_end(self, args, state, control, **kwargs):
        with steps_file.open("a") as out:
            out.write(json.dumps({"step": state.global_step, "wall_s": time.perf_counter() - self.wall,
                                  "cpu_s": time.process_time() - self.cpu, "tokens": self.tokens}) + "\\n")

shadow.train(first, "scratch", target, models.load_tokenizer(target, "--target"), chosen, "cpu", [Steps()])
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
    parser.add_argument("--shape", default="base", help="bench_pll.SHAPES (tiny: to try the bench out)")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "base_size")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    work = args.work / f"{args.shape}-s{args.sentences}"
    work.mkdir(parents=True, exist_ok=True)
    data, target, reference = build(work, -(-args.sentences // 3), args.shape)
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
        shadow_dir = work / "shadows"
        shutil.rmtree(shadow_dir, ignore_errors=True)  # a fresh training, nothing reused
        steps_file = work / "shadow_steps.jsonl"
        shadow = measured([python, "-c", SHADOW, str(ROOT), str(data), str(target), str(shadow_dir),
                           str(args.steps), str(steps_file)], work / "shadow.log")
        steps = [json.loads(line) for line in steps_file.read_text().splitlines()]
        per_step = [s["wall_s"] for s in steps]
        report["shadow"] = {k: shadow[k] for k in ("wall_s", "cpu_s", "cpu_share", "peak_rss_gib", "load_before", "load_after")}
        report["shadow"].update({"steps": steps, "mean_step_wall_s": sum(per_step) / len(per_step),
                                 "mean_step_cpu_s": sum(s["cpu_s"] for s in steps) / len(steps),
                                 "tokens_per_s": sum(s["tokens"] for s in steps) / sum(per_step),
                                 "tokens_per_cpu_s": sum(s["tokens"] for s in steps) / sum(s["cpu_s"] for s in steps)})
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
