"""The f-DP one-run bound (Mahloujifar, Melis & Chaudhuri 2024) beside Steinke et al.'s."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from mlm_mia.stats import audit, fdp_audit

# (m canaries, guesses, right) -> (Steinke et al., f-DP) at delta 1e-5, 95% (issue 29's worked values,
# from the authors' public implementations)
WORKED = {(1000, 100, 100): (3.47, 5.51), (1000, 100, 90): (1.63, 2.45),
          (10000, 1000, 900): (2.02, 2.79), (100000, 1000, 1000): (3.49, 7.12)}


def scan_mu(m: int, r: int, v: int, beta: float = 0.05) -> float:
    """The paper's audit written another way: every candidate noise 0.001 + 0.01 i (i < 1000)
    at once, scanned from the least private; the first whose curve the outcome rejects."""
    mu = 1 / (0.001 + 0.01 * np.arange(1000))
    scale = beta * r / m
    right, wrong = np.full(mu.size, scale * v / r), np.full(mu.size, scale * (r - v) / r)
    for i in range(v - 1, -1, -1):
        lower = np.maximum(wrong, norm.cdf(norm.ppf(np.minimum(right, 1.0)) - mu))
        right, wrong = right + i / (r - i) * (lower - wrong), lower
    rejected = np.flatnonzero(right + wrong > r / m)
    return float(mu[rejected[0]]) if rejected.size else 0.0


def epsilon_by_bisection(mu: float, delta: float) -> float:
    """mu-GDP's epsilon at delta, by bisection on Dong, Roth & Su's delta(epsilon)."""
    low, high = 0.0, 100.0
    for _ in range(100):
        middle = (low + high) / 2
        spent = norm.cdf(-middle / mu + mu / 2) - np.exp(middle) * norm.cdf(-middle / mu - mu / 2)
        low, high = (middle, high) if spent > delta else (low, middle)
    return high


@pytest.mark.parametrize("outcome", list(WORKED))
def test_the_worked_values_of_both_bounds(outcome):
    m, r, v = outcome
    steinke, fdp = WORKED[outcome]
    mu = fdp_audit.mu_lower_bound(m, r, v)
    assert mu == pytest.approx(scan_mu(m, r, v), rel=1e-12)
    assert fdp_audit.epsilon_lower_bound(m, r, v, 1e-5) == pytest.approx(epsilon_by_bisection(mu, 1e-5), abs=1e-9)
    assert round(fdp_audit.epsilon_lower_bound(m, r, v, 1e-5), 2) == fdp
    assert round(audit.epsilon_lower_bound(m, r, v, 1e-5, 0.05), 2) == steinke


def test_the_bound_grows_with_right_guesses_and_is_0_without_any():
    bounds = [fdp_audit.mu_lower_bound(1000, 100, v) for v in range(0, 101, 5)]
    assert bounds == sorted(bounds) and bounds[-1] > 1
    assert fdp_audit.mu_lower_bound(1000, 100, 0) == 0 == fdp_audit.epsilon_lower_bound(1000, 100, 0, 1e-5)
    assert fdp_audit.mu_lower_bound(1000, 100, 50) == 0  # chance level proves nothing
    assert fdp_audit.mu_lower_bound(1000, 100, 90, beta=0.01) < fdp_audit.mu_lower_bound(1000, 100, 90)
    with pytest.raises(ValueError):
        fdp_audit.mu_lower_bound(100, 200, 10)


def test_gaussian_dp_epsilon():
    for mu in (0.3, 1.0, 3.0):
        epsilon = fdp_audit.gdp_epsilon(mu, 1e-5)
        assert fdp_audit.gdp_delta(mu, epsilon) == pytest.approx(1e-5, rel=1e-6)
    assert fdp_audit.gdp_epsilon(1.0, 1e-5) == pytest.approx(epsilon_by_bisection(1.0, 1e-5), abs=1e-9)
    assert fdp_audit.gdp_epsilon(0.0, 1e-5) == 0 and fdp_audit.gdp_epsilon(1e-6, 1e-5) == 0
    assert fdp_audit.gdp_epsilon(0.5, 0.0) == math.inf  # mu-GDP has no finite epsilon at delta 0


def test_valid_against_a_mechanism_of_known_mu():
    """Each canary's score is N(mu, 1) if included, N(0, 1) if not: exactly mu-GDP in its
    coin. With guesses fixed in advance the bound must stay at most mu in 95% of runs; it
    comes close to mu (a loose bound would pass validity alone)."""
    rng = np.random.default_rng(29)
    mu, m, k = 1.0, 10_000, 200
    bounds = []
    for _ in range(100):
        included = rng.random(m) < 0.5
        order = np.argsort(-rng.normal(mu * included, 1.0))
        right = int(included[order[:k]].sum() + (~included[order[-k:]]).sum())
        bounds.append(fdp_audit.mu_lower_bound(m, 2 * k, right))
    assert (np.array(bounds) <= mu).mean() >= 0.95 and np.median(bounds) > 0.6 * mu
    # through the grid of guesses and its union bound, as the canary report computes it
    mu, m = 2.0, 400
    for _ in range(40):
        included = rng.random(m) < 0.5
        bound = audit.fdp_bound(rng.normal(mu * included, 1.0), included, delta=1e-5)
        assert bound["mu"] <= mu and bound["epsilon"] <= fdp_audit.gdp_epsilon(mu, 1e-5)


def test_the_canary_report_and_table_carry_both_bounds_and_the_assumption():
    from mlm_mia.report import tables
    rng = np.random.default_rng(3)
    included = rng.random(400) < 0.5
    rows = pd.DataFrame({"set": "canaries", "id": range(400), "canary_included": included,
                         "canary_repeats": 1, "score_loss": included + rng.normal(0, 0.3, 400)})
    report = audit.canary_report(rows, delta=1e-5)
    cell = report["by_attack"]["loss"]["all"]
    assert cell["fdp"]["epsilon"] == pytest.approx(fdp_audit.gdp_epsilon(cell["fdp"]["mu"], 1e-5))
    assert cell["fdp"]["epsilon"] > cell["epsilon"]["epsilon"] > 1  # a strong attack: f-DP proves more
    assert cell["fdp"]["mu"] <= report["fdp_ceiling"]["all"]["mu"]
    text = tables.canaries_text(report)
    assert "Gaussian DP" in text and f"{cell['fdp']['epsilon']:.2f}" in text
    at_zero = audit.canary_report(rows, delta=0.0)
    assert at_zero["by_attack"]["loss"]["all"]["fdp"]["epsilon"] is None  # shown as mu
    assert f"mu {cell['fdp']['mu']:.2f}" in tables.canaries_text(at_zero)
