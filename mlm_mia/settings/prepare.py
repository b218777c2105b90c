"""The settings of prepare_data_MIA.py (the sampling of the sentence sets), typed, frozen
and checked once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..common.errors import InputError
from .choices import SPLITTERS
from .flags import (bounded, canary_repeats, check_canary_space, check_fields, non_negative_int, positive_int,
                    setting)

SYNTHETIC_DIR = Path("data") / "synthetic"


@dataclass(frozen=True)
class PrepareSettings:
    """Where the notes are, how many sentences from how many patients, the canaries and
    the outputs. Each field is the flag of the same name (``_`` for ``-``); the inputs are
    a file, a folder or a glob each, as text."""

    train_notes: str | None = None
    heldout_notes: str | None = None
    n2c2: str | None = None
    split: str | None = None
    train_fraction: float = setting(0.5, bounded(float, lambda x: 0 < x < 1,
                                                 "a fraction strictly between 0 and 1"))
    split_dir: Path | None = None
    members_from: str | None = None
    n_patients: int = setting(90, positive_int)
    n_sentences: int = setting(1000, positive_int)
    population: int = setting(0, non_negative_int)
    population_patients: int | None = setting(None, positive_int)
    min_chars: int = setting(20, positive_int)
    seed: int = setting(shared="--seed")
    splitter: str | None = setting(None, choices=SPLITTERS)
    allow_fewer: bool = False
    canaries: int = setting(shared="--canaries")
    canary_repeats: tuple[int, ...] = setting((1, 2, 4, 8), canary_repeats)
    canary_patients: int = setting(shared="--canary-patients")
    canary_digits: int = setting(shared="--canary-digits")
    replace_canaries: bool = False
    # the outputs are the same for any number of workers
    workers: int = field(default_factory=lambda: len(os.sched_getaffinity(0)),
                         metadata={"parse": positive_int})
    out_dir: Path = Path("data")
    synthetic_dir: Path = SYNTHETIC_DIR

    def __post_init__(self) -> None:
        for name in ("split_dir", "out_dir", "synthetic_dir"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        for name in ("train_notes", "heldout_notes", "n2c2", "split", "members_from"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, str(getattr(self, name)))
        check_fields(self)
        self._check_together()

    def _check_together(self) -> None:
        """What no flag can check alone."""
        if self.n_sentences < self.n_patients:
            raise InputError(f"--n-sentences {self.n_sentences} is fewer than --n-patients "
                             f"{self.n_patients}: every patient of a set gives at least one sentence")
        if self.canaries:
            check_canary_space(self.canaries, self.canary_digits)
        if self.canary_patients:
            check_canary_space(self.canary_patients, self.canary_digits, self.canaries, "--canary-patients",
                               "canary patients")
        if self.population_patients is not None and self.population < self.population_patients:
            raise InputError(f"--population {self.population} is fewer than --population-patients "
                             f"{self.population_patients}: every patient gives at least one sentence")
        if self.split and (self.train_notes or self.heldout_notes):
            raise InputError("--split makes the training and held-out halves itself; drop "
                             "--train-notes/--heldout-notes, or drop --split")

    @property
    def synthetic(self) -> bool:
        """No data given: the built-in synthetic corpus."""
        return not any((self.train_notes, self.heldout_notes, self.n2c2, self.split))

    @property
    def split_folder(self) -> Path:
        return self.split_dir or self.out_dir / "split"
