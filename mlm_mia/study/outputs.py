"""A study's outputs, written into the out-dir at once: the scores, the metrics, the
settings, the per-patient tests, the figures and report.html."""

from __future__ import annotations

import json
import logging

import pandas as pd

from .. import attacks
from ..common import columns
from ..common.errors import InputError
from ..common.outputs import json_text, staging_dir
from ..common.stopwatch import Stopwatch
from ..report import figures, html as report_html
from ..settings.study import StudySettings
from ..stats import evaluation

log = logging.getLogger(__name__)

# what a run writes (report.html and roc.png unless --no-plot, patients.csv with a population,
# name_probe.csv with --name-probe)
OUTPUTS = ("scores.csv", "metrics.json", "settings.json", "patients.csv", "name_probe.csv", "roc.png",
           "report.html")


def most_exposed(table: pd.DataFrame, sets: pd.DataFrame, results: dict, n: int) -> pd.DataFrame:
    """The ``n`` member sentences that the attack with the best members-vs-non-members AUC
    (blind baselines aside) scores highest, with their text (only on explicit request)."""
    scored = results.get("members_vs_non_members") or next(
        v for k, v in results.items() if k not in evaluation.SECTIONS)
    best = max((a for a in scored if not attacks.is_blind(a)), key=lambda a: scored[a]["auc"])
    members = table.assign(text=sets["text"])[table["set"] == "members"]
    chosen = members.nlargest(n, columns.score(best))
    return chosen[["id", "patient_id", columns.score(best), "text"]].rename(
        columns={columns.score(best): f"{best} score"})


def write_outputs(settings: StudySettings, table: pd.DataFrame, results: dict, run_settings: dict,
                  patients: pd.DataFrame | None, exposed: pd.DataFrame | None, watch: Stopwatch,
                  name_probe: pd.DataFrame | None = None) -> None:
    """Every output of the run into the out-dir at once (an older run's outputs that this
    one does not write are removed)."""
    with staging_dir(settings.out_dir, OUTPUTS) as stage:
        table.to_csv(stage / "scores.csv", index=False)  # shortest exact floats
        (stage / "metrics.json").write_text(json_text(results), encoding="utf-8")
        (stage / "settings.json").write_text(json_text(run_settings), encoding="utf-8")
        if patients is not None:
            patients.to_csv(stage / "patients.csv", index=False)
        if name_probe is not None:
            name_probe.to_csv(stage / "name_probe.csv", index=False)
        if not settings.no_plot:
            with watch.stage("plot"):
                roc = figures.png(figures.roc_figure(table))
                (stage / "roc.png").write_bytes(roc)
                report_html.write_report(stage / "report.html", table, results, run_settings,
                                         patients, exposed=exposed, roc_png=roc)
    log.info("Wrote %s to %s", ", ".join(n for n in OUTPUTS if (settings.out_dir / n).exists()), settings.out_dir)


def check_not_another_run(settings: StudySettings, identity: dict) -> None:
    """A run replaces the results in its out-dir only when they are its own (an earlier run
    of the same settings) or with ``--overwrite``: never another run's, silently."""
    found = [name for name in OUTPUTS if (settings.out_dir / name).exists()]
    if not found or settings.overwrite:
        if found:
            log.info("Replacing the results in %s (--overwrite)", settings.out_dir)
        return
    try:
        earlier = json.loads((settings.out_dir / "settings.json").read_text(encoding="utf-8")).get("settings")
    except (OSError, ValueError, AttributeError):
        earlier = None
    if earlier == identity:
        return
    differ = sorted(k for k in identity.keys() | (earlier or {}).keys()
                    if (earlier or {}).get(k, "-") != identity.get(k, "-")) if earlier else []
    why = f"--{', --'.join(d.replace('_', '-') for d in differ[:4])} differ" if differ else "made by another run"
    raise InputError(f"--out-dir {settings.out_dir}: holds the results of another run ({why}); give "
                     "another --out-dir, or --overwrite to replace them")

