#!/usr/bin/env python
"""Simulation study of the per-patient membership tests (``patient_tests.membership_tests``,
the code that runs) and of the text-only validity check's permutation test.

    nice python bench/bench_patient_tests.py [--replicates 40] [--validity-studies 100] [--member-shift 0.5]

Per-patient tests: score tables in the scores.csv format (sets population, non_members,
members, externals; ``patient_id``; two attack columns) with patient effects Gaussian,
log-normal or t with 3 degrees of freedom (standardised; sentence noise of the same
family), a within-patient correlation (intraclass) of 0.2, 0.8, or drawn per patient
between 0.05 and 0.95, 1 to 40 sentences a patient, 20, 50 or 200 population patients;
150 non-members and 100 externals (another hospital: shifted, their own null) drawn like
the population, 150 members shifted up by ``MEMBER_SHIFT`` score SDs. Per cell: the share
of non-member and external patients with p <= 1% and 5% (type-I error; +- two Monte-Carlo
SEs over replicates), the FDR of Benjamini-Hochberg at 5% (mean false discovery
proportion), the calibration check's false alarms at 5%, and the power (members with
p <= 5%; and at equal size: at the largest threshold where at most 5% of the non-members'
p-values fall);
beside them the same for the test this replaced (git a2f5225: Student-t p-values, BH over
all sets, KS check of uniformity), loaded from git when the history is there.

Validity check: null studies of generated sentences (patients with their own word
preferences, set labels given to whole patients at random), the permutation test's
rejection rate at 2.5% (the warning's level) and 5%.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlm_mia.stats import patient_tests
from mlm_mia.stats import validity  # noqa: E402

DISTRIBUTIONS = ("gaussian", "lognormal", "t3")
CORRELATIONS = (0.2, 0.8, "varying")
POPULATIONS = (20, 50, 200)
MEMBER_SHIFT = 0.5
OLD_COMMIT = "a2f5225"


def standard(rng: np.random.Generator, distribution: str, size) -> np.ndarray:
    """Draws of mean 0 and variance 1 from the family."""
    if distribution == "gaussian":
        return rng.standard_normal(size)
    if distribution == "lognormal":  # skew 6.2
        return (np.exp(rng.standard_normal(size)) - np.exp(0.5)) / np.sqrt((np.e - 1) * np.e)
    if distribution == "t3":
        return rng.standard_t(3, size) / np.sqrt(3)
    raise ValueError(distribution)


def simulated_table(rng: np.random.Generator, distribution: str, correlation: float | str,
                    n_population: int, n_non_members: int = 150, n_members: int = 150,
                    n_externals: int = 100, member_shift: float = MEMBER_SHIFT,
                    max_sentences: int = 40) -> pd.DataFrame:
    """A score table: two attacks (``loss``, and ``ratio`` partly another signal), each
    patient its own effect and 1 to ``max_sentences`` sentences."""
    parts = []
    for name, count, shift in (("population", n_population, 0.0), ("non_members", n_non_members, 0.0),
                               ("members", n_members, member_shift), ("externals", n_externals, -1.0)):
        n = rng.integers(1, max_sentences + 1, count)
        icc = rng.uniform(0.05, 0.95, count) if correlation == "varying" else np.full(count, float(correlation))
        patient = np.repeat(np.arange(count), n)
        effect = standard(rng, distribution, (count, 2))[patient]
        noise = standard(rng, distribution, (patient.size, 2))
        rho = icc[patient, None]
        scores = np.sqrt(rho) * effect + np.sqrt(1 - rho) * noise + shift
        parts.append(pd.DataFrame({
            "set": name, "id": [f"{name}-{i}" for i in range(patient.size)],
            "patient_id": [f"{name[:3]}{p}" for p in patient],
            "score_loss": scores[:, 0], "score_ratio": 0.6 * scores[:, 0] + 0.8 * scores[:, 1]}))
    return pd.concat(parts, ignore_index=True)


def old_module() -> types.ModuleType | None:
    """patient_tests.py as of ``OLD_COMMIT`` (None without the git history)."""
    try:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:mlm_mia/patient_tests.py"],
                                capture_output=True, text=True, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    module = types.ModuleType("mlm_mia.patient_tests_old")
    module.__package__ = "mlm_mia"
    exec(compile(source, f"{OLD_COMMIT}:patient_tests.py", "exec"), module.__dict__)
    return module


def one_run(table: pd.DataFrame, module, seed: int) -> dict:
    """Per-replicate outcomes of one implementation."""
    patients, summary = module.membership_tests(table, seed)
    by_set = {name: patients.loc[patients["set"] == name] for name in ("members", "non_members", "externals")}
    flagged = patients["q_value"] <= patient_tests.FDR
    in_question = patients["set"] != "externals" if "calibration" in summary else patients["set"] != ""
    wrong = flagged & in_question & (patients["set"] != "members")
    check = (summary["calibration"]["p_value"] if "calibration" in summary
             else summary["uniformity"]["non_members"]["p_value"])
    return {"p": {name: rows["p_value"].to_numpy() for name, rows in by_set.items()},
            "fdp": wrong.sum() / max(1, (flagged & in_question).sum()),
            "found": float(flagged[patients["set"] == "members"].mean()),
            "check_alarm": check <= 0.05}


def _rate(shares: np.ndarray) -> str:
    """Mean and two Monte-Carlo SEs (over replicates: one replicate's patients share a null)."""
    return f"{shares.mean():.3f}+-{2 * shares.std(ddof=1) / np.sqrt(shares.size):.3f}"


def summarise_cell(runs: list[dict]) -> dict[str, str]:
    nm = np.sort(np.concatenate([r["p"]["non_members"] for r in runs]))
    # equal size: the largest threshold at which at most 5% of the non-members' p-values fall
    # (the conformal p-values are discrete: with 20 null patients that is 1/21, size 4.8%)
    levels = np.unique(nm)
    allowed = levels[np.searchsorted(nm, levels, side="right") <= 0.05 * nm.size]
    threshold = allowed.max() if allowed.size else -np.inf
    cell = {}
    for alpha in (0.01, 0.05):
        cell[f"nm@{alpha:g}"] = _rate(np.array([(r["p"]["non_members"] <= alpha).mean() for r in runs]))
        cell[f"ext@{alpha:g}"] = _rate(np.array([(r["p"]["externals"] <= alpha).mean() for r in runs]))
    cell["FDR"] = _rate(np.array([r["fdp"] for r in runs]))
    cell["check@5%"] = f"{np.mean([r['check_alarm'] for r in runs]):.3f}"
    cell["power@5%"] = f"{np.mean([(r['p']['members'] <= 0.05).mean() for r in runs]):.3f}"
    cell["power@size5%"] = f"{np.mean([(r['p']['members'] <= threshold).mean() for r in runs]):.3f}"
    cell["found"] = f"{np.mean([r['found'] for r in runs]):.3f}"
    return cell


def patient_study(replicates: int, seed: int = 0, cells=None, member_shift: float = MEMBER_SHIFT
                  ) -> pd.DataFrame:
    """One row per cell and test, each printed as it is done."""
    old = old_module()
    rows = []
    for distribution, correlation, n_population in cells or [
            (d, c, n) for d in DISTRIBUTIONS for c in CORRELATIONS for n in POPULATIONS]:
        runs = {"new": [], "old": []}
        for r in range(replicates):
            rng = np.random.default_rng([seed, DISTRIBUTIONS.index(distribution), n_population, r,
                                         CORRELATIONS.index(correlation)])
            table = simulated_table(rng, distribution, correlation, n_population, member_shift=member_shift)
            runs["new"].append(one_run(table, patient_tests, r))
            if old is not None:
                runs["old"].append(one_run(table, old, r))
        for name, results in runs.items():
            if results:
                rows.append({"effects": distribution, "icc": correlation, "N": n_population, "test": name,
                             **summarise_cell(results)})
                print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    return pd.DataFrame(rows)


def null_texts(rng: np.random.Generator, n_patients: int = 120, vocabulary: int = 400,
               sentences: tuple[int, int] = (3, 15)) -> pd.DataFrame:
    """Sentences of patients with their own word preferences (a Dirichlet draw around a
    shared Zipf law), half the patients labelled members at random: a null study."""
    base = 1 / np.arange(1, vocabulary + 1)
    words = np.array([f"w{i}" for i in range(vocabulary)])
    rows = []
    members = rng.permutation(n_patients) < n_patients // 2
    for p in range(n_patients):
        preference = rng.dirichlet(50 * base / base.sum())
        for s in range(int(rng.integers(*sentences))):
            rows.append({"set": "members" if members[p] else "non_members", "patient_id": f"p{p}",
                         "text": " ".join(rng.choice(words, int(rng.integers(6, 20)), p=preference))})
    return pd.DataFrame(rows)


def validity_study(studies: int, seed: int = 0, permutations: int = 199) -> dict:
    p = []
    for r in range(studies):
        sets = null_texts(np.random.default_rng([seed, 31, r]))
        _, test = validity.permutation_test(validity.text_features(sets["text"].tolist(), r),
                                            (sets["set"] == "members").to_numpy(int),
                                            sets["patient_id"].to_numpy(), r, permutations)
        p.append(test["p_value"])
    p = np.array(p)
    return {"studies": studies, "permutations": permutations,
            **{f"rejected@{a:g}": f"{(p <= a).mean():.3f}+-{2 * np.sqrt(a * (1 - a) / studies):.3f}"
               for a in (0.025, 0.05)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=40, help="studies per cell (40)")
    parser.add_argument("--validity-studies", type=int, default=100, help="null text studies (100)")
    parser.add_argument("--member-shift", type=float, default=MEMBER_SHIFT,
                        help=f"members' shift in score SDs ({MEMBER_SHIFT})")
    parser.add_argument("--populations", type=int, nargs="+", default=POPULATIONS,
                        help="population patients of the cells (20 50 200)")
    args = parser.parse_args()
    print(f"per-patient tests, {args.replicates} replicates per cell, members shifted {args.member_shift} SD",
          flush=True)
    start = time.perf_counter()
    patient_study(args.replicates, cells=[(d, c, n) for d in DISTRIBUTIONS for c in CORRELATIONS
                                          for n in args.populations], member_shift=args.member_shift)
    print(f"({time.perf_counter() - start:.0f} s)")
    if not args.validity_studies:
        return
    start = time.perf_counter()
    result = validity_study(args.validity_studies)
    print(f"\nvalidity permutation test on null text studies ({time.perf_counter() - start:.0f} s): {result}")


if __name__ == "__main__":
    main()
