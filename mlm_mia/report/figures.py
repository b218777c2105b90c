"""The figures of a run: ROC curves on log-log axes (sentences and patients), score
distributions per comparison, and the per-patient p-values against the uniform law. Each function returns a matplotlib figure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..attacks import is_blind
from ..common import columns
from ..stats import validity
from ..stats.evaluation import COMPARISONS
from ..stats.metrics import auc, roc_points


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only, never a screen
    import matplotlib.pyplot as plt
    return plt


def _panels(table: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame, str]]:
    """``(title, unit, rows, text-only column)`` of each comparison the table has: the
    sentence-level ones, then members vs non-members by patient (mean score per patient)."""
    panels = []
    for name, (pos, neg) in COMPARISONS.items():
        rows = table[table["set"].isin([pos, neg])]
        if {pos, neg} <= set(rows["set"]):
            panels.append((name, "sentences", rows.assign(label=(rows["set"] == pos).astype(int)),
                           validity.column(name)))
    rows = table[table["set"].isin(["members", "non_members"])]
    if {"members", "non_members"} <= set(rows["set"]):
        scores = [c for c in rows.columns if columns.attack_of(c)]
        per_patient = rows.groupby(["set", "patient_id"], sort=True)[scores].mean().reset_index()
        panels.append(("patients: members_vs_non_members", "patients",
                       per_patient.assign(label=(per_patient["set"] == "members").astype(int)), ""))
    return panels


# matplotlib's ten colours but its grey, kept for the blind baselines
_COLOURS = tuple(f"C{i}" for i in range(10) if i != 7)


def _style(index: int, blind: bool) -> dict:
    """Nine colours, then the same with dashes; blind baselines grey and dash-dotted."""
    if blind:
        return {"color": "0.45", "linestyle": "-."}
    return {"color": _COLOURS[index % len(_COLOURS)], "linestyle": "-" if index < len(_COLOURS) else "--"}


def roc_figure(table: pd.DataFrame):
    """ROC curves of every attack, one panel per comparison (the sentence-level ones and
    members vs non-members by patient), log-log axes each scaled to its own negatives; the
    legend under each panel, attacks by falling AUC with the AUC in the label, the
    text-only classifier (no model) dotted where the table has it."""
    plt = _pyplot()

    attacks = columns.attack_names(table)
    panels = _panels(table)
    height = 4.4 + 0.2 * (len(attacks) + 2) / 2  # the legend's two columns of lines below
    n_cols = min(2, len(panels))  # two abreast: as wide as a browser shows them
    n_rows = -(-len(panels) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(5.4 * n_cols, height * n_rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (name, unit, rows, text_only) in zip(axes.flat, panels):
        y = rows["label"].to_numpy(int)
        floor = 1 / max(1, (y == 0).sum()) / 2
        curves = {attack: rows[columns.score(attack)].to_numpy(float) for attack in attacks}
        if text_only in rows.columns:
            curves["text only (no model)"] = rows[text_only].to_numpy(float)
        aucs = {label: auc(y, s) for label, s in curves.items()}
        for index, label in enumerate(sorted(curves, key=lambda a: -aucs[a])):
            fpr, tpr = roc_points(y, curves[label])
            style = {"color": "k", "linestyle": ":"} if label not in attacks else _style(
                attacks.index(label), is_blind(label))
            ax.plot(np.maximum(fpr, floor), np.maximum(tpr, floor), label=f"{label}  {aucs[label]:.3f}",
                    linewidth=1.3, **style)
        ax.plot([floor, 1], [floor, 1], color="0.7", linewidth=0.8, label="chance  0.500")
        perfect = sum(value == 1 for value in aucs.values())
        if perfect > 1:  # their curves run along the top, one over the other
            ax.text(0.97, 0.03, f"{perfect} curves of AUC 1 overlap\nalong TPR = 1", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=8, color="0.3")
        # up to 1.3 so that curves reaching TPR 1 stay visible above the frame
        ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1.3),
               xlabel="false-positive rate (log)", ylabel="true-positive rate (log)",
               title=f"{name}\n({(y == 1).sum()} vs {(y == 0).sum()} {unit})")
        ax.title.set_fontsize(10)
        ax.legend(title="attack  AUC", loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
                  fontsize=9, title_fontsize=9, frameon=False, handlelength=2.2, columnspacing=1.5)
    fig.tight_layout()
    return fig


def distributions_figure(table: pd.DataFrame):
    """Each attack's score distribution, a row per attack and a column per sentence-level
    comparison, each panel's bins on its own two sets (central 99% of their scores)."""
    plt = _pyplot()

    attacks = columns.attack_names(table)
    panels = [p for p in _panels(table) if p[1] == "sentences"]
    fig, axes = plt.subplots(len(attacks), len(panels), figsize=(4.6 * len(panels), 2.3 * len(attacks)),
                             squeeze=False)
    for row, attack in zip(axes, attacks):
        for ax, (name, _, rows, _) in zip(row, panels):
            values = rows[columns.score(attack)].to_numpy(float)
            low, high = np.quantile(values, [0.005, 0.995])
            edges = np.linspace(low, high, 41) if high > low else 40
            for label, set_name in ((1, rows.loc[rows["label"] == 1, "set"].iloc[0]),
                                    (0, rows.loc[rows["label"] == 0, "set"].iloc[0])):
                chosen = (rows["label"] == label).to_numpy()
                ax.hist(np.clip(values[chosen], low, high), bins=edges, histtype="step", density=True,
                        linewidth=1.3, label=set_name, color="C3" if label else "C0")
            ax.set_title(f"{attack}: {name}", fontsize=9)
            ax.set_xlabel("score (higher: more likely a member)", fontsize=8)
            ax.set_ylabel("density", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def qq_figure(patients: pd.DataFrame):
    """Per-patient p-values against the uniform law (log scale): the null patients'
    should lie on the diagonal, the members' fall below it."""
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(5, 5))
    floor = 1e-4
    for name in ("members", "non_members", "externals"):
        p = np.sort(patients.loc[patients["set"] == name, "p_value"].to_numpy())
        if p.size:
            expected = (np.arange(1, p.size + 1) - 0.5) / p.size
            ax.plot(expected, np.maximum(p, floor), ".", label=name)
    ax.plot([floor, 1], [floor, 1], "k:", linewidth=1)
    ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1),
           xlabel="expected p-value (uniform)", ylabel="observed p-value", title="per-patient p-values")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def png(fig) -> bytes:
    """A figure as PNG bytes (for a file and for report.html alike), then closed."""
    import io
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    _pyplot().close(fig)
    return buffer.getvalue()
