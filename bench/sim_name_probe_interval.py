"""Coverage of the name-condition probe's patient-bootstrap interval, by simulation with a
known truth: the members' AUC of own against other conditions (stats/name_probe.evaluate)
and the members-minus-non-members difference.

Each patient has k own conditions and k others; a (patient, condition) score is a patient
effect (shared by the patient's own and other conditions) + ``shift`` for an own condition +
noise, the noise normal, skewed (centred log-normal) or heavy-tailed (t with 2 degrees of
freedom). The true AUC is that of an infinite population of such patients (by Monte Carlo on
2,000,000 pairs). Prints, per setting, how often the 95% interval held the truth.

    python bench/sim_name_probe_interval.py [--runs 400] [--boot 400]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mlm_mia.stats import name_probe  # noqa: E402
from simulation import NOISES, arguments  # noqa: E402  (bench/simulation.py)



def scores(rng, n_patients: int, k: int, shift: float, noise: str, patient_sd: float = 1.0):
    """own (1) and other (0) rows of ``n_patients`` patients, k of each."""
    effect = np.repeat(rng.normal(0, patient_sd, n_patients), 2 * k)
    own = np.tile(np.repeat([1, 0], k), n_patients)
    value = effect + shift * own + NOISES[noise](rng, own.size)
    return own, value, np.repeat(np.arange(n_patients), 2 * k)


def true_auc(shift: float, noise: str, rng) -> float:
    n = 2_000_000  # own and other from independent patients, as the pooled AUC compares them
    own = rng.normal(size=n) + shift + NOISES[noise](rng, n)
    other = rng.normal(size=n) + NOISES[noise](rng, n)
    return float(np.mean(own > other) + 0.5 * np.mean(own == other))


def table(groups: dict) -> pd.DataFrame:
    rows = []
    for group, (own, value, patient) in groups.items():
        rows.append(pd.DataFrame({"group": group, "patient_id": [f"{group}{p}" for p in patient],
                                  "own": own, "with_name": value, "without_name": 0.0}))
    return pd.concat(rows, ignore_index=True)


def main() -> None:
    args = arguments()
    rng = np.random.default_rng(0)
    print(f"{'noise':7} {'patients':>8} {'k':>3} {'shift':>5} {'true AUC':>8} {'AUC cover':>9} "
          f"{'diff cover':>10} {'s':>5}")
    for noise in NOISES:
        for n_patients, k in ((8, 3), (16, 3), (90, 8)):
            for shift in (0.0, 0.8):
                start = time.perf_counter()
                truth = true_auc(shift, noise, rng)
                hit_auc = hit_diff = 0
                for run in range(args.runs):
                    groups = {"members": scores(rng, n_patients, k, shift, noise),
                              "non_members": scores(rng, n_patients, k, 0.0, noise)}
                    result = name_probe.evaluate(table(groups), args.boot, run)
                    low, high = result["groups"]["members"]["auc_ci"]
                    hit_auc += low <= truth <= high
                    low, high = result["auc_difference_ci"]
                    hit_diff += low <= truth - 0.5 <= high
                print(f"{noise:7} {n_patients:>8} {k:>3} {shift:>5} {truth:>8.3f} "
                      f"{hit_auc / args.runs:>9.3f} {hit_diff / args.runs:>10.3f} "
                      f"{time.perf_counter() - start:>5.0f}", flush=True)


if __name__ == "__main__":
    main()
