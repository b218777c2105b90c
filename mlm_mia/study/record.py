"""What a study records in settings.json beside its flags: how RMIA's Pr(x) was had, the
LiRA statistic and its normality checks."""

from __future__ import annotations

import logging

import numpy as np

from .. import attacks
from ..attacks import lira, neighbourhood, rmia
from ..engine import neighbours
from ..common import columns
from ..settings.choices import LIRA_STATISTICS
from ..settings.study import StudySettings

log = logging.getLogger(__name__)


def rmia_settings(inputs: attacks.Inputs, runnable: list[attacks.Attack], settings: StudySettings
                   ) -> dict | None:
    """How RMIA's Pr(x) was had: online from shadow models, or offline with an ``a`` from
    the flag (untuned) and, where shadow models allow it, tuned."""
    names = {a.name for a in runnable}
    if "rmia" not in names:
        return None
    result = {"gamma": rmia.GAMMA, "pr_x": "shadow models (online)" if inputs.shadows else
              "reference models (offline)", "likelihood": "per token, whatever --reduction"}
    if not inputs.shadows:
        result |= {"offline_a": settings.rmia_offline_a,
                   "offline_a_source": "--rmia-offline-a, not tuned: tuning needs a model whose "
                   "training sentences are known (shadow models), and a reference has none"}
    if "rmia_offline" in names:
        a, aucs = rmia.tune_offline_a(inputs)
        result["rmia_offline"] = {"offline_a": a, "offline_a_source": "tuned on shadow model 0",
                                  "auc_by_a": aucs}
    return result


def lira_settings(inputs: attacks.Inputs, settings: StudySettings) -> dict:
    """The LiRA statistic, and how normal each statistic's IN and OUT values look."""
    shadows = inputs.shadows
    inside = inputs.table[[columns.shadow_in(i) for i in shadows]].to_numpy(bool)
    checks = {kind: lira.normality(np.column_stack([inputs.model_values[columns.shadow_name(i), kind]
                                                    for i in shadows]), inside)
              for kind in LIRA_STATISTICS}
    chosen = checks[settings.lira_statistic]
    other = next(k for k in LIRA_STATISTICS if k != settings.lira_statistic)
    if chosen and max(chosen["rejected_in"], chosen["rejected_out"]) > 2 * chosen["level"]:
        log.warning("LiRA: a Shapiro-Wilk test rejects normal IN/OUT statistics for %.0f%% / %.0f%% "
                    "of sentences (%.0f%% expected); with --lira-statistic %s: %.0f%% / %.0f%%",
                    100 * chosen["rejected_in"], 100 * chosen["rejected_out"], 100 * chosen["level"],
                    other, 100 * checks[other]["rejected_in"], 100 * checks[other]["rejected_out"])
    return {"statistic": settings.lira_statistic, "normality": checks,
            "offline": "one-sided: (s - mu_out) / sd_out"}


def run_record(settings: StudySettings, plan, scored, shadows: list, inputs: attacks.Inputs,
               validity_tests: dict, processes: int) -> dict:
    """settings.json: what ran, on what, and how (``plan`` and ``scored`` as
    :mod:`.plan` and :mod:`.scoring` made them)."""
    from .. import __version__
    from ..attacks import encodermi
    from .shadows import described

    model_dirs = plan.model_dirs
    return {
        "version": __version__, "models": {d.name: str(d.path) for d in model_dirs},
        "data_dir": str(settings.data_dir), "pll": settings.pll, "reduction": settings.reduction,
        "backend": settings.backend, "device": settings.device, "dtype": settings.dtype,
        "batch_tokens": plan.engine.batch_tokens, "compile": settings.compile,
        "bootstrap": settings.bootstrap, "seed": settings.seed, "truncated_sentences": scored.truncated,
        "n_sentences": plan.sets["set"].value_counts().to_dict(), "processes": processes,
        "min_k_fraction": settings.min_k_fraction,
        "shadow_models": described(shadows, settings, model_dirs[0].path),
        "encodermi": {"views": encodermi.N_VIEWS, "mask_probability": encodermi.MASK_PROBABILITY},
        "rmia": rmia_settings(inputs, plan.runnable, settings),
        "lira": lira_settings(inputs, settings) if shadows else None,
        "attacks_left_out": plan.left_out, "sets_sha256": plan.sets_sha256,
        # what the reference models are, not where: attacks that read them compare on this
        "references": {d.name: d.fingerprint for d in model_dirs if d.name in plan.references},
        "exposure_alternatives": plan.n_alternatives if plan.planted else None,
        "validity_tests": validity_tests,
        "neighbours": (neighbours.record(plan.neighbour_dir, settings.neighbours,
                                         scored.features[neighbourhood.PLL])
                       if plan.neighbour_cache is not None else None),
        "name_probe": plan.name_probe.files_sha256 if plan.name_probe else None,
    }
