"""The neighbourhood attack (ne): its score against MIMIR's definition, the neighbours, and a
whole run with them."""

import json
import logging
import os

import numpy as np
import pandas as pd
import pytest

from mlm_mia import attacks
from mlm_mia.attacks import neighbourhood
from mlm_mia.cli.common import run_main as cli_main
from mlm_mia.cli import score
from mlm_mia.study.run import run_study

TEXTS = ["Pt resting comfortably in bed today.", "Labs notable for a creatinine of 1.3.",
         "Home medications include aspirin 81 mg daily and metoprolol 25 mg twice daily."]


def _mimir_ne(own: list[float], neighbours: list[list[float]]) -> float:
    """MIMIR's ne of a text from its token log-probs and its neighbours': its loss (mean
    negative log-prob) minus the mean of its neighbours' losses; lower = member."""
    loss = -np.mean(own)
    return loss - np.mean([-np.mean(n) for n in neighbours])


def test_ne_is_mimirs_definition_with_the_sign_turned_on_random_inputs():
    rng = np.random.default_rng(5)
    n, k = 40, 4
    own = [rng.normal(-2, 1, rng.integers(3, 30)) for _ in range(n)]
    counts = rng.integers(1, k + 1, n)  # some sentences have fewer neighbours than k
    neighbours = [[rng.normal(-2, 1, rng.integers(3, 30)) for _ in range(c)] for c in counts]
    pll, n_tokens = np.full((n, k), np.nan), np.full((n, k), np.nan)
    for i, made in enumerate(neighbours):
        pll[i, :len(made)] = [m.sum() for m in made]
        n_tokens[i, :len(made)] = [m.size for m in made]
    table = pd.DataFrame({"set": "members", "id": [str(i) for i in range(n)], "patient_id": "p",
                          "target_pll": [o.sum() for o in own], "target_n_tokens": [o.size for o in own]})
    features = {neighbourhood.PLL: pll, neighbourhood.N_TOKENS: n_tokens}

    def ne(reduction: str) -> np.ndarray:
        inputs = attacks.Inputs(table, [""] * n, [], [], False, attacks.Settings(reduction=reduction),
                                features)
        return neighbourhood.ne(inputs)

    expected = [-_mimir_ne(o, m) for o, m in zip(own, neighbours)]
    np.testing.assert_allclose(ne("mean"), expected, rtol=1e-12)
    summed = [o.sum() - np.mean([m.sum() for m in made]) for o, made in zip(own, neighbours)]
    np.testing.assert_allclose(ne("sum"), summed, rtol=1e-12)
    # no neighbour at all: the sentence is its own neighbourhood
    assert neighbourhood.neighbourhood_score(np.array([-1.5]), np.full((1, 3), np.nan))[0] == 0.0


def test_neighbours_are_one_swap_from_the_sentence_and_reproducible(random_roberta):
    import torch

    from mlm_mia.engine.models import load_masked_lm
    from mlm_mia.engine.neighbours import make_neighbours
    model, tokenizer = load_masked_lm(random_roberta, "--reference", torch.device("cpu"), torch.float32)
    made = make_neighbours(model, tokenizer, TEXTS, 5, seed=1, max_length=64)
    assert made == make_neighbours(model, tokenizer, TEXTS, 5, seed=1, max_length=64)
    # a sentence's neighbours depend on neither its batch nor the token budget
    assert make_neighbours(model, tokenizer, TEXTS[2:], 5, seed=1, max_length=64, batch_tokens=1) == made[2:]
    assert make_neighbours(model, tokenizer, TEXTS, 5, seed=2, max_length=64) != made
    for text, neighbours in zip(TEXTS, made):
        assert len(neighbours) == 5 and len(set(neighbours)) == 5 and text not in neighbours
        for neighbour in neighbours:  # the rest of the text kept: one word of it changed
            prefix = len(os.path.commonprefix([text, neighbour]))
            suffix = len(os.path.commonprefix([text[prefix:][::-1], neighbour[prefix:][::-1]]))
            assert " " not in text[prefix:len(text) - suffix].strip()


@pytest.fixture(scope="module")
def tiny_data(corpus_sentences, tmp_path_factory):
    """Members and non-members of 3 patients x 3 sentences each."""
    data = tmp_path_factory.mktemp("neighbours") / "data"
    data.mkdir()
    for name, half in (("members", "train"), ("non_members", "heldout")):
        by_patient: dict[str, list[str]] = {}
        for patient, text in corpus_sentences[half]:
            if len(by_patient) < 3 or patient in by_patient:
                by_patient.setdefault(patient, [])
                if len(by_patient[patient]) < 3 and len(text) < 120:
                    by_patient[patient].append(text)
        rows = [{"id": f"{name}-{p}-{i}", "patient_id": p, "text": t}
                for p, texts in by_patient.items() for i, t in enumerate(texts)]
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def test_a_run_with_neighbours_scores_ne_as_defined(random_roberta, tiny_data, tmp_path, caplog):
    import torch

    from mlm_mia.engine.models import load_masked_lm
    from mlm_mia.engine.neighbours import FILE, FOLDER, make_neighbours
    from mlm_mia.engine.pll import PLLEngine
    out = tmp_path / "out"
    base = ["--target", str(random_roberta), "--data-dir", str(tiny_data), "--out-dir", str(out),
            "--cache-dir", str(tmp_path / "cache"), "--bootstrap", "0", "--no-plot", "--seed", "4"]
    with caplog.at_level(logging.INFO):
        run_study(score.parse_settings(base + ["--neighbours", "2", "--neighbour-model", str(random_roberta)]))
    assert "neighbours " in next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Seconds:"))
    table = pd.read_csv(out / "scores.csv")
    settings = json.loads((out / "settings.json").read_text())
    assert settings["neighbours"]["n"] == 2 and settings["neighbours"]["sentences_without"] == 0
    # the neighbours are kept in the data folder, never beside the results
    assert (tiny_data / FOLDER / FILE).is_file()
    # the score: the target's PLL per token of the sentence minus its neighbours' mean
    model, tokenizer = load_masked_lm(random_roberta, "--target", torch.device("cpu"), torch.float32)
    texts = [json.loads(line)["text"] for name in ("members", "non_members")
             for line in (tiny_data / f"{name}.jsonl").read_text().splitlines()]
    made = make_neighbours(model, tokenizer, texts, 2, seed=4, max_length=64)
    engine = PLLEngine(model, tokenizer, 64)
    expected = [np.mean(s.logprobs) - np.mean([np.mean(n.logprobs) for n in engine.score(m)])
                for s, m in zip(engine.score(texts), made)]
    np.testing.assert_allclose(table["score_ne"], expected, rtol=0, atol=1e-5)  # PLLs of about -6, fp32
    written = "".join(p.read_text(errors="ignore") for p in out.iterdir())
    assert not any(n in written for m in made for n in m)


def test_ne_is_left_out_without_neighbours_or_a_model_to_make_them():
    _, left_out = attacks.plan({"reference"})
    assert left_out["ne"].startswith("neighbours (--neighbours N; each costs one PLL")
    _, left_out = attacks.plan({"neighbours"})
    assert left_out["ne"] == ("a masked LM to make the neighbours (--neighbour-model MODEL_DIR) or a "
                              "reference model (--reference MODEL_DIR)")
    assert "ne" in [a.name for a in attacks.plan({"neighbours", "reference"})[0]]


def test_a_neighbour_model_without_neighbours_is_refused(random_roberta, tiny_data, tmp_path, capsys):
    assert cli_main(score.main, ["--target", str(random_roberta), "--data-dir", str(tiny_data),
                                 "--out-dir", str(tmp_path / "out"), "--neighbour-model",
                                 str(random_roberta)]) == 2
    assert "--neighbour-model makes the neighbours of --neighbours N" in capsys.readouterr().err
