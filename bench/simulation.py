"""What the simulation studies share: the noise laws they draw from (normal, skewed: a
centred log-normal, heavy-tailed: t with 2 degrees of freedom; each ``(rng, n) -> n
draws``) and their two flags."""

import argparse

import numpy as np

NOISES = {
    "normal": lambda rng, n: rng.normal(size=n),
    "skewed": lambda rng, n: rng.lognormal(0, 1, size=n) - np.exp(0.5),
    "heavy": lambda rng, n: rng.standard_t(2, size=n),
}


def arguments() -> argparse.Namespace:
    """``--runs`` (simulated studies per row) and ``--boot`` (bootstrap resamples of each)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--boot", type=int, default=400)
    return parser.parse_args()
