"""Shared fixtures: a small synthetic corpus in the real formats, and its split."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlm_mia import split, synthetic  # noqa: E402


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """A 120-patient MIMIC corpus, 40 n2c2 patients, and a 50/50 split of the MIMIC notes."""
    folder = tmp_path_factory.mktemp("corpus")
    files = synthetic.write_corpus(folder, seed=7, n_mimic_patients=120, n_n2c2_patients=40)
    split.split_notes([files["noteevents"]], folder / "split", 0.5, seed=3)
    files["train"] = folder / "split" / split.TRAIN_FILE
    files["heldout"] = folder / "split" / split.HELDOUT_FILE
    return files
