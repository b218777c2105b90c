"""``score_MIA.py --name-probe``: the name-condition probe of :mod:`mlm_mia.stats.name_probe`
on the member and non-member patients of the sets, under the target."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..common.errors import InputError
from ..data import diagnoses, names as name_files
from ..engine.pll import PLLEngine
from ..engine.scoring import ModelDir, ScoreSettings
from ..stats import name_probe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """The probe's pairs and the sentences that score them, and who was left out."""

    items: list[name_probe.Item]
    sentences: list[str]
    spans: list[tuple[int, int]]
    left_out: dict[str, dict[str, int]]  # per group: patients without a name, without a condition


def plan(sets: pd.DataFrame, diagnoses_file: Path, titles_file: Path, names_file: Path,
         seed: int) -> Plan:
    """Reads the three inputs and makes the probe's pairs for the sets' member and
    non-member patients; stops, naming the file, when a group keeps fewer than 2 patients."""
    titles = diagnoses.read_titles(titles_file)
    conditions = {patient: [c for c in codes if c in titles]
                  for patient, codes in diagnoses.read_diagnoses(diagnoses_file).items()}
    names = name_files.read_names(names_file)
    patients, left_out = {}, {}
    for group in name_probe.GROUPS:
        ids = sorted(set(sets.loc[sets["set"] == group, "patient_id"].astype(str)))
        if not ids:
            raise InputError(f"--name-probe compares member and non-member patients: the data "
                             f"folder has no {group}.jsonl; draw it with prepare_data_MIA.py")
        unnamed = [p for p in ids if p not in names]
        no_condition = [p for p in ids if p in names and not conditions.get(p)]
        patients[group] = [p for p in ids if p in names and conditions.get(p)]
        left_out[group] = {"without_name": len(unnamed), "without_condition": len(no_condition)}
        if len(patients[group]) < 2:
            file, what = (names_file, "names") if len(unnamed) >= len(no_condition) else (
                diagnoses_file, "diagnoses with a title in " + str(titles_file))
            raise InputError(f"{file}: {len(patients[group])} of the {len(ids)} {group} patients "
                             f"have {what} (the probe needs 2 or more per group); give the "
                             "files of the notes the sets were drawn from")
    items = name_probe.items(patients, conditions, seed)
    sentences, spans = name_probe.templates(items, names, titles)
    return Plan(items, sentences, spans, left_out)


def run(probe: Plan, target: ModelDir, settings: ScoreSettings, n_boot: int, seed: int) -> dict:
    """metrics.json's ``name_probe``: the plan's templates scored under the target (not
    cached: a few short sentences per condition)."""
    model, max_length = target.loaded
    engine = PLLEngine(model, target.tokenizer, max_length, batch_tokens=max(settings.batch_tokens, max_length),
                       progress=settings.progress, name=f"{target.name} name probe",
                       distribution_stats=False)
    scores = [s.pll for s in engine.score(probe.sentences, probe.spans)]
    result = name_probe.evaluate(probe.items, scores[0::2], scores[1::2], n_boot, seed)
    result["left_out"] = probe.left_out
    result["templates"] = {"with_name": name_probe.TEMPLATE, "without_name": name_probe.NO_NAME}
    result["score"] = ("sum over the condition's tokens of log p(token | template, the token "
                       "and the condition's later tokens masked); with name minus without")
    return result
