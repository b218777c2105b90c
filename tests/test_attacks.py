import numpy as np
import pandas as pd
import pytest

from mlm_mia import study


def table() -> pd.DataFrame:
    return pd.DataFrame({"set": ["members", "non_members"], "id": ["m", "n"], "patient_id": ["1", "2"],
                         "target_pll": [-10.0, -30.0], "target_n_tokens": [5, 10],
                         "reference_pll": [-20.0, -20.0], "reference_n_tokens": [5, 10]})


def test_loss_ratio_and_blind_baseline_by_hand():
    out = study.attack_columns(table(), ["reference"], "mean")
    assert out["score_loss"].tolist() == [-2.0, -3.0]
    assert out["score_reference_only"].tolist() == [-4.0, -2.0]
    assert out["score_ratio"].tolist() == [2.0, -1.0]  # paired row by row
    summed = study.attack_columns(table(), ["reference"], "sum")
    assert summed["score_ratio"].tolist() == [10.0, -10.0]


def test_min_k_by_hand():
    logprobs = np.array([-1.0, -5.0, -2.0, -3.0, -0.5])
    assert study.min_k_mean(logprobs, 0.2) == -5.0  # one token: the least likely
    assert study.min_k_mean(logprobs, 0.5) == pytest.approx(-10 / 3)  # ceil(2.5) = 3 tokens
    assert study.min_k_mean(logprobs, 0.01) == -5.0  # at least one token
    assert np.isnan(study.min_k_mean(np.array([]), 0.2))


def test_zlib_divides_the_mean_pll_by_the_compressed_length():
    import zlib
    texts = ["aaaa aaaa aaaa aaaa aaaa", "a quick brown fox jumps over"]
    out = study.reference_free_columns(table(), [-3.0, -4.0], None, texts)
    assert "score_min_k_pp" not in out
    assert out["score_min_k"].tolist() == [-3.0, -4.0]
    expected = [-2.0 / len(zlib.compress(texts[0].encode())), -3.0 / len(zlib.compress(texts[1].encode()))]
    assert out["score_zlib"].tolist() == pytest.approx(expected)


def test_min_k_pp_standardises_by_the_distribution_at_each_position():
    logprobs = np.array([-1.0, -4.0, -2.0])
    mean = np.array([-2.0, -2.0, -2.0])
    std = np.array([0.5, 1.0, 0.0])
    # z = [2, -2, 0 (certain position)]; lowest 1/3 -> -2; lowest 2/3 -> mean(-2, 0)
    assert study.min_k_pp_mean(logprobs, mean, std, 0.3) == -2.0
    assert study.min_k_pp_mean(logprobs, mean, std, 0.6) == -1.0
