"""Several targets on the same sets, side by side: did deduplicating the training data (or
any other change of recipe) reduce the leakage?

Every run's attacks are evaluated on the *same* patient resamples, so the difference of
two targets' AUCs (or TPRs at 1% FPR) gets a paired interval: the 2.5th and 97.5th
percentiles of the per-resample differences. Runs whose sets differ are refused, and an
attack is compared only where every run defined it the same way (the settings its registry
entry names, read from each run's settings.json): the others are left out, each with why.
"""

from __future__ import annotations

import json

import pandas as pd

from .. import attacks as attack_registry
from ..common import columns
from . import metrics
from ..common.errors import InputError
from .evaluation import COMPARISONS, PATIENT_COMPARISON

TPR_FPR = 0.01


def check_same_sets(tables: dict[str, pd.DataFrame], digests: dict[str, str | None]) -> None:
    """The runs must score the same sentences of the same patients in the same sets (and,
    where the runs recorded it, the same set files)."""
    first_name, first = next(iter(tables.items()))
    key = first[list(columns.ID_COLUMNS)].sort_values("id").reset_index(drop=True)
    for name, table in tables.items():
        other = table[list(columns.ID_COLUMNS)].sort_values("id").reset_index(drop=True)
        if not other.equals(key):
            raise InputError(f"{name}: its sentences, sets or patients differ from {first_name}'s; "
                             "targets are compared on the same sets only")
    known = {name: d for name, d in digests.items() if d}
    if len(set(known.values())) > 1:
        raise InputError(f"the runs {sorted(known)} scored different set files (sets_sha256 in "
                         "their settings.json); targets are compared on the same sets only")


def _setting(settings: dict, key: str):
    """The value of a dotted settings.json key (``rmia.pr_x``); None where it is absent."""
    value = settings
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def not_comparable(tables: dict[str, pd.DataFrame], settings: dict[str, dict]) -> dict[str, str]:
    """The attacks not to compare, each with why: scored by some runs only, or defined
    differently (a setting its registry entry names differs between the runs' settings.json)."""
    names = list(tables)
    every = dict.fromkeys(a for t in tables.values() for a in columns.attack_names(t))
    why = {}
    for attack in every:
        having = [n for n in names if columns.score(attack) in tables[n].columns]
        if len(having) < len(names):
            why[attack] = f"scored by {', '.join(having)} only"
            continue
        entry = attack_registry.entry(attack)
        for key in entry.defined_by if entry else ():
            values = {n: _setting(settings[n], key) for n in names if settings[n]}
            if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
                why[attack] = f"defined differently: {key} is " + "; ".join(
                    f"{_short(v)} in {n}" for n, v in values.items())
                break
    return why


def _rows(table: pd.DataFrame, comparison: str) -> pd.DataFrame:
    """One comparison's rows, sentences or (patient level) patients' mean scores, in a
    fixed order so that every run's rows line up."""
    if comparison == PATIENT_COMPARISON:
        rows = table[table["set"].isin(["members", "non_members"])]
        return rows.groupby(["set", "patient_id"], sort=True)[
            [c for c in rows.columns if columns.attack_of(c)]].mean().reset_index()
    positive, negative = COMPARISONS[comparison]
    return table[table["set"].isin([positive, negative])].sort_values("id")


def compare_runs(tables: dict[str, pd.DataFrame], n_boot: int = 1000, seed: int = 0,
                 not_compared: dict[str, str] | None = None) -> dict:
    """``comparison.json``: per comparison and attack (those every run has, apart from
    ``not_compared``: attack -> why, recorded), each run's AUC and TPR at 1% FPR, and each
    later run's difference from the first with a paired patient-bootstrap interval."""
    names = list(tables)
    not_compared = dict(not_compared or {})
    attacks = [a for a in columns.attack_names(tables[names[0]])
               if a not in not_compared and all(columns.score(a) in t.columns for t in tables.values())]
    result = {"runs": names, "baseline": names[0], "tpr_fpr": TPR_FPR,
              "tpr_at_fpr_convention": metrics.TPR_CONVENTION, "resamples": n_boot,
              "not_compared": not_compared, "comparisons": {}}
    for comparison in (*COMPARISONS, PATIENT_COMPARISON):
        positive, negative = COMPARISONS.get(comparison, ("members", "non_members"))
        rows = {name: _rows(table, comparison) for name, table in tables.items()}
        first = rows[names[0]]
        if not {positive, negative} <= set(first["set"]):
            continue
        y = (first["set"] == positive).to_numpy(int)
        resamples = metrics.resample(y, first["patient_id"].to_numpy(), n_boot, seed)
        by_attack = {}
        for attack in attacks:
            point, draws = {}, {}
            for name in names:
                s = rows[name][columns.score(attack)].to_numpy(float)
                point[name] = {"auc": metrics.auc(y, s), "tpr": metrics.tpr_at_fpr(y, s, TPR_FPR)}
                if n_boot:
                    boot = metrics.bootstrap(y, s, resamples, (TPR_FPR,))
                    draws[name] = {"auc": boot["auc"], "tpr": boot[f"tpr@{TPR_FPR}"]}
            differences = {}
            for name in names[1:]:
                differences[name] = {
                    key: point[name][key] - point[names[0]][key] for key in ("auc", "tpr")}
                if n_boot:
                    differences[name] |= {f"{key}_ci": metrics.interval(draws[name][key] - draws[names[0]][key])
                                          for key in ("auc", "tpr")}
            by_attack[attack] = {"runs": point, "differences": differences}
        result["comparisons"][comparison] = by_attack
    return result


def comparison_tables(result: dict) -> str:
    """The printed comparison: per comparison, an attack per row, each run's AUC and
    TPR@1%FPR, and each later run's paired difference from the first."""
    names, blocks = result["runs"], []
    for comparison, attacks in result["comparisons"].items():
        lines = [f"{comparison}: {' vs '.join(names)} (differences: run - {names[0]}, paired 95% CI)"]
        for attack, values in attacks.items():
            cells = [f"{n}: AUC {values['runs'][n]['auc']:.3f} TPR {100 * values['runs'][n]['tpr']:.1f}%"
                     for n in names]
            for name, d in values["differences"].items():
                ci = (f" [{d['auc_ci'][0]:+.3f}, {d['auc_ci'][1]:+.3f}]" if "auc_ci" in d else "")
                tci = (f" [{100 * d['tpr_ci'][0]:+.1f}, {100 * d['tpr_ci'][1]:+.1f}]" if "tpr_ci" in d else "")
                cells.append(f"d({name}): AUC {d['auc']:+.3f}{ci} TPR {100 * d['tpr']:+.1f}{tci}")
            lines.append(f"  {attack:<16} " + "   ".join(cells))
        blocks.append("\n".join(lines))
    blocks += ["\n".join(not_compared_lines(result))] if result.get("not_compared") else []
    return "\n\n".join(blocks) + "\n"


def not_compared_lines(result: dict) -> list[str]:
    """One line per attack the comparison left out, with why."""
    return [f"not compared: {attack}: {why}" for attack, why in result.get("not_compared", {}).items()]
