#!/usr/bin/env python
"""What the neighbourhood attack (ne) costs: seconds per sentence per neighbour.

    python bench/bench_neighbours.py [--per-set 100] [--neighbours 4] [--work DIR]

bench_run.py's workload (sets of ``--per-set`` sentences, two random tiny RoBERTa models
with roberta-base's vocabulary), scored by ``score_MIA.py --no-cache --neighbours N`` with
the reference as the neighbour model. Prints the run's ``neighbours`` stage (making the
neighbours under the reference, then their PLLs under the target) per sentence and per
neighbour made (a sentence may have fewer than N clean swaps), beside its ``PLL`` stage per
sentence and model (target and reference): each neighbour should cost about one PLL of the
sentence, plus 1/N of one for making them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_run import build, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-set", type=int, default=100)
    parser.add_argument("--neighbours", type=int, default=4)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "run")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data, target, reference = build(args.work, args.per_set)
    out = args.work / "results_neighbours"
    seconds, result = timed([sys.executable, str(ROOT / "score_MIA.py"), "--target", str(target),
                             "--reference", str(reference), "--data-dir", str(data), "--out-dir", str(out),
                             "--no-cache", "--no-plot", "--bootstrap", "0", "--neighbours", str(args.neighbours)])
    stages = {name.strip(): float(s) for name, s in re.findall(
        r"([A-Za-z_ ]+?) ([0-9.]+) s", result.stderr.split("Seconds: ")[-1].splitlines()[0])}
    sentences = sum(1 for name in ("members", "non_members", "externals")
                    for _ in open(data / f"{name}.jsonl", encoding="utf-8"))
    made = json.loads((out / "settings.json").read_text(encoding="utf-8"))["neighbours"]["made"]
    print(json.dumps({
        "sentences": sentences, "neighbours": args.neighbours, "neighbours_made": made, "run_s": seconds,
        "stages_s": stages,
        "pll_ms_per_sentence_per_model": 1000 * stages["PLL"] / (2 * sentences),
        "neighbours_ms_per_neighbour_made": 1000 * stages["neighbours"] / made,
    }, indent=2))


if __name__ == "__main__":
    main()
