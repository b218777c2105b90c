"""Human-readable output: the AUC / TPR tables and the ROC plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import FPR_TARGETS
from . import columns
from .evaluation import COMPARISONS, MEMORIZATION, PATIENT_COMPARISON, distribution_shift_warnings


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def tables(results: dict) -> str:
    """One table per comparison: a row per attack, AUC [95% CI] and TPR at each FPR."""
    blocks = []
    for comparison, attacks in results.items():
        if comparison == MEMORIZATION:
            blocks.append(memorization_tables(attacks))
            continue
        first = next(iter(attacks.values()))
        unit = "patients" if comparison == PATIENT_COMPARISON else "sentences"
        lines = [f"{comparison}  ({first['n_pos']} vs {first['n_neg']} {unit})"]
        header = f"  {'attack':<24} {'AUC [95% CI]':<22}" + "".join(
            f" {'TPR@' + format(100 * f, 'g') + '%FPR':>13}" for f in FPR_TARGETS)
        lines.append(header)
        footnote = False
        for attack, m in attacks.items():
            ci = m.get("auc_ci")
            auc = f"{m['auc']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
            cells = []
            for f in FPR_TARGETS:
                mark = "*" if str(f) in m["fpr_below_resolution"] else ""
                footnote |= bool(mark)
                cells.append(f" {_pct(m['tpr_at_fpr'][str(f)]) + mark:>13}")
            lines.append(f"  {attack:<24} {auc:<22}" + "".join(cells))
        if footnote:
            lines.append(f"  * FPR below 1/{first['n_neg']}: the TPR with no false positive at all")
        blocks.append("\n".join(lines))
    warnings = distribution_shift_warnings(results)
    return "\n\n".join(blocks + (["\n".join(warnings)] if warnings else [])) + "\n"


def _cell(m: dict | None, key: str) -> str:
    if m is None:
        return "-"
    return f"{m['auc']:.3f}" if key == "auc" else _pct(m["tpr_at_fpr"][key])


def memorization_tables(report: dict) -> str:
    """Attacks by memorization quartile, and LiRA against the number of shadow models."""
    edges = ", ".join(f"{e:.3g}" for e in report["quartile_edges"])
    lines = [f"{MEMORIZATION}: {report['comparison']} within quartiles of memorization "
             f"E[score|IN] - E[score|OUT] (q1 least ... q4 most; edges {edges})"]
    for key, label in (("auc", "AUC"), ("0.01", "TPR@1%FPR")):
        lines.append(f"  {label:<24}" + "".join(f" {q:>8}" for q in ("q1", "q2", "q3", "q4")))
        for attack, quartiles in report["by_quartile"].items():
            lines.append(f"  {attack:<24}" + "".join(f" {_cell(m, key):>8}" for m in quartiles.values()))
    lines.append("  LiRA with the first K shadow models, on the least and the most memorized quartiles")
    lines.append(f"  {'K':>3} " + "".join(f" {a + ' ' + side:>26}" for a in ("online", "offline")
                                          for side in ("least", "most")))
    for k, attacks in report["by_shadow_models"].items():
        cells = [f"{_cell(attacks[f'lira_{a}'][side], 'auc')} / {_cell(attacks[f'lira_{a}'][side], '0.01')}"
                 for a in ("online", "offline") for side in ("least", "most")]
        lines.append(f"  {k:>3} " + "".join(f" {c:>26}" for c in cells))
    lines.append("  (cells: AUC / TPR@1%FPR)")
    return "\n".join(lines)


def roc_plot(table: pd.DataFrame, path: Path) -> None:
    """ROC curves of every attack, one panel per sentence-level comparison, log-log axes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    attacks = columns.attack_names(table)
    panels = [(name, pos, neg) for name, (pos, neg) in COMPARISONS.items()
              if {pos, neg} <= set(table["set"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 5), squeeze=False)
    for ax, (name, pos, neg) in zip(axes[0], panels):
        rows = table[table["set"].isin([pos, neg])]
        y = (rows["set"] == pos).to_numpy(int)
        floor = 1 / max(1, (y == 0).sum()) / 2
        for attack in attacks:
            fpr, tpr, _ = roc_curve(y, rows[columns.score(attack)].to_numpy(float))
            ax.plot(np.maximum(fpr, floor), np.maximum(tpr, floor), label=attack)
        ax.plot([floor, 1], [floor, 1], "k:", linewidth=1, label="chance")
        ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1),
               xlabel="false-positive rate", ylabel="true-positive rate", title=name)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
