"""Shared fixtures: a small synthetic corpus in the real formats, and its split."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlm_mia.data import split
from mlm_mia.data import synthetic  # noqa: E402


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """A 120-patient MIMIC corpus, 40 n2c2 patients, and a 50/50 split of the MIMIC notes."""
    folder = tmp_path_factory.mktemp("corpus")
    files = synthetic.write_corpus(folder, seed=7, n_mimic_patients=120, n_n2c2_patients=40)
    split.split_notes([files["noteevents"]], folder / "split", 0.5, seed=3)
    files["train"] = folder / "split" / split.TRAIN_FILE
    files["heldout"] = folder / "split" / split.HELDOUT_FILE
    return files


@pytest.fixture(scope="session")
def corpus_sentences(corpus) -> dict[str, list[tuple[str, str]]]:
    """(patient, sentence) pairs of the training and held-out halves."""
    from mlm_mia.data.sources import note_source
    return {half: list(note_source(str(corpus[half]), half, None).sentences(20))
            for half in ("train", "heldout")}


@pytest.fixture(scope="session")
def tiny_tokenizer(corpus_sentences, tmp_path_factory):
    from mlm_mia.training.train import train_tokenizer
    texts = [s for pairs in corpus_sentences.values() for _, s in pairs]
    return train_tokenizer(texts, tmp_path_factory.mktemp("tokenizer"), vocab_size=600)


@pytest.fixture(scope="session")
def random_roberta(tiny_tokenizer, tmp_path_factory) -> Path:
    """An untrained tiny RoBERTa saved with its tokenizer (max 64 tokens)."""
    from mlm_mia.training.train import TinyShape, new_model
    folder = tmp_path_factory.mktemp("random_roberta")
    new_model(tiny_tokenizer, TinyShape(hidden=32, layers=2, heads=2, intermediate=64,
                                        max_positions=66), seed=0).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def small_sets(corpus, tmp_path_factory) -> Path:
    """Sets of 8 patients x 24 sentences and a population of 24 (one sentence per patient)."""
    from mlm_mia.cli import prepare
    data = tmp_path_factory.mktemp("small_sets") / "data"
    assert prepare.main(["--train-notes", str(corpus["train"]), "--heldout-notes", str(corpus["heldout"]),
                         "--n2c2", str(corpus["n2c2"]), "--n-patients", "8", "--n-sentences", "24",
                         "--population", "24", "--out-dir", str(data)]) == 0
    return data


def recipe_with(source: Path, out: Path, **changes) -> Path:
    """A copy of the recipe file ``source`` at ``out`` with ``changes`` made to its keys."""
    import yaml
    values = yaml.safe_load(source.read_text(encoding="utf-8"))
    out.write_text(yaml.safe_dump({**values, **changes}), encoding="utf-8")
    return out
