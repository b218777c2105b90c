"""A seeded synthetic clinical corpus in the real file formats.

It stands in for MIMIC-III and n2c2, which are credentialed and never on these machines.
Each patient carries recurring facts (placeholder name ids, history, medications, lab
values, social history) through all of their notes, so a model trained on the notes can
memorise patient-specific text, as with real notes. Written:

- ``NOTEEVENTS.csv.gz``: the 11 MIMIC-III columns, numbers unquoted, strings quoted,
  multi-line TEXT with ``[**...**]`` spans, some ``ISERROR=1`` rows, CATEGORY values
  with a trailing space;
- ``SUBJECT_ID_to_NOTES_1a.csv``: the same notes in the pseudo re-identified "1a" style
  (surrogate names, lower case, digits and ``[...]`` removed, one sentence per line), and
  ``SUBJECT_ID_to_NOTES_1b.csv``, the "1b" style: every line prefixed with the patient's name;
- ``SUBJECT_ID_NAME.csv``: each patient's surrogate name (``SUBJECT_ID,NAME``);
- ``DIAGNOSES_ICD.csv.gz`` and ``D_ICD_DIAGNOSES.csv.gz``: each patient's conditions as
  MIMIC-III's diagnosis tables give them, with made-up but plausible ICD-9 codes (a title is
  the condition as the notes write it);
- ``n2c2/`` and ``n2c2.tar.gz``: ``PPP-RR.xml`` records of another "hospital", with its
  own phrasing and surrogate names.

Longer than most modules (about 350 lines): most of it is the word lists and phrasings the
notes are made of, which read best in one place.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO
from xml.sax.saxutils import escape

import numpy as np

from .csv_notes import NOTEEVENTS_COLUMNS
from ..common.outputs import gzip_text_writer
from .sentences import normalize, split_rules

FIRST = ("James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
         "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa "
         "Anthony Betty Mark Helen Donald Sandra Steven Donna Paul Carol Andrew Ruth Joshua "
         "Sharon Kenneth Michelle Kevin Laura Brian Emily George Kimberly Edward Deborah").split()
LAST = ("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
        "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
        "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
        "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell").split()
CONDITIONS = (
    "coronary artery disease", "atrial fibrillation", "congestive heart failure",
    "type 2 diabetes mellitus", "hypertension", "hyperlipidemia", "chronic kidney disease",
    "chronic obstructive pulmonary disease", "asthma", "obstructive sleep apnea",
    "peripheral vascular disease", "hypothyroidism", "gastroesophageal reflux disease",
    "cirrhosis", "alcohol use disorder", "depression", "prostate cancer", "breast cancer",
    "rheumatoid arthritis", "osteoarthritis", "gout", "anemia", "deep vein thrombosis",
    "pulmonary embolism", "prior stroke", "seizure disorder", "dementia", "lung cancer",
    "aortic stenosis", "mitral regurgitation", "end stage renal disease", "hepatitis C",
)
# an ICD-9 code for each condition: plausible, not checked against the classification
ICD9 = dict(zip(CONDITIONS, (
    "41401", "42731", "4280", "25000", "4019", "2724", "5859", "496", "49390", "32723", "4439",
    "2449", "53081", "5715", "30390", "311", "185", "1749", "7140", "71590", "2749", "2859",
    "45340", "41519", "V1254", "34590", "2900", "1629", "4241", "4240", "5856", "07054")))
DRUGS = (
    ("metoprolol", (25, 50, 100)), ("lisinopril", (5, 10, 20, 40)), ("atorvastatin", (10, 40, 80)),
    ("aspirin", (81, 325)), ("warfarin", (2, 5, 7)), ("furosemide", (20, 40, 80)),
    ("metformin", (500, 850, 1000)), ("insulin glargine", (10, 20, 30)), ("amlodipine", (5, 10)),
    ("levothyroxine", (50, 75, 100)), ("omeprazole", (20, 40)), ("pantoprazole", (40,)),
    ("clopidogrel", (75,)), ("simvastatin", (20, 40)), ("carvedilol", (6, 12, 25)),
    ("spironolactone", (25, 50)), ("prednisone", (5, 10, 20)), ("gabapentin", (300, 600)),
    ("sertraline", (50, 100)), ("tamsulosin", (0.4,)), ("allopurinol", (100, 300)),
    ("apixaban", (2.5, 5)), ("digoxin", (0.125, 0.25)), ("hydralazine", (25, 50)),
    ("lactulose", (30,)), ("rifaximin", (550,)), ("albuterol", (90,)), ("tiotropium", (18,)),
    ("donepezil", (5, 10)), ("levetiracetam", (500, 1000)), ("losartan", (25, 50, 100)),
)
FREQS = ("daily", "twice daily", "three times daily", "at bedtime", "every morning")
REASONS = ("chest pain", "shortness of breath", "fever and chills", "abdominal pain",
           "a syncopal episode", "confusion", "a fall at home", "lower extremity swelling",
           "melena", "palpitations", "productive cough", "weakness")
ALLERGIES = (("penicillin", "hives"), ("sulfa drugs", "a rash"), ("codeine", "nausea"),
             ("iodinated contrast", "throat swelling"), ("lisinopril", "angioedema"),
             ("morphine", "itching"), ("latex", "contact dermatitis"))
PROCEDURES = ("coronary artery bypass grafting", "a cholecystectomy", "a left knee replacement",
              "a right hip replacement", "an appendectomy", "a pacemaker placement",
              "a transurethral resection of the prostate", "a carotid endarterectomy",
              "a colectomy", "percutaneous coronary intervention")
RELATIONS = ("wife", "husband", "daughter", "son", "sister", "partner")
CITIES = ("Dorchester", "Quincy", "Brookline", "Somerville", "Newton", "Chelsea", "Revere",
          "Malden", "Waltham", "Framingham", "Brighton", "Medford")
JOBS = ("retired teacher", "retired postal worker", "bus driver", "nurse", "accountant",
        "construction worker", "retired engineer", "cook", "electrician", "lawyer")
GENERIC = (
    "Patient resting comfortably in bed with no acute distress.",
    "Will continue to monitor closely overnight.",
    "Pain well controlled on current regimen.",
    "Family updated at the bedside regarding the plan of care.",
    "Tolerating a regular diet without nausea or vomiting.",
    "Ambulating in the hallway with physical therapy.",
    "Lungs clear to auscultation bilaterally.",
    "Abdomen soft, non-tender, non-distended with normal bowel sounds.",
    "Skin warm and dry without rashes.",
    "No acute events overnight per nursing report.",
)
CATEGORIES = (
    ("Discharge summary", "Report"), ("Nursing/other", "Report"), ("Physician ", "Physician Resident Progress Note"),
    ("Nursing", "Nursing Progress Note"), ("Respiratory ", "Respiratory Care Shift Note"),
    ("Case Management ", "Case Management Initial Assessment"), ("Radiology", "CHEST (PORTABLE AP)"),
    ("ECG", "Report"),
)


@dataclass(frozen=True)
class Patient:
    """The recurring facts of one synthetic patient."""

    subject_id: int
    first: str
    last: str
    first_id: int
    last_id: int
    age: int
    male: bool
    conditions: tuple[str, ...]
    meds: tuple[tuple[str, float, str], ...]
    reason: str
    allergy: tuple[str, str]
    procedure: str
    procedure_year: int
    creatinine: float
    hemoglobin: float
    ejection_fraction: int
    relation: str
    city: str
    job: str
    pack_years: int
    pcp_id: int
    hospital_id: int
    base_year: int


def make_patient(rng: np.random.Generator, subject_id: int) -> Patient:
    """Draw one patient's facts."""
    def pick(options, k=None):
        idx = rng.choice(len(options), size=k, replace=False) if k else rng.integers(len(options))
        return tuple(options[i] for i in idx) if k else options[idx]

    meds = tuple((name, float(doses[rng.integers(len(doses))]), pick(FREQS))
                 for name, doses in pick(DRUGS, 4))
    return Patient(
        subject_id=subject_id, first=pick(FIRST), last=pick(LAST),
        first_id=int(rng.integers(100, 9999)), last_id=int(rng.integers(100, 9999)),
        age=int(rng.integers(35, 90)), male=bool(rng.integers(2)),
        conditions=pick(CONDITIONS, 3), meds=meds, reason=pick(REASONS), allergy=pick(ALLERGIES),
        procedure=pick(PROCEDURES), procedure_year=int(rng.integers(2100, 2180)),
        creatinine=round(float(rng.uniform(0.6, 3.5)), 1),
        hemoglobin=round(float(rng.uniform(7.5, 15.5)), 1),
        ejection_fraction=int(rng.integers(4, 14)) * 5, relation=pick(RELATIONS), city=pick(CITIES),
        job=pick(JOBS), pack_years=int(rng.integers(0, 60)), pcp_id=int(rng.integers(100, 9999)),
        hospital_id=int(rng.integers(1, 40)), base_year=int(rng.integers(2110, 2190)),
    )


def _dose(value: float) -> str:
    return f"{value:g}"


def _mimic_facts(p: Patient) -> list[str]:
    """Patient-specific sentences in the MIMIC style; de-identified spans as placeholders."""
    he, his = ("He", "his") if p.male else ("She", "her")
    name = f"[**Known firstname {p.first_id}**] [**Known lastname {p.last_id}**]"
    c1, c2, c3 = p.conditions
    meds = ", ".join(f"{m} {_dose(d)} mg {f}" for m, d, f in p.meds)
    return [
        f"{name} is a {p.age} year old {'man' if p.male else 'woman'} with a history of {c1}, "
        f"{c2} and {c3} who presents with {p.reason}.",
        f"Home medications include {meds}.",
        f"Labs notable for a creatinine of {p.creatinine} and a hemoglobin of {p.hemoglobin}.",
        f"Echocardiogram on [**{p.base_year}-3-{p.pcp_id % 27 + 1}**] showed an ejection "
        f"fraction of {p.ejection_fraction}% with no wall motion abnormalities.",
        f"{he} lives with {his} {p.relation} in {p.city} and works as a {p.job}.",
        f"{he} has a {p.pack_years} pack year smoking history." if p.pack_years
        else f"{he} has never smoked.",
        f"Allergic to {p.allergy[0]}, which caused {p.allergy[1]}.",
        f"{he} is followed by Dr. [**Last Name (STitle) {p.pcp_id}**] at [**Hospital1 "
        f"{p.hospital_id}**] for {c1}.",
        f"Status post {p.procedure} in [**{p.procedure_year}**] without complications.",
        f"{his.capitalize()} {p.meds[0][0]} was held on admission given the {p.reason}.",
        f"Continued on {p.meds[1][0]} {_dose(p.meds[1][1])} mg {p.meds[1][2]} for {c2}.",
        f"The {p.relation} was updated by phone and agrees with the plan for {c3}.",
    ]


def _per_note_sentences(rng: np.random.Generator, p: Patient) -> list[str]:
    """Sentences that change from note to note: vitals and a few generic lines."""
    sentences = []
    if rng.random() < 0.5:  # not every note records vital signs
        sentences.append(
            f"Vital signs: T {rng.uniform(36.2, 38.9):.1f} HR {rng.integers(55, 125)} BP "
            f"{rng.integers(95, 175)}/{rng.integers(50, 95)} RR {rng.integers(12, 28)} O2 sat "
            f"{rng.integers(88, 100)}% on {rng.integers(0, 5)}L nasal cannula.")
    sentences += [GENERIC[i] for i in rng.choice(len(GENERIC), size=3, replace=False)]
    return sentences


def _wrap(text: str, width: int = 72) -> str:
    """Hard-wrap at ``width`` like the line breaks of real discharge summaries."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join(lines + [line])


def _mimic_note(rng: np.random.Generator, p: Patient, facts: list[str]) -> str:
    # most facts are carried forward from note to note, as in real clinical notes
    chosen = [facts[i] for i in sorted(rng.choice(len(facts), size=9, replace=False))]
    course = _per_note_sentences(rng, p) + chosen[4:]
    rng.shuffle(course)
    body = chosen[:4] + course
    return (f"Admission Date:  [**{p.base_year}-7-16**]     Discharge Date:  [**{p.base_year}-7-23**]\n\n"
            f"HISTORY OF PRESENT ILLNESS:\n{_wrap(' '.join(body[:4]))}\n\n"
            f"HOSPITAL COURSE:\n{_wrap(' '.join(body[4:]))}\n")


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _noteevents_row(row_id: int, p: Patient, hadm: int, note_no: int, text: str,
                    iserror: bool, rng: np.random.Generator) -> str:
    category, description = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    day = f"{p.base_year}-07-{16 + note_no % 8:02d}"
    timed = category != "Discharge summary"
    chart_time = f"{day} {rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:00" if timed else ""
    store_time = f"{day} {rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:00" if timed else ""
    cgid = str(rng.integers(14000, 21000)) if timed else ""
    fields = [str(row_id), str(p.subject_id), str(hadm), day, chart_time, store_time,
              _quote(category), _quote(description), cgid, "1" if iserror else "", _quote(text)]
    return ",".join(fields) + "\n"


def _one_a_text(text: str, p: Patient) -> str:
    """The "1a" transformation of a raw note: surrogate names, lower case, no digits or
    ``[...]``, one sentence per line with fragments under 20 characters merged back."""
    text = text.replace(f"[**Known firstname {p.first_id}**]", p.first)
    text = text.replace(f"[**Known lastname {p.last_id}**]", p.last)
    lines: list[str] = []
    for sentence in split_rules(text):
        sentence = re.sub(r"\[\*\*.*?\*\*\]", "", sentence, flags=re.DOTALL)
        sentence = normalize(re.sub(r"\d", "", sentence).lower())
        if lines and len(sentence) < 20:
            lines[-1] = f"{lines[-1]} {sentence}".strip()
        elif sentence:
            lines.append(sentence)
    return "\n".join(lines)


def mimic_patients(n_patients: int, seed: int) -> Iterator[Patient]:
    """``n_patients`` patients with distinct subject ids, each from its own seeded stream."""
    ids = np.random.default_rng([seed, 0]).choice(900_000, size=n_patients, replace=False) + 100
    for index, subject_id in enumerate(ids):
        yield make_patient(np.random.default_rng([seed, 1, index]), int(subject_id))


def write_noteevents(handle: TextIO, n_patients: int, seed: int, notes_per_patient=(4, 9),
                     one_a: TextIO | None = None, one_b: TextIO | None = None) -> int:
    """Write a NOTEEVENTS file (and optionally its "1a" and "1b" twins); return the number
    of rows."""
    handle.write(",".join(_quote(c) for c in NOTEEVENTS_COLUMNS) + "\n")
    for twin in (one_a, one_b):
        if twin is not None:
            twin.write("SUBJECT_ID,TEXT\n")
    row_id = 0
    for index, p in enumerate(mimic_patients(n_patients, seed)):
        rng = np.random.default_rng([seed, 2, index])
        facts = _mimic_facts(p)
        hadm = 100_000 + index
        for note_no in range(int(rng.integers(*notes_per_patient))):
            text = _mimic_note(rng, p, facts)
            row_id += 1
            iserror = bool(rng.random() < 0.02)
            handle.write(_noteevents_row(row_id, p, hadm, note_no, text, iserror, rng))
            if iserror:
                continue
            one_a_text = _one_a_text(text, p)
            if one_a is not None:
                one_a.write(f"{p.subject_id},{_quote(one_a_text)}\n")
            if one_b is not None:  # "1b": the name before every line
                prefixed = "\n".join(f"{_name(p)} {line}" for line in one_a_text.split("\n"))
                one_b.write(f"{p.subject_id},{_quote(prefixed)}\n")
    return row_id


def _name(p: Patient) -> str:
    return f"{p.first} {p.last}".lower()


def write_names_and_diagnoses(out_dir: Path, n_patients: int, seed: int) -> dict[str, Path]:
    """``SUBJECT_ID_NAME.csv`` and the two diagnosis tables of the MIMIC patients of
    :func:`write_noteevents` (same ``n_patients`` and ``seed``): one admission each, whose
    diagnoses are the patient's three conditions."""
    files = {"names": out_dir / "SUBJECT_ID_NAME.csv", "diagnoses": out_dir / "DIAGNOSES_ICD.csv.gz",
             "diagnosis_titles": out_dir / "D_ICD_DIAGNOSES.csv.gz"}
    row_id = 0
    with open(files["names"], "w", encoding="utf-8", newline="") as names, \
            gzip_text_writer(files["diagnoses"]) as diagnoses:
        names.write("SUBJECT_ID,NAME\n")
        diagnoses.write('"ROW_ID","SUBJECT_ID","HADM_ID","SEQ_NUM","ICD9_CODE"\n')
        for index, p in enumerate(mimic_patients(n_patients, seed)):
            names.write(f"{p.subject_id},{_quote(f'{p.first} {p.last}')}\n")
            for seq_num, condition in enumerate(p.conditions, 1):
                row_id += 1
                diagnoses.write(f"{row_id},{p.subject_id},{100_000 + index},{seq_num},{_quote(ICD9[condition])}\n")
    with gzip_text_writer(files["diagnosis_titles"]) as titles:
        titles.write('"ROW_ID","ICD9_CODE","SHORT_TITLE","LONG_TITLE"\n')
        for row, (condition, code) in enumerate(sorted(ICD9.items(), key=lambda item: item[1]), 1):
            title = condition[0].upper() + condition[1:]
            titles.write(f"{row},{_quote(code)},{_quote(title[:24])},{_quote(title)}\n")
    return files


def _n2c2_record(rng: np.random.Generator, p: Patient, record_no: int) -> str:
    """One record in the n2c2 hospital's own style: surrogate names, terse headers."""
    he = "He" if p.male else "She"
    title = "Mr." if p.male else "Ms."
    c1, c2, c3 = p.conditions
    year = 2060 + p.base_year % 40 + record_no
    lines = [
        f"Record date: {year}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}",
        "",
        "INTERNAL MEDICINE ASSOCIATES",
        f"Reason for visit: follow up of {c1} and {c2}.",
        "",
        f"HPI: {title} {p.last} is a {p.age + record_no} yo {'gentleman' if p.male else 'lady'} "
        f"seen today in clinic w/ h/o {c1}, {c2}, {c3}.",
        f"{he} reports {rng.choice(['stable exercise tolerance', 'mild fatigue', 'occasional dizziness', 'no new complaints'])} since the last visit.",
        f"Smoking: {p.pack_years} pack-years, counselled on cessation." if p.pack_years
        else "Smoking: never.",
        "",
        "Medications:",
        *[f"- {m.capitalize()} {_dose(d)} mg po {f}" for m, d, f in p.meds],
        "",
        f"Exam: BP {rng.integers(100, 170)}/{rng.integers(55, 95)}, P {rng.integers(55, 110)}, "
        f"Wt {rng.integers(110, 260)} lb. Heart regular rate and rhythm, no murmurs appreciated.",
        f"Labs: Cr {p.creatinine}, Hgb {p.hemoglobin}, A1c {rng.uniform(5.2, 10.5):.1f}%.",
        "",
        f"Assessment and plan: {c1.capitalize()} remains stable on the current regimen.",
        f"Return to clinic in {rng.integers(2, 7)} months or sooner if needed.",
        "",
        f"{p.first} {p.last}, MD" if record_no % 2 else f"Electronically signed by Dr. {p.last}",
    ]
    return "\n".join(lines)


def _n2c2_xml(text: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<root>\n<TEXT><![CDATA[\n'
            f"{text}\n]]></TEXT>\n<TAGS>\n"
            f'<DIABETES time="before DCT" indicator="mention" text="{escape("diabetes")}"/>\n'
            "</TAGS>\n</root>\n")


def write_n2c2(folder: Path, n_patients: int, seed: int) -> list[Path]:
    """Write ``PPP-RR.xml`` records for ``n_patients`` patients; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n_patients):
        rng = np.random.default_rng([seed, 3, index])
        p = make_patient(rng, 100 + index)
        for record_no in range(1, int(rng.integers(2, 6)) + 1):
            path = folder / f"{p.subject_id:03d}-{record_no:02d}.xml"
            path.write_text(_n2c2_xml(_n2c2_record(rng, p, record_no)), encoding="utf-8")
            paths.append(path)
    return paths


def write_corpus(out_dir: Path, seed: int = 0, n_mimic_patients: int = 400,
                 n_n2c2_patients: int = 120, notes_per_patient: tuple[int, int] = (4, 9)
                 ) -> dict[str, Path]:
    """Write the whole synthetic corpus into ``out_dir``; return its files by role. A MIMIC
    patient has ``notes_per_patient`` notes (low inclusive, high exclusive), about 13
    sentences each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    noteevents = out_dir / "NOTEEVENTS.csv.gz"
    one_a, one_b = out_dir / "SUBJECT_ID_to_NOTES_1a.csv", out_dir / "SUBJECT_ID_to_NOTES_1b.csv"
    with gzip_text_writer(noteevents) as handle, \
            open(one_a, "w", encoding="utf-8", newline="") as one_a_handle, \
            open(one_b, "w", encoding="utf-8", newline="") as one_b_handle:
        write_noteevents(handle, n_mimic_patients, seed, notes_per_patient, one_a_handle, one_b_handle)
    probe_files = write_names_and_diagnoses(out_dir, n_mimic_patients, seed)
    n2c2_dir = out_dir / "n2c2" / "training-RiskFactors-Complete-Set1"
    records = write_n2c2(n2c2_dir, n_n2c2_patients, seed)
    tar_path = out_dir / "n2c2.tar.gz"
    with open(tar_path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w") as archive:
        for path in records:
            info = tarfile.TarInfo(f"{n2c2_dir.name}/{path.name}")
            data = path.read_bytes()
            info.size, info.mtime = len(data), 0
            archive.addfile(info, io.BytesIO(data))
    return {"noteevents": noteevents, "one_a": one_a, "one_b": one_b, "n2c2": out_dir / "n2c2",
            "n2c2_tar": tar_path, **probe_files}
