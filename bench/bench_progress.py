#!/usr/bin/env python
"""What progress costs: the same sentences scored by the engine without progress and with
it (its lines logged from the first update on, the most it ever does), alternately, the
best of --repeats each; and the cost of one update times the updates a run makes (a
bound that the load of a shared machine does not blur).

    python bench/bench_progress.py              # tiny model, 200 sentences, on the CPU
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from mlm_mia.common import progress  # noqa: E402
from mlm_mia.data import synthetic  # noqa: E402
from mlm_mia.data.sources import note_source  # noqa: E402
from mlm_mia.engine.pll import PLLEngine  # noqa: E402
from mlm_mia.training.train import TinyShape, new_model, train_tokenizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="sentences (200)")
    parser.add_argument("--repeats", type=int, default=5, help="timings of each kind (5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        corpus = synthetic.write_corpus(Path(work), seed=0, n_mimic_patients=40, n_n2c2_patients=1)
        texts = [s for _, s in note_source(str(corpus["noteevents"]), "notes", None).sentences(20)]
        tokenizer = train_tokenizer(texts, Path(work) / "tokenizer", vocab_size=2000)
    model = new_model(tokenizer, TinyShape(), seed=0).eval()
    engine = PLLEngine(model, tokenizer, 512)
    sentences = texts[:args.n]
    # every line goes somewhere real, and from the first update on
    logging.basicConfig(level=logging.INFO, stream=open("/dev/null", "w"))
    progress.DELAY = 0.0

    calls = []

    class Counted(progress.Progress):
        def update(self, units: float = 1) -> None:
            calls.append(units)
            super().update(units)

    def with_progress() -> None:
        calls.clear()
        with Counted("PLL bench", len(sentences), "sentences") as bar:
            engine.score(sentences, bar)

    timings = {"without": [], "with": []}
    engine.score(sentences)  # warm-up
    for _ in range(args.repeats):
        for kind, call in (("without", lambda: engine.score(sentences)), ("with", with_progress)):
            start = time.perf_counter()
            call()
            timings[kind].append(time.perf_counter() - start)
    best = {kind: min(values) for kind, values in timings.items()}
    bar = progress.Progress("updates", 10**6, "units")
    start = time.perf_counter()
    for _ in range(100_000):
        bar.update()
    per_update = (time.perf_counter() - start) / 100_000
    print(f"{len(sentences)} sentences, tiny model, {torch.get_num_threads()} threads: best of {args.repeats}: "
          f"without progress {best['without']:.3f} s, with {best['with']:.3f} s "
          f"({100 * (best['with'] / best['without'] - 1):+.1f}%); one update {1e6 * per_update:.2f} us, "
          f"{len(calls)} updates a run: {1e3 * len(calls) * per_update:.3f} ms "
          f"({100 * len(calls) * per_update / best['without']:.4f}% of the scoring)")


if __name__ == "__main__":
    main()
