#!/usr/bin/env python
"""Time and peak memory of ``metrics.py`` (the whole process) on large score tables.

    python bench/bench_metrics.py [--sizes 1000 4000 16000 64000] [--per-patient 1 11]
                                  [--bootstrap 1000] [--population] [--work DIR]

Writes a scores.csv per size (sentences per set) and per number of sentences per
patient: members, non-members and externals, three attacks (``loss`` and ``ratio``
with ties, the blind ``reference_only``) and the text-only validity columns; with
``--population`` also a population set of the same size, so that the per-patient tests
run too. Then runs ``metrics.py`` on each in a child process and prints its wall time
and peak RSS.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlm_mia.common import columns
from mlm_mia.stats import validity  # noqa: E402
from mlm_mia.stats.evaluation import COMPARISONS  # noqa: E402


def score_table(n: int, per_patient: int, seed: int = 0, population: bool = False) -> pd.DataFrame:
    """A valid scores.csv table: ``n`` sentences per set, ``per_patient`` sentences a
    patient (the last patient of a set may have fewer), members scoring higher, a
    patient effect shared by a patient's sentences, and ties in two attacks."""
    rng = np.random.default_rng(seed)
    sets = ["members", "non_members", "externals"] + (["population"] if population else [])
    parts = []
    for index, name in enumerate(sets):
        patient = np.arange(n) // per_patient
        effect = rng.normal(0, 0.5, patient[-1] + 1)[patient]
        n_tokens = rng.integers(5, 60, n)
        reference = -n_tokens * (2.5 + 0.3 * rng.standard_normal(n) + effect)
        target = reference + n_tokens * (0.1 * (name == "members") + 0.1 * rng.standard_normal(n))
        parts.append(pd.DataFrame({
            "set": name, "id": [f"{name[0]}{i}" for i in range(n)],
            "patient_id": [f"{index}-{p}" for p in patient],
            columns.pll(columns.TARGET): target, columns.n_tokens(columns.TARGET): n_tokens,
            columns.pll("reference"): reference, columns.n_tokens("reference"): n_tokens,
            columns.score("loss"): np.round(target / n_tokens, 2),
            columns.score("ratio"): np.round((target - reference) / n_tokens, 3),
            columns.score("reference_only"): reference / n_tokens}))
    table = pd.concat(parts, ignore_index=True)
    for comparison, (positive, negative) in COMPARISONS.items():
        rows = table["set"].isin([positive, negative]).to_numpy()
        values = np.full(len(table), np.nan)
        values[rows] = np.round(rng.random(rows.sum()), 4)
        table[validity.column(comparison)] = values
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000, 64000])
    parser.add_argument("--per-patient", type=int, nargs="+", default=[1, 11])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--population", action="store_true",
                        help="add a population set: the per-patient tests run too")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "metrics")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"{'sentences/set':>13} {'per patient':>11} {'population':>10} {'wall s':>8} {'peak MB':>8}")
    for per_patient in args.per_patient:
        for n in args.sizes:
            path = args.work / f"scores_{n}_{per_patient}{'_population' if args.population else ''}.csv"
            if not path.exists():
                score_table(n, per_patient, population=args.population).to_csv(path, index=False)
            command = [sys.executable, str(ROOT / "metrics.py"), str(path), "--bootstrap",
                       str(args.bootstrap), "--json", str(path.with_suffix(".json"))]
            start = time.perf_counter()
            child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
            elapsed = time.perf_counter() - start
            child.returncode = os.waitstatus_to_exitcode(status)
            if child.returncode:
                sys.exit(f"{path}: metrics.py failed (exit {child.returncode})")
            print(f"{n:>13} {per_patient:>11} {str(args.population):>10} {elapsed:8.1f} "
                  f"{usage.ru_maxrss / 1024:8.0f}", flush=True)

if __name__ == "__main__":
    main()
