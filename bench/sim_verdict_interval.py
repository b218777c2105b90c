"""The verdict's (b) by simulation with a known truth: the paired patient-bootstrap interval
of an attack's AUC minus the text-only classifier's (counted as 0.5 where below), on normal,
skewed and heavy-tailed scores.

A study: members and non-members of P patients each, k sentences a patient; the attack
scores a patient effect + ``leak`` for a member + noise, the text-only classifier ``shift``
for a member + noise (its own). The truth is the population value, AUC(attack) - max(0.5,
AUC(text)), by Monte Carlo on 2,000,000 pairs. Prints how often the 95% interval held it,
and how often the verdict would say "leaks" (interval above 0): with ``leak`` 0 that is its
false alarm rate, which must stay at or below 2.5%.

    python bench/sim_verdict_interval.py [--runs 400] [--boot 400]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mlm_mia.stats import metrics  # noqa: E402
from simulation import NOISES, arguments  # noqa: E402  (bench/simulation.py)



def study(rng, patients: int, k: int, leak: float, shift: float, noise: str):
    member = np.repeat([1, 0], patients * k)
    patient = np.repeat(np.arange(2 * patients), k)
    effect = rng.normal(0, 0.5, 2 * patients)[patient]
    attack = effect + leak * member + NOISES[noise](rng, member.size)
    text = shift * member + NOISES[noise](rng, member.size)
    return member, patient, attack, text


def truth(leak: float, shift: float, noise: str, rng) -> float:
    n = 2_000_000
    auc = lambda d: float(np.mean(d > 0) + 0.5 * np.mean(d == 0))  # noqa: E731
    attack = auc(rng.normal(0, 0.5, n) + leak + NOISES[noise](rng, n) - rng.normal(0, 0.5, n) - NOISES[noise](rng, n))
    text = auc(shift + NOISES[noise](rng, n) - NOISES[noise](rng, n))
    return attack - max(0.5, text)


def main() -> None:
    args = arguments()
    rng = np.random.default_rng(0)
    print(f"{'noise':7} {'patients':>8} {'k':>3} {'leak':>5} {'shift':>5} {'truth':>7} {'covered':>8} "
          f"{'says leaks':>10} {'s':>4}")
    for noise in NOISES:
        for patients, k in ((30, 8), (90, 11)):
            for leak, shift in ((0.0, 0.0), (0.0, 0.3), (0.3, 0.0), (0.3, 0.3)):
                start = time.perf_counter()
                true = truth(leak, shift, noise, rng)
                covered = leaks = 0
                for run in range(args.runs):
                    y, patient, attack, text = study(rng, patients, k, leak, shift, noise)
                    resamples = metrics.resample(y, patient, args.boot, run)
                    _, draws = metrics.paired_auc_differences(y, {"a": attack}, text, resamples, floor=0.5)["a"]
                    low, high = metrics.interval(draws)
                    covered += low <= true <= high
                    leaks += low > 0
                print(f"{noise:7} {patients:>8} {k:>3} {leak:>5} {shift:>5} {true:>+7.3f} "
                      f"{covered / args.runs:>8.3f} {leaks / args.runs:>10.3f} {time.perf_counter() - start:>4.0f}",
                      flush=True)


if __name__ == "__main__":
    main()
