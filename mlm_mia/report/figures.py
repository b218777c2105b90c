"""The figures of a run: ROC curves on log-log axes, score distributions, and the
per-patient p-values against the uniform law. Each function returns a matplotlib figure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..common import columns
from ..stats.evaluation import COMPARISONS
from ..stats.metrics import roc_points


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only, never a screen
    import matplotlib.pyplot as plt
    return plt


def roc_figure(table: pd.DataFrame):
    """ROC curves of every attack, one panel per sentence-level comparison, log-log axes."""
    plt = _pyplot()

    attacks = columns.attack_names(table)
    panels = [(name, pos, neg) for name, (pos, neg) in COMPARISONS.items() if {pos, neg} <= set(table["set"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 5), squeeze=False)
    for ax, (name, pos, neg) in zip(axes[0], panels):
        rows = table[table["set"].isin([pos, neg])]
        y = (rows["set"] == pos).to_numpy(int)
        floor = 1 / max(1, (y == 0).sum()) / 2
        for attack in attacks:
            fpr, tpr = roc_points(y, rows[columns.score(attack)].to_numpy(float))
            ax.plot(np.maximum(fpr, floor), np.maximum(tpr, floor), label=attack)
        ax.plot([floor, 1], [floor, 1], "k:", linewidth=1, label="chance")
        ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1),
               xlabel="false-positive rate", ylabel="true-positive rate", title=name)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def distributions_figure(table: pd.DataFrame):
    """Each attack's score distribution in each set (members, non-members, externals)."""
    plt = _pyplot()

    attacks = columns.attack_names(table)
    n_cols = 4
    n_rows = -(-len(attacks) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 2.6 * n_rows), squeeze=False)
    for ax, attack in zip(axes.flat, attacks):
        values = table[columns.score(attack)].to_numpy(float)
        edges = np.histogram_bin_edges(values, bins=40)
        for name in ("members", "non_members", "externals"):
            chosen = (table["set"] == name).to_numpy()
            if chosen.any():
                ax.hist(values[chosen], bins=edges, histtype="step", density=True, label=name)
        ax.set_title(attack, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(attacks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
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
