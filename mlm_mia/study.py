"""The study's data flow after preparation: sentence sets -> per-model PLLs -> attack
scores -> metrics. Every per-sentence value stays in one row of one table, so target and
reference scores can never be un-paired."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import lira, metrics
from .errors import InputError

# population: extra non-members that RMIA compares against, never in a comparison
SET_NAMES = ("members", "non_members", "externals", "population")
REDUCTIONS = ("mean", "sum")
COMPARISONS = {
    "members_vs_non_members": ("members", "non_members"),
    "members_vs_externals": ("members", "externals"),
}
PATIENT_COMPARISON = "patient_members_vs_non_members"
MEMORIZATION = "by_memorization"  # metrics.json key of lira.memorization_report
# |AUC - 0.5| of the reference-only score above which members and non-members are taken
# to differ in distribution
BLIND_BASELINE_MARGIN = 0.1
MIN_K_FRACTION = 0.2


def load_sets(data_dir: Path) -> pd.DataFrame:
    """The sentence sets written by prepare_data_MIA.py: columns set, id, patient_id, text."""
    rows = []
    for name in SET_NAMES:
        path = data_dir / f"{name}.jsonl"
        if not path.exists():
            continue
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise InputError(f"{path}:{number}: not a JSON object ({err.msg})") from None
                missing = {"id", "patient_id", "text"} - set(record)
                if missing:
                    raise InputError(f"{path}:{number}: missing field(s) {sorted(missing)}; "
                                     "write the sets with prepare_data_MIA.py")
                if not str(record["text"]).strip():
                    raise InputError(f"{path}:{number}: empty text")
                rows.append({"set": name, "id": str(record["id"]),
                             "patient_id": str(record["patient_id"]), "text": str(record["text"])})
    table = pd.DataFrame(rows, columns=["set", "id", "patient_id", "text"])
    present = set(table["set"])
    if "members" not in present or not present & {"non_members", "externals"}:
        raise InputError(f"{data_dir}: needs members.jsonl and non_members.jsonl or "
                         "externals.jsonl; run prepare_data_MIA.py --out-dir there first")
    duplicated = table["id"].duplicated()
    if duplicated.any():
        raise InputError(f"{data_dir}: sentence id {table['id'][duplicated].iloc[0]!r} "
                         "appears twice; ids must be unique across the sets")
    return table


def reduce(pll: pd.Series, n_tokens: pd.Series, reduction: str) -> pd.Series:
    """Summed PLL, or PLL per scored token."""
    if reduction == "sum":
        return pll
    return pll / n_tokens.where(n_tokens > 0)


def attack_columns(table: pd.DataFrame, references: Sequence[str], reduction: str) -> pd.DataFrame:
    """``score_<attack>`` columns; higher means more likely a member.

    - ``loss``: the target's PLL (Yeom et al.);
    - ``ratio``: target PLL - reference PLL, per sentence (Mireshghallah et al. 2022);
    - ``reference_only``: the reference's PLL alone, a blind baseline that measures how
      far the sets differ in distribution.

    With several references, each gets its ``ratio_<name>`` and ``reference_only_<name>``.
    """
    out = table.copy()
    target = reduce(table["target_pll"], table["target_n_tokens"], reduction)
    out["score_loss"] = target
    for ref in references:
        suffix = "" if ref == "reference" else ref[len("reference"):]
        reference = reduce(table[f"{ref}_pll"], table[f"{ref}_n_tokens"], reduction)
        out[f"score_ratio{suffix}"] = target - reference
        out[f"score_reference_only{suffix}"] = reference
    return out


def min_k_mean(logprobs: np.ndarray, fraction: float = MIN_K_FRACTION) -> float:
    """Min-K% (Shi et al. 2024): the mean of the lowest ``fraction`` of the token log-probs
    (at least one token); NaN for a sentence with no scored token."""
    if logprobs.size == 0:
        return float("nan")
    k = max(1, int(np.ceil(fraction * logprobs.size)))
    return float(np.sort(logprobs)[:k].mean())


def min_k_pp_mean(logprobs: np.ndarray, dist_mean: np.ndarray, dist_std: np.ndarray,
                  fraction: float = MIN_K_FRACTION) -> float:
    """Min-K%++ (Zhang et al. 2024): each token's log-prob standardised by the mean and
    standard deviation of the log-probs of the model's distribution at its masked
    position, then :func:`min_k_mean` of those. A position where the model is certain
    (standard deviation 0) counts as 0. NaN when the statistics are unknown."""
    if np.isnan(dist_std).any():
        return float("nan")
    safe = np.where(dist_std > 0, dist_std, 1.0)
    z = np.where(dist_std > 0, (logprobs - dist_mean) / safe, 0.0)
    return min_k_mean(z, fraction)


def reference_free_columns(table: pd.DataFrame, min_k: Sequence[float],
                           min_k_pp: Sequence[float] | None, texts: Sequence[str]) -> pd.DataFrame:
    """Scores from the target's own forward passes, no reference model needed:

    - ``min_k``: :func:`min_k_mean` of the target's token log-probs;
    - ``min_k_pp``: :func:`min_k_pp_mean` (left out when the backend gives no
      distribution statistics, as minicons);
    - ``zlib``: the target's PLL per token over the zlib-compressed length of the text
      (Carlini et al. 2021): text that is easy to compress but predicted well is suspect.
    """
    out = table.copy()
    out["score_min_k"] = np.asarray(min_k, dtype=float)
    if min_k_pp is not None:
        out["score_min_k_pp"] = np.asarray(min_k_pp, dtype=float)
    zlib_bytes = np.array([len(zlib.compress(t.encode("utf-8"))) for t in texts], dtype=float)
    out["score_zlib"] = reduce(table["target_pll"], table["target_n_tokens"], "mean") / zlib_bytes
    return out


def attack_names(table: pd.DataFrame) -> list[str]:
    return [c[len("score_"):] for c in table.columns if c.startswith("score_")]


def compare(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict:
    """``metrics.json``: every attack on every comparison whose sets are present."""
    result = {}
    attacks = attack_names(table)
    for comparison, (positive, negative) in COMPARISONS.items():
        rows = table[table["set"].isin([positive, negative])]
        if not {positive, negative} <= set(rows["set"]):
            continue
        y = (rows["set"] == positive).to_numpy(int)
        result[comparison] = {
            attack: metrics.evaluate(y, rows[f"score_{attack}"].to_numpy(float),
                                     rows["patient_id"].to_numpy(), n_boot, seed)
            for attack in attacks}
    rows = table[table["set"].isin(["members", "non_members"])]
    if {"members", "non_members"} <= set(rows["set"]):
        per_patient = rows.groupby(["set", "patient_id"], sort=True)[
            [f"score_{a}" for a in attacks]].mean().reset_index()
        y = (per_patient["set"] == "members").to_numpy(int)
        result[PATIENT_COMPARISON] = {
            attack: metrics.evaluate(y, per_patient[f"score_{attack}"].to_numpy(float),
                                     per_patient["patient_id"].to_numpy(), n_boot, seed)
            for attack in attacks}
    if "memorization" in table.columns and PATIENT_COMPARISON in result:
        result[MEMORIZATION] = lira.memorization_report(table)
    return result


def distribution_shift_warnings(results: dict) -> list[str]:
    """One line per comparison whose blind baseline is far from chance."""
    lines = []
    for comparison, attacks in results.items():
        if comparison == MEMORIZATION:
            continue
        for attack, values in attacks.items():
            if attack.startswith("reference_only") and abs(values["auc"] - 0.5) > BLIND_BASELINE_MARGIN:
                lines.append(
                    f"WARNING {comparison}: the blind baseline ({attack}, which never sees the "
                    f"target) has AUC {values['auc']:.3f}: the sets differ in distribution, and "
                    "the attack numbers above are inflated by it.")
    return lines


def check_scores(table: pd.DataFrame) -> None:
    """Every attack score must be a finite number (a sentence with no scored token is not)."""
    for column in [c for c in table.columns if c.startswith("score_")]:
        bad = ~np.isfinite(table[column].to_numpy(float))
        if bad.any():
            raise InputError(f"{column}: {int(bad.sum())} sentences have no finite score (e.g. "
                             f"id {table.loc[bad, 'id'].iloc[0]!r}, which may have no scorable token)")
