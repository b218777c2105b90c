"""The f-DP one-run bound: Mahloujifar, Melis & Chaudhuri 2024, "Auditing f-Differential
Privacy in One Run" (arXiv:2410.22235, ICML 2025).

The same game as Steinke, Nasr & Jagielski's (``audit.py``): ``m`` canaries, each
included with probability 1/2; ``r`` guesses, ``v`` of them right. Instead of an
(epsilon, delta) pair the training is hypothesised mu-Gaussian-DP (Dong, Roth & Su
2019): telling whether one record was in is no easier than telling N(0, 1) from
N(mu, 1). Under that trade-off curve the paper bounds the chance of ``v`` or more right
guesses by a recursion over the number right (their auditing algorithm, with the
guesses capped at ``r``): put the tail's mass ``tau r / m`` on the outcome, split
``v : r - v`` between right (``a_v``) and wrong (``b_v``) guesses, and go down one right
guess at a time,

    b_i = max(b_{i+1}, Phi(Phi^-1(a_{i+1}) - mu)),
    a_i = a_{i+1} + i / (r - i) * (b_i - b_{i+1}),        i = v-1, ..., 0;

if ``a_0 + b_0`` exceeds ``r / m`` the mass needed is more than there is, so under
mu-GDP the outcome has probability below ``tau``: mu is rejected at level ``tau``. A
smaller mu (more private) needs more mass, so the rejected mu form an interval from 0;
the bound is the largest rejected mu among candidates fixed in advance (noise
multipliers ``1 / mu = 0.001 + 0.01 i``, those of the authors' reference implementation
in facebookresearch/PrivacyGuard, so the numbers agree with it; the grid rounds the bound
down, never up). It is reported as mu and as the epsilon of mu-GDP at the audit's delta.

The bound holds only if the training's trade-off curve is Gaussian DP, as DP-SGD's is
under the usual (central-limit) analysis; Steinke et al.'s needs no such assumption.
"""

from __future__ import annotations

import math

from scipy.optimize import brentq
from scipy.special import log_ndtr, ndtr, ndtri

ASSUMPTION = ("f-DP bound (Mahloujifar, Melis & Chaudhuri 2024): valid when the training's trade-off "
              "curve is Gaussian DP, as DP-SGD's is under the usual analysis; Steinke et al.'s bound needs "
              "no such assumption")
NOISE_START, NOISE_STEP, CANDIDATES = 0.001, 0.01, 100_000  # candidate 1 / mu, fixed in advance


def gdp_delta(mu: float, epsilon: float) -> float:
    """The delta of mu-GDP at ``epsilon`` (Dong, Roth & Su 2019, Corollary 2.13)."""
    return float(ndtr(-epsilon / mu + mu / 2) - math.exp(epsilon + log_ndtr(-epsilon / mu - mu / 2)))


def gdp_epsilon(mu: float, delta: float) -> float:
    """The smallest epsilon with mu-GDP implying (epsilon, delta)-DP: 0 for mu = 0 or
    when delta covers it at 0; infinite for delta = 0 and mu > 0."""
    if mu == 0 or gdp_delta(mu, 0.0) <= delta:
        return 0.0
    if delta == 0 or math.isinf(mu):
        return math.inf
    high = 1.0
    while gdp_delta(mu, high) > delta:
        high *= 2
    return float(brentq(lambda e: gdp_delta(mu, e) - delta, 0.0, high, xtol=1e-12))


def rejects(mu: float, m: int, r: int, v: int, beta: float) -> bool:
    """Whether ``v`` right of ``r`` guesses (of ``m`` canaries) rejects mu-GDP at level ``beta``."""
    total = r / m
    right, wrong = beta * total * v / r, beta * total * (r - v) / r
    for i in range(v - 1, -1, -1):
        lower = max(wrong, float(ndtr(ndtri(right) - mu)))
        right, wrong = right + i / (r - i) * (lower - wrong), lower
        if right + wrong > total:  # both only grow as i falls
            return True
    return right + wrong > total


def mu_lower_bound(m: int, r: int, v: int, beta: float = 0.05) -> float:
    """The largest candidate mu that ``v`` right of ``r`` guesses rejects at level ``beta``:
    0 when none is rejected (no right guess, or chance-level guessing)."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")

    def mu(i: int) -> float:
        return 1 / (NOISE_START + NOISE_STEP * i)

    if v == 0 or not rejects(mu(CANDIDATES - 1), m, r, v, beta):
        return 0.0
    kept, rejected = 0, CANDIDATES - 1  # mu(0) = 1000 is never rejected: its curve allows anything
    while rejected - kept > 1:
        middle = (kept + rejected) // 2
        kept, rejected = (kept, middle) if rejects(mu(middle), m, r, v, beta) else (middle, rejected)
    return mu(rejected)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, beta: float = 0.05) -> float:
    """The epsilon at ``delta`` of the mu-GDP that ``v`` right of ``r`` guesses rejects."""
    return gdp_epsilon(mu_lower_bound(m, r, v, beta), delta)
