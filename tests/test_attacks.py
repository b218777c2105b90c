import zlib

import numpy as np
import pandas as pd
import pytest

from mlm_mia import attacks, columns
from mlm_mia.attacks import Inputs, Settings, tokens
from mlm_mia.pll import TokenScores


def table() -> pd.DataFrame:
    return pd.DataFrame({"set": ["members", "non_members"], "id": ["m", "n"], "patient_id": ["1", "2"],
                         "target_pll": [-10.0, -30.0], "target_n_tokens": [5, 10],
                         "reference_pll": [-20.0, -20.0], "reference_n_tokens": [5, 10]})


def inputs(reduction: str = "mean", texts=("a sentence", "another one"), tokens_=None) -> Inputs:
    tokens_ = tokens_ or [TokenScores(np.array([-1.0, -9.0]), False, np.zeros(2), np.ones(2))] * 2
    return Inputs(table(), list(texts), ["reference"], tokens_, True, Settings(reduction=reduction))


def scores(attack: str, **kwargs) -> dict[str, list[float]]:
    chosen = [a for a in attacks.REGISTRY if a.name == attack]
    table_ = attacks.add_attacks(inputs(**kwargs), chosen)
    return {a: table_[columns.score(a)].tolist() for a in columns.attack_names(table_)}


def test_loss_ratio_and_blind_baseline_by_hand():
    assert scores("loss") == {"loss": [-2.0, -3.0]}
    assert scores("reference_only") == {"reference_only": [-4.0, -2.0]}
    assert scores("ratio") == {"ratio": [2.0, -1.0]}  # paired row by row
    assert scores("ratio", reduction="sum") == {"ratio": [10.0, -10.0]}


def test_several_references_each_get_their_columns():
    data = table().assign(reference_b_pll=[-5.0, -5.0], reference_b_n_tokens=[5, 10])
    data = data.rename(columns={"reference_pll": "reference_a_pll", "reference_n_tokens": "reference_a_n_tokens"})
    run = Inputs(data, ["x", "y"], ["reference_a", "reference_b"], [], True)
    out = attacks.add_attacks(run, [a for a in attacks.REGISTRY if a.name in ("ratio", "reference_only")])
    assert out["score_ratio_b"].tolist() == [-1.0, -2.5]
    assert out["score_reference_only_a"].tolist() == [-4.0, -2.0]
    assert attacks.is_blind("reference_only_a") and not attacks.is_blind("ratio_a")


def test_min_k_by_hand():
    logprobs = np.array([-1.0, -5.0, -2.0, -3.0, -0.5])
    assert tokens.min_k_mean(logprobs, 0.2) == -5.0  # one token: the least likely
    assert tokens.min_k_mean(logprobs, 0.5) == pytest.approx(-10 / 3)  # ceil(2.5) = 3 tokens
    assert tokens.min_k_mean(logprobs, 0.01) == -5.0  # at least one token
    assert np.isnan(tokens.min_k_mean(np.array([]), 0.2))
    assert scores("min_k") == {"min_k": [-9.0, -9.0]}


def test_zlib_divides_the_mean_pll_by_the_compressed_length():
    texts = ["aaaa aaaa aaaa aaaa aaaa", "a quick brown fox jumps over"]
    expected = [-2.0 / len(zlib.compress(texts[0].encode())), -3.0 / len(zlib.compress(texts[1].encode()))]
    assert scores("zlib", texts=texts)["zlib"] == pytest.approx(expected)
    # whatever the reduction: the PLL per token
    assert scores("zlib", texts=texts, reduction="sum")["zlib"] == pytest.approx(expected)


def test_min_k_pp_standardises_by_the_distribution_at_each_position():
    logprobs = np.array([-1.0, -4.0, -2.0])
    mean = np.array([-2.0, -2.0, -2.0])
    std = np.array([0.5, 1.0, 0.0])
    # z = [2, -2, 0 (certain position)]; lowest 1/3 -> -2; lowest 2/3 -> mean(-2, 0)
    assert tokens.min_k_pp_mean(logprobs, mean, std, 0.3) == -2.0
    assert tokens.min_k_pp_mean(logprobs, mean, std, 0.6) == -1.0


def test_plan_leaves_out_what_a_run_cannot_compute_and_says_why():
    runnable, left_out = attacks.plan({"distribution_stats"})
    assert [a.name for a in runnable] == ["loss", "min_k", "min_k_pp", "zlib", "encodermi_t", "masked_loss"]
    assert set(left_out) == {"ratio", "reference_only", "lira_online", "lira_offline", "rmia", "encodermi_v"}
    assert "--reference" in left_out["ratio"] and "--population" in left_out["rmia"]
    runnable, left_out = attacks.plan({"shadows", "population"})
    assert "rmia" in [a.name for a in runnable]  # shadow models stand in for references


def test_masked_loss_equals_a_naive_masked_lm_pass_and_does_not_depend_on_the_batch(random_roberta):
    import torch

    from mlm_mia.attacks import masked_loss
    from mlm_mia.models import load_masked_lm
    from mlm_mia.sentences import text_hash
    model, tokenizer = load_masked_lm(random_roberta, "--target", torch.device("cpu"), torch.float32)
    texts = ["Pt resting comfortably in bed today.", "Labs notable for a creatinine of 1.3.",
             "Home medications include aspirin 81 mg daily and metoprolol 25 mg twice daily."]
    together = masked_loss.masked_logprobs(model, tokenizer, texts, 64, seed=3, draws=3)
    alone = masked_loss.masked_logprobs(model, tokenizer, texts[2:], 64, seed=3, batch_tokens=1, draws=3)
    np.testing.assert_allclose(alone[0], together[2], rtol=1e-6)
    for text, values in zip(texts, together):
        ids = tokenizer(text)["input_ids"]
        rng = np.random.default_rng([3, text_hash(text)])
        for draw in range(3):
            positions = 1 + masked_loss.masked_positions(len(ids) - 2, rng)  # after <s>
            assert len(positions) == max(1, round(0.15 * (len(ids) - 2)))
            copy = torch.tensor([ids])
            copy[0, positions] = tokenizer.mask_token_id
            with torch.no_grad():
                logprobs = torch.log_softmax(model(input_ids=copy).logits[0].double(), -1)
            expected = np.mean([logprobs[p, ids[p]].item() for p in positions])
            assert values[draw] == pytest.approx(expected, rel=1e-5)
    # the attack: minus the loss, averaged over the draws
    run = Inputs(table(), texts[:2], [], [], True, features={("target", "masked_loss"): together[:2]})
    assert attacks.add_attacks(run, [a for a in attacks.REGISTRY if a.name == "masked_loss"])[
        "score_masked_loss"].tolist() == pytest.approx(together[:2].mean(1))
