"""Cost of the name-condition probe's steps that do not run a model, at the demo's size and
10x and 100x it: the frequency-matched pairs (stats/name_probe.items) and the AUCs with
their patient bootstrap (evaluate, 1000 resamples), on MIMIC-like diagnosis lists (each
patient 3-20 ICD-9 codes drawn from a Zipf-like law over ``--codes`` codes).

    python bench/bench_name_probe.py [--codes 6000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mlm_mia.stats import name_probe  # noqa: E402


def conditions(n_patients: int, n_codes: int, rng) -> dict[str, list[str]]:
    weights = 1 / np.arange(1, n_codes + 1)
    weights /= weights.sum()
    return {str(p): [f"c{c}" for c in dict.fromkeys(rng.choice(n_codes, rng.integers(3, 21), p=weights))]
            for p in range(n_patients)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--codes", type=int, default=6000)
    args = parser.parse_args()
    print(f"{'patients per group':>18} {'pairs':>9} {'items s':>8} {'evaluate s':>10}")
    for per_group in (90, 900, 9000):
        rng = np.random.default_rng(0)
        table = conditions(4 * per_group, args.codes, rng)  # the diagnosis table: more patients than tested
        patients = {"members": [str(p) for p in range(per_group)],
                    "non_members": [str(p) for p in range(per_group, 2 * per_group)]}
        start = time.perf_counter()
        made = name_probe.items(patients, table, seed=0)
        made_s = time.perf_counter() - start
        scores = name_probe.scores_table(made, rng.normal(size=len(made)), rng.normal(size=len(made)))
        start = time.perf_counter()
        name_probe.evaluate(scores, 1000, 0)
        print(f"{per_group:>18} {len(made):>9,} {made_s:>8.2f} {time.perf_counter() - start:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
