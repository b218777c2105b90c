"""LiRA, memorization, RMIA and EncoderMI on values whose answer is known."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm

from mlm_mia.stats import evaluation
from mlm_mia.training import shadow
from mlm_mia.attacks import encodermi, lira, rmia
from mlm_mia.stats.metrics import auc


def test_shadow_halves_are_complementary_pairs_independent_of_their_number():
    patients = [f"p{i}" for i in range(11)]
    halves = shadow.patient_halves(patients, 4, seed=5)
    assert halves[0] | halves[1] == set(patients) and not halves[0] & halves[1]
    assert halves[2] | halves[3] == set(patients) and halves[0] != halves[2]
    assert all(sum(p in h for h in halves) == 2 for p in patients)  # IN for exactly half
    assert shadow.patient_halves(patients[::-1], 2, seed=5) == halves[:2]  # order-free, prefix-stable
    assert shadow.patient_halves(patients, 2, seed=6) != halves[:2]


def simulated(n: int = 400, k: int = 8, gap: float = 0.5, seed: int = 0):
    """Per-sentence difficulty d; a model that saw the sentence scores it d + memorization
    (gap x a per-sentence factor) + noise. Half the sentences are the target's members."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(-3, 1, n)
    memorized = gap * rng.exponential(1, n)
    inside = np.zeros((n, k), bool)
    inside[:, 0::2] = rng.random((n, 1)) < 0.5
    inside[:, 1::2] = ~inside[:, 0::2]
    noise = lambda *shape: rng.normal(0, 0.1, shape)  # noqa: E731
    shadows = difficulty[:, None] + memorized[:, None] * inside + noise(n, k)
    member = np.arange(n) < n // 2
    target = difficulty + memorized * member + noise(n)
    return target, shadows, inside, member, memorized


def test_memorization_is_the_in_minus_out_mean():
    target, shadows, inside, member, memorized = simulated()
    measured = lira.memorization(shadows, inside)
    expected = [shadows[i, inside[i]].mean() - shadows[i, ~inside[i]].mean() for i in range(len(target))]
    np.testing.assert_allclose(measured, expected)
    assert np.corrcoef(measured, memorized)[0, 1] > 0.95


def test_lira_online_by_hand_with_a_global_variance():
    target, shadows, inside, member, _ = simulated(k=4)
    mu_in = np.array([shadows[i, inside[i]].mean() for i in range(len(target))])
    mu_out = np.array([shadows[i, ~inside[i]].mean() for i in range(len(target))])
    sd = shadows.std()  # one variance for both sides
    expected = norm.logpdf(target, mu_in, sd) - norm.logpdf(target, mu_out, sd)
    np.testing.assert_allclose(lira.online(target, shadows, inside), expected)
    np.testing.assert_allclose(lira.offline(target, shadows, inside), (target - mu_out) / sd)


def test_lira_separates_members_and_beats_the_loss_attack():
    target, shadows, inside, member, _ = simulated(k=16)  # per-sentence variances from 16 on
    loss_auc = auc(member, target)
    assert auc(member, lira.online(target, shadows, inside)) > max(0.9, loss_auc + 0.25)
    assert auc(member, lira.offline(target, shadows, inside)) > loss_auc + 0.2


def test_sentences_no_shadow_model_saw_get_finite_scores_with_many_models():
    target, shadows, inside, member, _ = simulated(k=16)
    inside[:20] = False  # like the externals: OUT of every shadow model
    for attack in (lira.online, lira.offline):
        assert np.isfinite(attack(target, shadows, inside)).all()


def test_one_shadow_model_falls_back_on_the_average_gap():
    target, shadows, inside, member, _ = simulated(k=2)
    one = lira.offline(target, shadows[:, :1], inside[:, :1])
    assert np.isfinite(one).all() and auc(member, one) > 0.75
    with pytest.raises(ValueError, match="one side"):
        lira.memorization(shadows[:, :1], np.ones((len(target), 1), bool))


def test_memorization_report_by_quartile_and_number_of_models():
    target, shadows, inside, member, _ = simulated(k=8)
    table = pd.DataFrame({"set": np.where(member, "members", "non_members"), "score_loss": target,
                          "target_lira_statistic": target})
    for i in range(8):
        table[f"shadow_{i}_score"], table[f"shadow_{i}_in"] = shadows[:, i], inside[:, i].astype(int)
    table["score_lira_online"] = lira.online(target, shadows, inside)
    table["score_lira_offline"] = lira.offline(target, shadows, inside)
    table["memorization"] = lira.memorization(shadows, inside)
    report = evaluation.memorization_report(table)
    assert list(report["by_shadow_models"]) == ["1", "2", "4", "8"]
    assert set(report["by_quartile"]) == {"loss", "lira_online", "lira_offline"}
    quartiles = report["by_quartile"]["lira_online"]
    assert sum(q["n_pos"] + q["n_neg"] for q in quartiles.values()) == len(table)
    # the most memorized sentences are the easiest to attack, with any number of models
    assert quartiles["q4"]["auc"] > quartiles["q1"]["auc"]
    for k in ("2", "8"):
        online = report["by_shadow_models"][k]["lira_online"]
        assert online["most"]["auc"] > online["least"]["auc"]


def test_rmia_sort_based_equals_the_pairwise_matrix():
    rng = np.random.default_rng(1)
    x, population = rng.normal(size=300), rng.normal(size=200)
    population[:10] = x[:10]  # ties count as dominated (>= gamma)
    for gamma in (1.0, 2.0):
        brute = (np.exp(x[:, None] - population[None, :]) >= gamma - 1e-12).mean(1)
        np.testing.assert_allclose(rmia.rmia_scores(x, population, gamma), brute)


def test_rmia_ratio_averages_likelihoods_not_log_likelihoods():
    target = np.array([-1.0])
    others = np.log(np.array([[0.2, 0.6]]))
    assert rmia.log_ratio(target, others)[0] == pytest.approx(-1.0 - np.log(0.4))
    # offline: Pr(x) = ((1 + a) 0.4 + (1 - a)) / 2
    assert rmia.log_ratio(target, others, 0.3)[0] == pytest.approx(-1.0 - np.log((1.3 * 0.4 + 0.7) / 2))


def test_encodermi_views_are_seeded_and_never_mask_special_tokens():
    ids = [0, 11, 12, 13, 14, 15, 16, 17, 2]
    maskable = np.array([False] + [True] * 7 + [False])
    first = encodermi.masked_views(ids, maskable, 4, 50, np.random.default_rng(3))
    again = encodermi.masked_views(ids, maskable, 4, 50, np.random.default_rng(3))
    assert (first == again).all() and (first[:, [0, -1]] == [0, 2]).all()
    assert 0.1 < (first[:, 1:-1] == 4).mean() < 0.2


def test_encodermi_features_do_not_depend_on_the_batch(random_roberta):
    from mlm_mia.engine.models import load_masked_lm
    model, tokenizer = load_masked_lm(random_roberta, "--target", torch.device("cpu"), torch.float32)
    texts = ["Pt resting comfortably in bed today.", "Labs notable for a creatinine of 1.3.",
             "Home medications include aspirin 81 mg daily."]
    together = encodermi.similarity_features(model, tokenizer, texts, 64, seed=0)
    alone = encodermi.similarity_features(model, tokenizer, texts[1:2], 64, seed=0, batch_tokens=1)
    assert together.shape == (3, 45) and (np.diff(together, axis=1) >= 0).all()
    np.testing.assert_allclose(alone[0], together[1], rtol=1e-5)
    assert (together <= 1 + 1e-6).all()


def test_encodermi_vector_classifier_learns_from_the_shadow():
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.5
    features = np.sort(rng.normal(0.8, 0.05, (400, 45)) + 0.05 * labels[:, None], axis=1)
    scores = encodermi.vector_classifier_scores(features[:200], labels[:200], features[200:])
    assert auc(labels[200:], scores) > 0.9


def test_encodermi_separates_what_a_tiny_model_memorised(corpus_sentences, tiny_tokenizer):
    """EncoderMI needs strong memorisation (on the demo's target it sits at AUC 0.5): a tiny
    target and a tiny shadow each learn 100 sentences by heart (200 epochs)."""
    import dataclasses
    import tempfile

    from mlm_mia.training import recipe
    from mlm_mia.training.train import TinyShape, new_model, train_mlm
    texts = list(dict.fromkeys(s for _, s in corpus_sentences["train"]))[:400]
    members, non_members, shadow_in, shadow_out = (texts[i:i + 100] for i in range(0, 400, 100))
    shape = TinyShape(hidden=64, layers=2, heads=2, intermediate=128, max_positions=130)

    def trained(sentences, seed):
        long = dataclasses.replace(recipe.load(recipe.DEMO_RECIPE), epochs=200)
        with tempfile.TemporaryDirectory() as work:
            return train_mlm(new_model(tiny_tokenizer, shape, seed), tiny_tokenizer, sentences, long,
                             Path(work), seed)

    target, shadow_model = trained(members, 1), trained(shadow_in, 2)
    target_features = encodermi.similarity_features(target, tiny_tokenizer, members + non_members, 128)
    labels = np.r_[np.ones(100), np.zeros(100)]
    assert auc(labels, target_features.mean(1)) > 0.58  # encodermi_t
    shadow_features = encodermi.similarity_features(shadow_model, tiny_tokenizer, shadow_in + shadow_out, 128)
    scores = encodermi.vector_classifier_scores(shadow_features, labels, target_features)
    assert auc(labels, scores) > 0.58  # encodermi_v


def test_token_logit_mean_is_the_mean_log_odds_of_the_token_probabilities():
    logprobs = np.log(np.array([0.5, 0.9, 0.2]))
    expected = np.mean([0.0, np.log(9), np.log(0.25)])
    assert lira.token_logit_mean(logprobs) == pytest.approx(expected)
    assert np.isfinite(lira.token_logit_mean(np.array([0.0])))  # a certain token: large, not infinite
    assert np.isnan(lira.token_logit_mean(np.array([])))


def test_shapiro_wilk_share_flags_skewed_statistics_and_the_logit_makes_them_normal():
    """Per sentence, 16 IN and 16 OUT shadow models each give a one-token sentence a
    probability p = sigmoid(normal): the log-probability (the PLL) of such p is far from
    normal when the model is confident, its logit is normal by construction."""
    rng = np.random.default_rng(0)
    n, k = 300, 32
    inside = np.zeros((n, k), bool)
    inside[:, ::2] = True
    logits = rng.normal(3.0, 1.5, (n, 1)) + 1.0 * inside + rng.normal(0, 1.2, (n, k))
    logprobs = -np.logaddexp(0, -logits)  # log sigmoid
    pll = lira.normality(logprobs, inside)
    logit = lira.normality(np.vectorize(lambda lp: lira.token_logit_mean(np.array([lp])))(logprobs), inside)
    assert pll["sentences"] == n and pll["rejected_in"] > 0.3 and pll["rejected_out"] > 0.3
    assert logit["rejected_in"] < 0.1 and logit["rejected_out"] < 0.1
    assert lira.normality(logprobs[:, :8], inside[:, :8]) is None  # 4 a side: too few to test
