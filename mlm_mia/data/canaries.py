"""Planted canaries: synthetic clinical sentences carrying a random secret, each put into
the training data (at its number of repeats) or not by a seeded coin, so that an audit can
later *prove* something about the trained model (Steinke, Nasr & Jagielski 2023; Carlini
et al. 2019's exposure).

``prepare_data_MIA.py --canaries M`` writes ``canaries.jsonl`` (id, text, secret, repeats,
included) and ``canary_notes.csv.gz``: the included canaries as notes, each repeated, in
the format of the training input, to be added to the training data before pre-training.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .csv_notes import FORMATS
from ..settings.flags import SHARED_FLAGS, check_canary_space
from ..common.errors import InputError
from ..common.outputs import gzip_text_writer
from .sentences import normalize

log = logging.getLogger(__name__)

FILE = "canaries.jsonl"
NOTES_FILE = "canary_notes.csv.gz"
KEY = "canaries"  # manifest.json's record of them
FLAG = "--canaries"
WHAT = "canaries"
SECRET_DIGITS = SHARED_FLAGS["--canary-digits"]["default"]
# clinical-looking carriers of a made-up record number; every one at least 20 characters
TEMPLATES = (
    "The patient's medical record number is {secret} per registration.",
    "Case management confirmed insurance account {secret} with the family today.",
    "Outside records were faxed under reference number {secret} this morning.",
    "Pharmacy verified prescription number {secret} before discharge.",
    "Radiology report filed under accession number {secret} for review.",
    "Social work documented housing application {secret} with the patient.",
    "Lab specimen was sent out under requisition {secret} for testing.",
    "Primary care follow up was scheduled under visit number {secret} next week.",
)
# the notes of a canary patient (canary_patients.py), one template each, all carrying the
# patient's record number: other wording than TEMPLATES, so that no text is of both kinds
PATIENT_TEMPLATES = (
    "Admission note completed for the patient with record number {secret} today.",
    "Nursing reports that patient number {secret} rested comfortably overnight.",
    "Medications were reconciled for the patient registered under number {secret}.",
    "Physical therapy evaluated patient number {secret} and advised a walker.",
    "Cardiology consult was requested for the patient with chart number {secret}.",
    "The discharge summary of record number {secret} went to the primary physician.",
    "Nutrition saw patient number {secret} and recommended a low salt diet.",
    "A family meeting was held about goals of care for patient number {secret}.",
)
# a sentence of any template, whatever its secret (also with the digits removed and lower-
# cased, as in the pseudo re-identified 1a/1b files): never drawn into a set
_CANARY_SENTENCE = re.compile("|".join(
    normalize(re.escape(t)).replace(re.escape("{secret}"), r"\d*").replace(r"\ ", r"\s*")
    for t in TEMPLATES + PATIENT_TEMPLATES), re.IGNORECASE)
PATIENT_BASE = 900_000_000  # canary "patients" are numbered above any MIMIC-III SUBJECT_ID


def is_canary(sentence: str) -> bool:
    """Whether ``sentence`` is a canary's text or a canary patient's note (of this or any
    other run): once the canary notes are added to the training notes, their sentences are in the corpus, and a set
    must never draw them."""
    return _CANARY_SENTENCE.fullmatch(sentence.strip()) is not None


def secret_space(digits: int = SECRET_DIGITS) -> int:
    return 10 ** digits


def format_secret(value: int, digits: int = SECRET_DIGITS) -> str:
    return f"{value:0{digits}d}"


def taken_numbers(secrets: Iterable[str], digits: int) -> set[int]:
    """The ``digits``-digit secrets among ``secrets``, as numbers (others cannot collide)."""
    return {int(s) for s in secrets if len(s) == digits}


def make(n: int, repeats: tuple[int, ...], seed: int, avoid=lambda text: False,
         digits: int = SECRET_DIGITS, taken_secrets: Iterable[str] = ()) -> list[dict]:
    """``n`` canaries: distinct secrets drawn uniformly from the ``10**digits`` numbers, a
    template each, the repeat groups of equal size (in a seeded order), and an independent
    fair coin for inclusion. ``avoid(text)`` rejects a text found in the corpus (it is then
    drawn again), as a secret of ``taken_secrets`` (the canary patients') is."""
    check_canary_space(n, digits)
    space = secret_space(digits)
    rng = np.random.default_rng([seed, 31])
    groups = np.array(repeats)[rng.permutation(np.arange(n) % len(repeats))]
    included = rng.random(n) < 0.5
    taken = taken_numbers(taken_secrets, digits)
    canaries = []
    for i in range(n):
        while True:
            secret = int(rng.integers(space))
            text = normalize(TEMPLATES[i % len(TEMPLATES)].format(secret=format_secret(secret, digits)))
            if secret not in taken and not avoid(text):
                break
        taken.add(secret)
        canaries.append({"id": f"canary-{i:05d}", "patient_id": str(PATIENT_BASE + i), "text": text,
                         "secret": format_secret(secret, digits), "template": i % len(TEMPLATES),
                         "repeats": int(groups[i]), "included": bool(included[i])})
    return canaries


def alternatives_count(planted: list[dict], asked: int) -> int:
    """``--exposure-alternatives``, capped at the other secrets there are (``10**D - 1``
    for D-digit secrets; every secret is then ranked and the exposure exact), said once."""
    others = min((secret_space(len(c["secret"])) for c in planted), default=asked + 1) - 1
    if asked <= others:
        return asked
    log.warning("--exposure-alternatives %d: the canaries' %d-digit secrets have only %d others; "
                "each canary's exposure ranks it among all %d", asked, len(planted[0]["secret"]),
                others, others)
    return others


def alternatives(canary: dict, n: int, seed: int, digits: int = SECRET_DIGITS) -> list[str]:
    """``n`` texts of the canary's template with other secrets (distinct, never its own),
    drawn from the secret space with a seed of their own: the exposure's reference set."""
    if n >= secret_space(digits):
        raise ValueError(f"{n} alternatives: only {secret_space(digits) - 1} other {digits}-digit secrets")
    rng = np.random.default_rng([seed, 37, int(canary["id"].split("-")[1])])
    secrets: set[int] = set()
    own = int(canary["secret"])
    while len(secrets) < n:
        value = int(rng.integers(secret_space(digits)))
        if value != own:
            secrets.add(value)
    template = TEMPLATES[canary["template"]]
    return [normalize(template.format(secret=format_secret(v, digits))) for v in sorted(secrets)]


def write_notes(path: Path, canaries: list[dict], fmt: str) -> int:
    """The included canaries as notes in the training input's format (``noteevents`` or
    ``subject_notes``), each canary ``repeats`` times, one note per repeat; returns the
    number of notes."""
    return write_note_rows(path, ((c["patient_id"], c["text"]) for c in canaries if c["included"]
                                  for _ in range(c["repeats"])), fmt, PATIENT_BASE)


def write_note_rows(path: Path, notes: Iterable[tuple[str, str]], fmt: str, row_base: int) -> int:
    """``(patient id, text)`` notes in the training input's format (``noteevents``: ROW_IDs
    from ``row_base + 1``); returns the number of notes."""
    columns = FORMATS[fmt]
    rows = 0
    with gzip_text_writer(path) as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(columns)
        for patient_id, text in notes:
            rows += 1
            if fmt == "noteevents":
                writer.writerow([str(row_base + rows), patient_id, "", "", "", "", "Nursing/other", "Report",
                                 "", "", text])
            else:
                writer.writerow([patient_id, text])
    return rows


def json_lines(path: Path, flag: str) -> Iterator[tuple[str, object]]:
    """``(file:line, record)`` of each line of a JSON-lines file ``flag`` writes."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            where = f"{path}:{number}"
            try:
                yield where, json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise InputError(f"{where}: not a JSON line ({err}); write it with "
                                 f"prepare_data_MIA.py {flag}") from None


def wrong_fields(record: object, types: dict[str, type]) -> list[str]:
    """The fields of ``types`` that ``record`` lacks or holds with another type."""
    return [k for k, t in types.items() if not isinstance(record, dict) or type(record.get(k)) is not t]


def load(path: Path, set_ids: set[str], set_texts: set[str], set_patients: set[str] = frozenset()) -> list[dict]:
    """The canaries of a data folder, every field checked, none overlapping the sets (by
    id, text or patient id)."""
    canaries, seen = [], set()
    types = {"id": str, "patient_id": str, "text": str, "secret": str, "template": int,
             "repeats": int, "included": bool}
    for where, record in json_lines(path, FLAG):
        bad = wrong_fields(record, types)
        if bad:
            raise InputError(f"{where}: field(s) {bad} missing or of the wrong type; write it "
                             f"with prepare_data_MIA.py {FLAG}")
        if record["secret"] not in record["text"] or record["repeats"] < 1:
            raise InputError(f"{where}: the text does not carry its secret, or repeats < 1")
        if (record["id"] in seen or record["id"] in set_ids or record["text"] in set_texts
                or record["patient_id"] in set_patients):
            raise InputError(f"{where}: canary {record['id']} repeats an id or a sentence of the "
                             "sets; canaries must be apart from every set")
        seen.add(record["id"])
        canaries.append(record)
    if not canaries:
        raise InputError(f"{path}: no canaries")
    return canaries
