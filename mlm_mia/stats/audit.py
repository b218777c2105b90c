"""The canary audit: what a planted-canary experiment proves about the trained model.

- **A lower bound on epsilon** (Steinke, Nasr & Jagielski 2023, "Privacy auditing with one
  (1) training run"): ``m`` canaries, each included independently with probability 1/2.
  The auditor guesses "in" for the ``k+`` highest-scoring and "out" for the ``k-``
  lowest-scoring canaries and abstains on the rest; ``r = k+ + k-`` guesses, ``v`` right.
  If training were (epsilon, delta)-DP, P[at least v right] would be at most
  ``P[Binomial(r, q) >= v] + 2 m delta max_i P[v - i <= Binomial(r, q) < v] / i`` with
  ``q = e^eps / (1 + e^eps)`` (their Theorem; the second term vanishes for delta = 0), so
  every epsilon for which that is below ``beta`` is rejected with confidence 1 - beta.
  The guesses are fixed in advance on a small grid of ``(k+, k-)``, the grid paid for by
  a union bound (each tried at ``beta / |grid|``): the reported bound stays valid.
- **The f-DP bound** (Mahloujifar, Melis & Chaudhuri 2024, ``fdp_audit.py``) from the same
  guesses, on the same grid and union bound: tighter, but valid only if the training is
  Gaussian DP.
- **Canary patients**: the same bound with the patient as the unit. Each canary patient's
  notes go in or stay out together, by one coin; the patient's statistic is the mean
  attack score over its notes, so the bound is on the privacy of all of one patient's
  notes (patient-level privacy), not of one record.
- **Exposure** (Carlini et al. 2019, "The secret sharer"): the rank of the canary's true
  secret among alternative secrets by the target's PLL of the whole sentence;
  ``log2 |R| - log2 rank``, estimated from a seeded sample of alternatives as
  ``-log2((1 + #{alternatives at least as likely}) / (n + 1))`` bits (at most
  ``log2(n + 1)``).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from ..common import columns
from ..attacks import is_blind
from . import fdp_audit

CONFIDENCE = 0.95
# guesses as fractions of the canaries: k+ and k- each (the grid, fixed in advance)
GUESS_FRACTIONS = (0.05, 0.1, 0.2, 0.5)
INCLUDED = "canary_included"
REPEATS = "canary_repeats"
EXPOSURE = "canary_exposure_bits"
SET = "canaries"
PATIENT_SET = "canary_patients"  # the canary patients' notes, a row each
PATIENT_STATISTIC = "mean attack score over the patient's canary notes"


def _binomial_pmf(r: int, q: float) -> np.ndarray:
    """P[Binomial(r, q) = j] for j = 0..r, in log space (no overflow at large r)."""
    from scipy.special import gammaln
    j = np.arange(r + 1)
    with np.errstate(divide="ignore"):
        log = (gammaln(r + 1) - gammaln(j + 1) - gammaln(r - j + 1)
               + j * np.log(q) + (r - j) * np.log1p(-q))
    return np.exp(log)


def p_value(m: int, r: int, v: int, epsilon: float, delta: float = 0.0) -> float:
    """P[at least ``v`` of ``r`` guesses right] under (epsilon, delta)-DP, bounded as
    Steinke et al. do for ``m`` canaries."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    q = 1 / (1 + math.exp(-epsilon))
    pmf = _binomial_pmf(r, q)
    tail = float(pmf[v:].sum())
    if delta == 0 or v == 0:
        return min(1.0, tail)
    below = np.cumsum(pmf[:v][::-1])  # P[v - i <= Binomial < v], i = 1..v
    return min(1.0, tail + 2 * m * delta * float((below / np.arange(1, v + 1)).max()))


def epsilon_lower_bound(m: int, r: int, v: int, delta: float = 0.0, beta: float = 1 - CONFIDENCE,
                        iterations: int = 60) -> float:
    """The largest epsilon that ``v`` right of ``r`` guesses rejects at level ``beta``: 0
    when none is rejected (no right guess, or chance-level guessing)."""
    if p_value(m, r, v, 0.0, delta) >= beta:
        return 0.0
    low, high = 0.0, 1.0
    while p_value(m, r, v, high, delta) < beta:
        low, high = high, 2 * high
        if high > 1e4:  # every guess right and many of them: no finite bound is rejected
            return math.inf
    for _ in range(iterations):
        middle = (low + high) / 2
        low, high = (middle, high) if p_value(m, r, v, middle, delta) < beta else (low, middle)
    return low


def guess_grid(m: int) -> list[tuple[int, int]]:
    """The ``(k+, k-)`` pairs tried, fixed before looking at the scores."""
    sizes = sorted({max(1, int(f * m)) for f in GUESS_FRACTIONS if 2 * max(1, int(f * m)) <= m})
    return [(k, k) for k in sizes]


def _best_guesses(scores: np.ndarray, included: np.ndarray, bound: Callable[[int, int, int, float], float],
                  confidence: float) -> dict:
    """The largest ``bound(m, guesses, correct, beta)`` over :func:`guess_grid`, each pair
    at ``beta / |grid|`` (a union bound), with the guesses that gave it."""
    m = len(scores)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    grid = guess_grid(m)
    beta = (1 - confidence) / max(1, len(grid))
    best = {"value": 0.0, "k_plus": None, "k_minus": None, "guesses": 0, "correct": 0}
    for k_plus, k_minus in grid:
        top, bottom = order[:k_plus], order[m - k_minus:]
        correct = int(included[top].sum() + (~included[bottom]).sum())
        value = bound(m, k_plus + k_minus, correct, beta)
        if value > best["value"]:
            best = {"value": value, "k_plus": k_plus, "k_minus": k_minus,
                    "guesses": k_plus + k_minus, "correct": correct}
    return best | {"canaries": m, "confidence": confidence, "grid": grid}


def one_run_bound(scores: np.ndarray, included: np.ndarray, delta: float = 0.0,
                  confidence: float = CONFIDENCE) -> dict:
    """Steinke et al.'s best epsilon lower bound over the grid, with the guesses that gave it."""
    best = _best_guesses(scores, included, lambda m, r, v, beta: epsilon_lower_bound(m, r, v, delta, beta),
                         confidence)
    return {"epsilon": best.pop("value")} | best | {"delta": delta}


def fdp_bound(scores: np.ndarray, included: np.ndarray, delta: float = 0.0, confidence: float = CONFIDENCE) -> dict:
    """The f-DP bound from the same grid of guesses: the largest mu of Gaussian DP rejected
    and its epsilon at ``delta`` (None at delta 0, where mu-GDP has no finite epsilon)."""
    best = _best_guesses(scores, included, fdp_audit.mu_lower_bound, confidence)
    mu = best.pop("value")
    epsilon = fdp_audit.gdp_epsilon(mu, delta) if delta > 0 else None
    return {"mu": mu, "epsilon": epsilon} | best | {"delta": delta}


def _perfect(included: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a perfect attack on these canaries, and their coins."""
    return np.asarray(included, dtype=float), np.asarray(included, dtype=bool)


def bound_ceiling(included: np.ndarray, delta: float = 0.0, confidence: float = CONFIDENCE) -> float:
    """The largest bound :func:`one_run_bound` could give these canaries: its bound for a
    perfect attack (every guess of the grid right, as many as there are included and
    left-out canaries). A bound at its ceiling is limited by the number of canaries, not
    by the model."""
    return one_run_bound(*_perfect(included), delta, confidence)["epsilon"]


def fdp_ceiling(included: np.ndarray, delta: float = 0.0, confidence: float = CONFIDENCE) -> dict:
    """The largest mu and epsilon :func:`fdp_bound` could give these canaries."""
    bound = fdp_bound(*_perfect(included), delta, confidence)
    return {"mu": bound["mu"], "epsilon": bound["epsilon"]}


def exposure_bits(true_pll: float, alternative_plls: np.ndarray) -> float:
    """The canary's exposure estimated from its rank among sampled alternatives."""
    alternative_plls = np.asarray(alternative_plls, dtype=float)
    rank = 1 + int((alternative_plls >= true_pll).sum())
    return float(math.log2((alternative_plls.size + 1) / rank))


def canary_report(table: pd.DataFrame, delta: float = 0.0) -> dict | None:
    """Per attack and per repeat group (and all canaries together): the AUC of included
    against left-out canaries, Steinke et al.'s one-run epsilon lower bound and the f-DP
    bound; per repeat group, the mean exposure of the included and of the left-out
    canaries' secrets."""
    rows = table[table["set"] == SET]
    if rows.empty or INCLUDED not in rows.columns:
        return None
    included = rows[INCLUDED].to_numpy(bool)
    repeats = rows[REPEATS].to_numpy(int)
    groups = {"all": np.ones(len(rows), bool)} | {str(k): repeats == k for k in sorted(set(repeats))}
    by_attack = _by_attack(rows, included, groups, columns.attack_names(table), delta)
    exposure = None
    if EXPOSURE in rows.columns:
        bits = rows[EXPOSURE].to_numpy(float)
        exposure = {name: {"included": float(bits[mask & included].mean()) if (mask & included).any() else None,
                           "left_out": float(bits[mask & ~included].mean()) if (mask & ~included).any() else None}
                    for name, mask in groups.items()}
    return {"canaries": int(len(rows)), "included": int(included.sum()), "delta": delta,
            "confidence": CONFIDENCE, "by_attack": by_attack, "exposure_bits": exposure,
            "epsilon_ceiling": {name: bound_ceiling(included[mask], delta) for name, mask in groups.items()},
            "fdp_ceiling": {name: fdp_ceiling(included[mask], delta) for name, mask in groups.items()},
            "fdp_assumption": fdp_audit.ASSUMPTION}


def _by_attack(rows: pd.DataFrame, included: np.ndarray, groups: dict[str, np.ndarray], attacks: list[str],
               delta: float) -> dict:
    """Per attack (blind baselines aside) and group of the ``rows`` (one per canary, the
    attacks' scores in their columns): the AUC of included against left-out canaries and
    the one-run bounds (Steinke et al.'s and the f-DP one)."""
    from . import metrics

    by_attack = {}
    for attack in (a for a in attacks if not is_blind(a)):
        scores = rows[columns.score(attack)].to_numpy(float)
        by_attack[attack] = {
            name: {"auc": metrics.auc(included[mask], scores[mask]) if 0 < included[mask].sum() < mask.sum() else None,
                   "epsilon": one_run_bound(scores[mask], included[mask], delta),
                   "fdp": fdp_bound(scores[mask], included[mask], delta)}
            for name, mask in groups.items()}
    return by_attack


def canary_patient_report(table: pd.DataFrame, delta: float = 0.0) -> dict | None:
    """The audit of the canary patients, a canary being a patient: per attack, the AUC of
    included against left-out patients and the one-run bound, each patient scored by the
    mean of the attack's scores over its notes (:data:`PATIENT_STATISTIC`)."""
    rows = table[table["set"] == PATIENT_SET]
    if rows.empty or INCLUDED not in rows.columns:
        return None
    attacks = [a for a in columns.attack_names(table) if not is_blind(a)]
    grouped = rows.groupby("patient_id", sort=True)
    if (grouped[INCLUDED].nunique() > 1).any():
        raise ValueError("a canary patient's notes differ in canary_included: patients go in or out whole")
    patients = grouped[[INCLUDED] + [columns.score(a) for a in attacks]].mean()
    included = patients[INCLUDED].to_numpy(float) == 1
    notes = grouped.size().to_numpy()
    everyone = {"all": np.ones(len(patients), bool)}
    return {"patients": int(len(patients)), "included": int(included.sum()), "notes": int(notes.sum()),
            "notes_per_patient": [int(notes.min()), int(notes.max())], "statistic": PATIENT_STATISTIC,
            "delta": delta, "confidence": CONFIDENCE,
            "by_attack": _by_attack(patients, included, everyone, attacks, delta),
            "epsilon_ceiling": {"all": bound_ceiling(included, delta)},
            "fdp_ceiling": {"all": fdp_ceiling(included, delta)}, "fdp_assumption": fdp_audit.ASSUMPTION}
