import zlib

import numpy as np
import pandas as pd
import pytest

from mlm_mia import attacks
from mlm_mia.common import columns
from mlm_mia.attacks import Inputs, Settings, tokens
from mlm_mia.engine.pll import TokenScores


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
    assert tokens.min_k_mean(logprobs, 0.5) == -4.0  # int(2.5) = 2 tokens, as the references
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
    # z = [2, -2, 0 (certain position)]; int(0.9) = 0 -> at least one: -2; int(2.1) = 2 -> mean(-2, 0)
    assert tokens.min_k_pp_mean(logprobs, mean, std, 0.3) == -2.0
    assert tokens.min_k_pp_mean(logprobs, mean, std, 0.7) == -1.0


def test_plan_leaves_out_what_a_run_cannot_compute_and_says_why():
    runnable, left_out = attacks.plan({"distribution_stats"})
    assert [a.name for a in runnable] == ["loss", "min_k", "min_k_pp", "zlib", "encodermi_t", "masked_loss"]
    assert set(left_out) == {"ratio", "reference_only", "lira_online", "lira_offline", "rmia", "rmia_offline",
                             "encodermi_v", "ne"}
    assert "--reference" in left_out["ratio"] and "--population" in left_out["rmia"]
    runnable, left_out = attacks.plan({"shadows", "population"})
    assert "rmia" in [a.name for a in runnable]  # shadow models stand in for references


def test_masked_loss_equals_a_naive_masked_lm_pass_and_does_not_depend_on_the_batch(random_roberta):
    import torch

    from mlm_mia.attacks import masked_loss
    from mlm_mia.engine.models import load_masked_lm
    from mlm_mia.data.sentences import text_hash
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


def reference_min_k(values: np.ndarray, ratio: float) -> float:
    """MIMIR's and the Min-K%++ authors' definition: the mean of the int(len * ratio) lowest
    (an empty mean, undefined, below 1 / ratio tokens)."""
    k_length = int(len(values) * ratio)
    return float(np.mean(np.sort(values)[:k_length])) if k_length else float("nan")


def test_min_k_and_min_k_pp_equal_the_reference_definitions_at_every_length():
    rng = np.random.default_rng(0)
    for n in range(1, 81):
        vocabulary = rng.normal(0, 3, (n, 50))  # the model's logits at each masked position
        logprobs_all = vocabulary - np.log(np.exp(vocabulary).sum(1, keepdims=True))
        target = rng.integers(50, size=n)
        logprobs = logprobs_all[np.arange(n), target]
        # the Min-K%++ authors: mu = E_z[log p(z)], sigma^2 = E_z[log p(z)^2] - mu^2
        probs = np.exp(logprobs_all)
        mu = (probs * logprobs_all).sum(1)
        sigma = np.sqrt((probs * logprobs_all ** 2).sum(1) - mu ** 2)
        std = np.sqrt((probs * (logprobs_all - mu[:, None]) ** 2).sum(1))  # the engine's, centred
        for ratio in (0.1, 0.2, 0.5, 1.0):
            expected = reference_min_k(logprobs, ratio)
            expected_pp = reference_min_k((logprobs - mu) / sigma, ratio)
            if np.isnan(expected):  # the references take no token: the lowest one here
                expected, expected_pp = logprobs.min(), ((logprobs - mu) / sigma).min()
            assert tokens.min_k_mean(logprobs, ratio) == pytest.approx(expected, rel=1e-12)
            assert tokens.min_k_pp_mean(logprobs, mu, std, ratio) == pytest.approx(expected_pp, rel=1e-9)


def rmia_run(reduction: str, seed: int = 0, n: int = 300, n_refs: int = 2) -> Inputs:
    rng = np.random.default_rng(seed)
    n_tokens = rng.integers(3, 40, n)
    data = pd.DataFrame({"set": rng.choice(["members", "non_members", "population"], n),
                         "id": [f"s{i}" for i in range(n)], "patient_id": [str(i) for i in range(n)],
                         "target_pll": -n_tokens * rng.uniform(1, 4, n), "target_n_tokens": n_tokens})
    names = [f"reference_{j}" for j in range(n_refs)]
    for name in names:
        data[f"{name}_pll"] = data["target_pll"] * rng.uniform(0.8, 1.2, n)
        data[f"{name}_n_tokens"] = n_tokens
    return Inputs(data, [""] * n, names, [], True, Settings(reduction=reduction, rmia_offline_a=0.3))


def reference_rmia(inputs: Inputs, a: float, gamma: float = 1.0) -> np.ndarray:
    """ML Privacy Meter's offline RMIA on per-token likelihoods, with the n x m matrix."""
    table = inputs.table
    per_token = lambda m: np.exp(table[f"{m}_pll"] / table[f"{m}_n_tokens"]).to_numpy()  # noqa: E731
    p_out = np.mean([per_token(r) for r in inputs.references], axis=0)
    ratio = per_token("target") / (0.5 * ((1 + a) * p_out + (1 - a)))
    z = ratio[(table["set"] == "population").to_numpy()]
    return (ratio[:, None] / z[None, :] >= gamma).mean(1)


def test_rmia_uses_per_token_likelihoods_under_both_reductions():
    rmia_attack = [a for a in attacks.REGISTRY if a.name == "rmia"]
    by_mean = attacks.add_attacks(rmia_run("mean"), rmia_attack)["score_rmia"].to_numpy()
    by_sum = attacks.add_attacks(rmia_run("sum"), rmia_attack)["score_rmia"].to_numpy()
    np.testing.assert_array_equal(by_mean, by_sum)
    np.testing.assert_allclose(by_mean, reference_rmia(rmia_run("mean"), 0.3), atol=1e-12)
    # summed PLLs would have made Pr_ref(x) vanish and the score a copy of the loss
    summed_loss = rmia_run("sum").table["target_pll"].to_numpy()
    assert abs(np.corrcoef(by_sum, summed_loss)[0, 1]) < 0.9


def test_rmia_offline_a_is_tuned_on_a_shadow_model_as_the_reference_implementation_does():
    from mlm_mia.attacks import rmia
    from mlm_mia.stats.metrics import auc
    run = rmia_run("mean", n_refs=2)
    rng = np.random.default_rng(5)
    seen = rng.random(len(run.table)) < 0.5
    # shadow 0 knows its members: they are likelier under it than under the references
    shadow = run.model_score("reference_0", "mean") + 0.3 * seen + rng.normal(0, 0.05, len(seen))
    run.table["shadow_0_score"], run.table["shadow_0_in"] = shadow, seen.astype(int)
    run.model_values = {("shadow_0", "pll_per_token"): shadow}
    a, aucs = rmia.tune_offline_a(run)
    tested = run.in_set("members", "non_members")
    population = run.in_set("population") & ~seen
    expected = {}
    for grid_a in [i / 10 for i in range(11)]:
        pseudo = Inputs(run.table.assign(target_pll=shadow * run.table["target_n_tokens"]), run.texts,
                        run.references, [], True, Settings(rmia_offline_a=grid_a))
        pseudo.table.loc[~population & run.in_set("population"), "set"] = "excluded"
        scores = reference_rmia(pseudo, grid_a)
        expected[str(grid_a)] = auc(seen[tested], scores[tested])
    assert aucs == pytest.approx(expected) and aucs[str(a)] == max(expected.values())
