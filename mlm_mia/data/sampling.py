"""Patient-level sampling of sentence sets, reproducible from a seed.

Every choice is made from sorted lists with a NumPy generator, never from the iteration
order of a ``set`` or ``dict`` of strings, so the sample depends only on the inputs and
the seed (not on ``PYTHONHASHSEED``). Inputs are streamed: a first pass counts each
patient's sentences and hashes all sentence texts; a second pass reads only the chosen
patients' notes.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..common.errors import InputError
from ..common.workers import Workers
from ..settings.prepare import PrepareSettings
from . import canaries
from .sentences import text_hash
from .sources import Source, note_sentences

log = logging.getLogger(__name__)

BATCH = 65_536


@dataclass
class Scan:
    """What one pass over a source learns."""

    patients: set[str] = field(default_factory=set)  # every patient with a note
    sentence_counts: Counter = field(default_factory=Counter)  # usable sentences per patient
    hashes: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))  # sorted, unique


def hash_array(sentences: Iterable[str]) -> np.ndarray:
    """:func:`text_hash` of each sentence, as ``uint64``."""
    return np.fromiter((text_hash(s) for s in sentences), dtype=np.uint64)


def in_sorted(values: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``values`` occur in the sorted array ``sorted_unique``."""
    if sorted_unique.size == 0:
        return np.zeros(values.shape, dtype=bool)
    idx = np.minimum(np.searchsorted(sorted_unique, values), sorted_unique.size - 1)
    return sorted_unique[idx] == values


def hash_batch(notes: list[tuple[str, str, str, int]]) -> list[np.ndarray]:
    """The sentence hashes of each note of a batch (run in a worker process)."""
    return [hash_array(note_sentences(*note)) for note in notes]


def scan(source: Source, min_chars: int, allowed: np.ndarray | None = None,
         workers: Workers | None = None) -> Scan:
    """Count usable sentences per patient and hash every sentence of ``source``.

    With ``allowed`` (sorted hashes), only sentences whose text is in it are counted.
    """
    result = Scan()
    chunks, pending, size = [], [], 0
    for patient, hashes in source.split_notes(hash_batch, min_chars, workers=workers):
        if patient is not None:
            result.patients.add(patient)
            usable = hashes.size if allowed is None else int(in_sorted(hashes, allowed).sum())
            if usable:
                result.sentence_counts[patient] += usable
        pending.append(hashes)
        size += hashes.size
        if size >= BATCH:
            chunks.append(np.unique(np.concatenate(pending)))
            pending, size = [], 0
    chunks += [np.unique(np.concatenate(pending))] if pending else []
    if chunks:
        result.hashes = np.unique(np.concatenate(chunks))
    return result


def collect(source: Source, patients: list[str], min_chars: int, workers: Workers | None = None
            ) -> dict[str, list[str]]:
    """The distinct sentences of each of ``patients``, in input order."""
    wanted = frozenset(patients)
    found: dict[str, dict[str, None]] = {p: {} for p in patients}
    for patient, sentence in source.sentences(min_chars, patients=wanted, workers=workers):
        found[patient][sentence] = None
    return {p: list(s) for p, s in found.items()}


def draw_patients(source: Source, eligible: Iterable[str], n: int, rng: np.random.Generator,
                  usable: Callable[[str], bool], min_chars: int, set_name: str, allow_fewer: bool,
                  why: str, workers: Workers | None = None) -> tuple[list[str], dict[str, list[str]], int]:
    """``n`` patients drawn without replacement from the sorted ``eligible`` ids among those
    with at least one ``usable`` sentence, their usable sentences (in input order), and
    how many drawn patients were passed over for having none.

    Candidates are drawn in a seeded order and read in rounds (one pass over ``source``
    each); a candidate with no usable sentence (say, every sentence also in the other
    half's text) is passed over and another drawn in its place. When none is passed over
    this is one round and the first ``n`` of a seeded draw.
    """
    pool = sorted(eligible)
    if len(pool) < n and not allow_fewer:
        raise InputError(
            f"{set_name}: only {len(pool)} eligible patients ({why}), {n} asked; lower "
            "--n-patients, give more notes, or pass --allow-fewer to take all of them")
    chosen: list[str] = []
    sentences: dict[str, list[str]] = {}
    remaining, passed_over = pool, 0
    while len(chosen) < n and remaining:
        missing = n - len(chosen)
        # more candidates than missing when earlier rounds passed patients over
        wanted = min(len(remaining), missing if not passed_over else
                     missing * -(-(len(chosen) + passed_over) // max(1, len(chosen))))
        candidates = [remaining[i] for i in rng.choice(len(remaining), size=wanted, replace=False)]
        collected = collect(source, candidates, min_chars, workers)
        for patient in candidates:
            kept = [s for s in collected[patient] if usable(s)]
            if not kept:
                passed_over += 1
            elif len(chosen) < n:
                chosen.append(patient)
                sentences[patient] = kept
        tried = set(candidates)
        remaining = [p for p in remaining if p not in tried]
    if len(chosen) < n and not allow_fewer:
        raise InputError(
            f"{set_name}: only {len(chosen)} of the {len(pool)} eligible patients ({why}) have a "
            f"usable sentence ({passed_over} have none left once sentences of the other sets or "
            f"the other half are removed), {n} asked; lower --n-patients, give more notes, or "
            "pass --allow-fewer to take all of them")
    return chosen, sentences, passed_over


def round_robin(patients: list[str], by_patient: dict[str, list[str]], n_sentences: int,
                rng: np.random.Generator) -> list[tuple[str, str]]:
    """Up to ``n_sentences`` distinct ``(patient, sentence)`` pairs, spread evenly.

    Each patient's sentences are shuffled; then one sentence is taken from each
    patient in turn (in the drawn patient order) until enough are taken, so every chosen
    patient contributes and none dominates.
    """
    queues = []
    for patient in patients:
        sentences = by_patient.get(patient, [])
        queues.append((patient, [sentences[i] for i in rng.permutation(len(sentences))]))
    picked: list[tuple[str, str]] = []
    taken: set[str] = set()
    longest = max((len(q) for _, q in queues), default=0)
    for depth in range(longest):
        for patient, queue in queues:
            if depth < len(queue) and queue[depth] not in taken:
                taken.add(queue[depth])
                picked.append((patient, queue[depth]))
                if len(picked) == n_sentences:
                    return picked
    return picked


class Texts:
    """Sentence texts to avoid: sorted hashes plus the texts already sampled."""

    def __init__(self, hashes: np.ndarray):
        self.hashes = hashes
        self.sampled: set[str] = set()

    def __contains__(self, sentence: str) -> bool:
        if sentence in self.sampled:
            return True
        value = np.array([text_hash(sentence)], dtype=np.uint64)
        return bool(in_sorted(value, self.hashes)[0])


def draw_set(name: str, source: Source, eligible: list[str], why: str,
          usable, settings: PrepareSettings, index: int, workers: Workers,
          n_patients: int | None = None,
          n_sentences: int | None = None, exact_patients: bool = True,
          hint: str = "lower --n-sentences, raise --n-patients") -> tuple[list[dict], dict]:
    """One set: ``n_patients`` patients (exactly, unless ``exact_patients`` is false or
    --allow-fewer is given) and ``n_sentences`` usable sentences spread over them."""
    n_patients = settings.n_patients if n_patients is None else n_patients
    n_sentences = settings.n_sentences if n_sentences is None else n_sentences
    rng = np.random.default_rng([settings.seed, index])
    patients, by_patient, passed_over = draw_patients(
        source, eligible, n_patients, rng, lambda s: usable(s) and not canaries.is_canary(s),
        settings.min_chars, name,
        settings.allow_fewer or not exact_patients, why, workers)
    picked = round_robin(patients, by_patient, n_sentences, rng)
    contributing = {p for p, _ in picked}
    if len(contributing) < len(patients) and not settings.allow_fewer:
        raise InputError(
            f"{name}: {len(patients) - len(contributing)} of the {len(patients)} sampled patients "
            "have no sentence left that another patient of the set did not already give; "
            "lower --n-patients, or pass --allow-fewer")
    if len(picked) < n_sentences and not settings.allow_fewer:
        raise InputError(
            f"{name}: the {len(patients)} sampled patients have only {len(picked)} usable "
            f"sentences in {source.flag} (at least {settings.min_chars} characters, distinct, "
            f"not in another set{' or the held-out text' if name == 'members' else ' or the training text'}), "
            f"{n_sentences} asked; {hint}, or pass --allow-fewer")
    records = [{"id": f"{name}-{i:05d}", "set": name, "patient_id": p, "text": s}
               for i, (p, s) in enumerate(picked)]
    summary = {
        "n_sentences": len(records), "n_patients": len({p for p, _ in picked}),
        "n_eligible_patients": len(eligible), "patients": sorted({p for p, _ in picked}),
        "n_passed_over": passed_over,
        "shortfall": {"patients": n_patients - len(contributing),
                      "sentences": n_sentences - len(records)}
        if (len(contributing), len(records)) != (n_patients, n_sentences) else None,
    }
    log.info("%s: %d sentences from %d patients", name, summary["n_sentences"], summary["n_patients"])
    return records, summary
