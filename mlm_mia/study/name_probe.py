"""``score_MIA.py --name-probe``: the name-condition probe of :mod:`mlm_mia.stats.name_probe`
on the member and non-member patients of the sets, under the target."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from ..common.digests import file_sha256
from ..common.errors import InputError
from ..data import diagnoses, names as name_files
from ..engine.cache import ScoreCache
from ..engine.scoring import ModelDir, ScoreSettings, score_sentences
from ..settings.study import StudySettings
from ..stats import name_probe
from ..training import demo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """The probe's pairs and the sentences that score them, and who was left out."""

    items: list[name_probe.Item]
    sentences: list[str]
    spans: list[tuple[int, int]]
    left_out: dict[str, dict[str, int]]  # per group: patients without a name, a condition, an other
    files_sha256: dict[str, str]  # settings.json's record of the three inputs


def plan(sets: pd.DataFrame, settings: StudySettings) -> Plan:
    """Reads the three inputs (the demo's: the synthetic corpus's) and makes the probe's
    pairs for the sets' member and non-member patients; stops, naming the file, when a group
    keeps fewer than 2 patients (with a name, and own and other conditions)."""
    diagnoses_file, titles_file, names_file = demo.name_probe_files() if settings.demo else (
        settings.diagnoses, settings.diagnosis_titles, settings.patient_names)
    titles = diagnoses.read_titles(titles_file)
    table = diagnoses.read_diagnoses(diagnoses_file)
    all_codes = {code for own in table.values() for code in own}
    untitled = len(all_codes - titles.keys())
    if 2 * untitled > len(all_codes):  # MIMIC-III's tables lack the titles of a few codes, not most
        raise InputError(f"{titles_file}: {untitled} of the {len(all_codes)} ICD-9 codes of {diagnoses_file} have "
                         "no title in it; give MIMIC-III's D_ICD_DIAGNOSES and DIAGNOSES_ICD (not the "
                         "PROCEDURES tables, which have the same columns)")
    if untitled:
        log.warning("%d of the %d ICD-9 codes of %s have no title in %s: left out of the name probe",
                    untitled, len(all_codes), diagnoses_file, titles_file)
    conditions = {patient: [c for c in codes if c in titles] for patient, codes in table.items()}
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
    items = name_probe.items(patients, conditions, settings.seed)
    for group in name_probe.GROUPS:  # a patient with every condition of the group has no other
        matched = {item.patient for item in items if item.group == group}
        left_out[group]["without_other_condition"] = len(patients[group]) - len(matched)
        if len(matched) < 2:
            raise InputError(f"{diagnoses_file}: {len(matched)} of the {len(patients[group])} {group} patients "
                             f"have a condition that another of them has and they do not (the probe's other "
                             "conditions; it needs 2 or more patients per group); draw more patients")
    sentences, spans = name_probe.templates(items, names, titles)
    digests = {name: file_sha256(path) for name, path in (
        ("diagnoses", diagnoses_file), ("diagnosis_titles", titles_file), ("patient_names", names_file))}
    return Plan(items, sentences, spans, left_out, digests)


def run(probe: Plan, target: ModelDir, settings: ScoreSettings, n_boot: int, seed: int
        ) -> tuple[dict, pd.DataFrame]:
    """metrics.json's ``name_probe`` and name_probe.csv: the plan's templates scored under
    the target; stops if one is longer than the target takes. Not cached: a template holds a
    name and a condition, and a cache key is a hash of its sentence, so the cache would tell
    whoever can guess a pair that it was scored."""
    with ScoreCache(None) as nothing:
        scored = score_sentences(target, probe.sentences, settings, nothing, spans=probe.spans)
    cut = sum(s.truncated for s in scored)
    if cut:  # the condition ends the template: cut, its score would be of some of its tokens, or none
        raise InputError(f"--diagnosis-titles: {cut} of the name probe's {len(scored)} templates are longer than "
                         f"the target's {target.loaded[1]} tokens, which would cut their condition; leave the "
                         "codes of the longest titles out of the file, or probe a target that takes longer inputs")
    scores = [s.pll for s in scored]
    table = name_probe.scores_table(probe.items, scores[0::2], scores[1::2])
    result = name_probe.evaluate(table, n_boot, seed)
    result["left_out"] = probe.left_out
    return result, table
