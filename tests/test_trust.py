"""No silent wrong result and no lost work: planted canaries kept and never drawn into a
set, exposure alternatives within the secret space, a sentence of [UNK]s scored by every
attack, the per-patient tests' absence said, temporary names never shown."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pandas as pd
import pytest

from mlm_mia.cli import prepare
from mlm_mia.data import canaries
from mlm_mia.data.prepare import MANIFEST
from mlm_mia.cli import common as cli
from mlm_mia.stats import evaluation, patient_tests
from mlm_mia.common.errors import InputError
from mlm_mia.common.outputs import atomic_path


def test_a_rerun_keeps_the_planted_canaries_and_never_draws_their_sentences(corpus, tmp_path):
    """Canary notes added to the training notes, as the README says, then the sets drawn
    again: every training patient drawn, the canary patients among the candidates."""
    out = tmp_path / "data"
    common = ["--heldout-notes", str(corpus["heldout"]), "--n-patients", "8", "--n-sentences", "24"]
    assert prepare.main(["--train-notes", str(corpus["train"]), *common, "--canaries", "8",
                         "--canary-digits", "4", "--out-dir", str(out)]) == 0
    planted = (out / canaries.FILE).read_bytes()
    notes = (out / canaries.NOTES_FILE).read_bytes()
    trained_on = tmp_path / "train_with_canaries.csv"
    with gzip.open(corpus["train"], "rt", encoding="utf-8", newline="") as train, \
            gzip.open(out / canaries.NOTES_FILE, "rt", encoding="utf-8", newline="") as added:
        trained_on.write_text(train.read() + added.read().split("\n", 1)[1], encoding="utf-8", newline="")
    with pytest.raises(InputError, match="would drop or replace the planted canaries"):
        prepare.main(["--train-notes", str(trained_on), *common, "--out-dir", str(out)])
    assert prepare.main(["--train-notes", str(trained_on), *common, "--n-patients", "500", "--n-sentences", "600", "--allow-fewer",
                         "--canaries", "8", "--canary-digits", "4", "--seed", "3", "--out-dir", str(out)]) == 0
    assert (out / canaries.FILE).read_bytes() == planted and (out / canaries.NOTES_FILE).read_bytes() == notes
    texts = {json.loads(line)["text"] for line in planted.decode().splitlines()}
    drawn = [json.loads(line) for name in ("members", "non_members") for line in (out / f"{name}.jsonl").open()]
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["sets"]["members"]["n_passed_over"] >= sum(  # the included canaries' patients
        json.loads(line)["included"] for line in planted.decode().splitlines())
    assert not texts & {r["text"] for r in drawn} and not any(canaries.is_canary(r["text"]) for r in drawn)
    # replaced on request: no canaries, none left behind
    assert prepare.main(["--train-notes", str(trained_on), *common, "--replace-canaries", "--out-dir", str(out)]) == 0
    assert not (out / canaries.FILE).exists() and not (out / canaries.NOTES_FILE).exists()


def test_canary_sentences_are_recognised_whatever_their_secret():
    made = canaries.make(16, (1, 2), seed=0, digits=3)
    assert all(canaries.is_canary(c["text"]) for c in made)
    assert canaries.is_canary(made[0]["text"].lower().replace(made[0]["secret"], ""))  # as in the 1a/1b files
    assert not canaries.is_canary("The patient's medical record was reviewed per registration.")


def test_exposure_alternatives_are_capped_at_the_other_secrets(caplog):
    planted = canaries.make(4, (1,), seed=0, digits=2)
    assert canaries.alternatives_count(planted, 100) == 99
    assert "only 99 others" in caplog.text
    assert canaries.alternatives_count(planted, 50) == 50
    every = canaries.alternatives(planted[0], 99, seed=0, digits=2)
    assert len(set(every)) == 99 and planted[0]["text"] not in every
    with pytest.raises(ValueError):
        canaries.alternatives(planted[0], 100, seed=0, digits=2)


def test_a_sentence_of_unknown_tokens_is_scored_by_the_pll_and_the_masked_loss(tmp_path):
    """Under a BERT target an emoji is [UNK], which the PLL scores like any token: the
    masked loss masks the same tokens, so it scores the sentence too."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from mlm_mia.attacks.masked_loss import masked_logprobs
    from mlm_mia.engine.pll import PLLEngine

    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the",
                                                   "patient", "is", "fine", "today", "."]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=32)).eval()
    texts = ["\U0001F600\U0001F600 \U0001F600", "the patient is fine today."]
    assert tokenizer(texts[0])["input_ids"] == [2, 1, 1, 3]
    scores = PLLEngine(model, tokenizer, 64).score(texts)
    assert [s.n_tokens for s in scores] == [2, 6] and np.isfinite([s.pll for s in scores]).all()
    assert np.isfinite(masked_logprobs(model, tokenizer, texts, 64)).all()


def test_too_few_population_patients_are_said_once(caplog):
    rng = np.random.default_rng(0)
    rows = [(s, f"{s}-{i}", f"{s}{i % n}") for s, n, k in (("members", 6, 30), ("non_members", 6, 30),
                                                           ("population", 5, 20)) for i in range(k)]
    table = pd.DataFrame(rows, columns=["set", "id", "patient_id"]).assign(score_loss=rng.normal(size=len(rows)))
    results, patients = evaluation.compare(table, n_boot=0)
    assert patients is None and evaluation.PATIENT_TESTS not in results
    assert results[evaluation.PATIENT_TESTS_LEFT_OUT] == (
        f"per-patient tests left out: 5 population patients, at least {patient_tests.MIN_NULL_PATIENTS} "
        f"needed (prepare with --population-patients {patient_tests.MIN_NULL_PATIENTS} or more)")
    assert caplog.text.count("per-patient tests left out") == 1


def test_an_error_names_the_users_file_not_the_temporary_one(tmp_path):
    target = tmp_path / "metrics.json"
    with pytest.raises(OSError) as caught:
        with atomic_path(target) as staged:
            os.mkdir(staged)  # fails on the temporary file, which exists
    assert caught.value.filename == str(target) and list(tmp_path.iterdir()) == []


def test_every_script_defines_a_shared_flag_the_same_way():
    from mlm_mia.cli import metrics as metrics_cli
    from mlm_mia.cli import score

    parsers = [prepare.build_parser(), score.build_parser(), metrics_cli.build_parser()]
    for flag, definition in cli.SHARED_FLAGS.items():
        actions = [a for p in parsers for a in p._actions if flag in a.option_strings]
        assert actions and all((a.type, a.default) == (definition.get("type"), definition["default"])
                               for a in actions), flag
    shared = {flag for i, p in enumerate(parsers) for q in parsers[i + 1:]
              for flag in {o for a in p._actions for o in a.option_strings}
              & {o for a in q._actions for o in a.option_strings}}
    assert shared - {"-h", "--help", "--version", "--out-dir"} <= set(cli.SHARED_FLAGS)  # --out-dir: data/ or results/


def test_an_output_name_near_the_length_limit_is_written(tmp_path):
    from mlm_mia.common.outputs import write_text_atomic

    target = tmp_path / ("m" * 250 + ".json")  # its temporary name once went past 255 bytes
    write_text_atomic(target, "{}\n")
    assert [p.name for p in tmp_path.iterdir()] == [target.name] and target.read_text() == "{}\n"


def test_an_attack_is_compared_only_where_the_runs_define_it_alike():
    from mlm_mia.stats.comparison import not_comparable

    table = pd.DataFrame({"set": ["members", "non_members"], "id": ["a", "b"], "patient_id": ["1", "2"],
                          "score_loss": [1.0, 0.0], "score_min_k": [1.0, 0.0], "score_ratio_reference_x": [1.0, 0.0]})
    settings = {"pll": "original", "reduction": "mean", "min_k_fraction": 0.2, "references": {"reference_x": "ab"}}
    tables = {"a": table, "b": table, "c": table.drop(columns="score_loss")}
    why = not_comparable(tables, {"a": settings, "b": settings | {"min_k_fraction": 0.5,
                                                                  "references": {"reference_x": "cd"}}, "c": {}})
    assert why == {"loss": "scored by a, b only",
                   "min_k": "defined differently: min_k_fraction is 0.2 in a; 0.5 in b",
                   "ratio_reference_x": 'defined differently: references is {"reference_x": "ab"} in a; '
                                        '{"reference_x": "cd"} in b'}
    assert not_comparable({"a": table, "b": table}, {"a": settings, "b": dict(settings)}) == {}
