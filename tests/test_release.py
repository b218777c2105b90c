"""What a release decision needs: per-patient tests with valid p-values, the model-free
validity check, targets compared with paired intervals, and a report with no note text."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlm_mia.cli import common as cli
from mlm_mia.cli import metrics as metrics_cli
from mlm_mia.stats import patient_tests
from mlm_mia.cli import prepare
from mlm_mia.cli import score


def simulated_table(seed: int = 0, member_shift: float = 1.5) -> pd.DataFrame:
    """Sentence scores of three attacks: each patient has its own difficulty (so its
    sentences are correlated), the members are shifted up; ``ratio`` carries little of the
    difficulty (a reference calibrates it away), ``zlib`` only noise. Externals come from
    another hospital (lower scores)."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, n_patients, shift in (("population", 200, 0.0), ("non_members", 150, 0.0),
                                    ("members", 150, member_shift), ("externals", 120, -2.0)):
        for p in range(n_patients):
            n = int(rng.integers(4, 16))
            difficulty = rng.normal(0, 1.0)
            noise = rng.normal(0, 1.0, (n, 3)) + rng.normal(0, 0.5, (n, 1))
            for i in range(n):
                rows.append({"set": name, "id": f"{name}-{p}-{i}", "patient_id": f"{name[:3]}{p}",
                             "score_loss": difficulty + shift + noise[i, 0],
                             "score_ratio": 0.3 * difficulty + shift + noise[i, 1],
                             "score_zlib": noise[i, 2]})
    return pd.DataFrame(rows)


def test_per_patient_p_values_are_calibrated_for_non_member_patients_and_find_members():
    patients, summary = patient_tests.membership_tests(simulated_table())
    assert summary["calibration"]["p_value"] > 0.01, summary["calibration"]
    assert summary["non_members_flagged"] <= 0.05 and summary["externals_flagged"] <= 0.05
    assert summary["members_found"] > 0.2
    assert set(patients.columns) == {"patient_id", "set", "n_sentences", "statistic", "p_value", "q_value"}
    assert len(patients) == 150 + 150 + 120  # every tested patient once


def test_treating_one_patients_sentences_as_independent_would_flag_non_members():
    """The naive test the per-patient null replaces: sentence scores pooled as independent
    draws. Its p-values for non-member patients are far too small."""
    from scipy.stats import norm
    table = simulated_table()
    null = table.loc[table["set"] == "population", "score_loss"]
    tested = table[table["set"] == "non_members"].groupby("patient_id")["score_loss"].agg(["mean", "size"])
    z = (tested["mean"] - null.mean()) / (null.std() / np.sqrt(tested["size"]))
    naive_p = norm.sf(z)
    assert (naive_p < 0.05).mean() > 0.15  # against the nominal 5%


def test_the_null_model_splits_the_variance_and_without_repeats_keeps_it_all_between():
    mean, var, n = np.array([0.0, 2.0, 4.0]), np.array([1.0, 3.0, 0.0]), np.array([2.0, 4.0, 1.0])
    centre, between, within = patient_tests.null_model(patient_tests._contributions(mean, var, n).sum(0))
    # within: pooled over the patients with several sentences, (1*1 + 3*3) / (1 + 3) = 2.5;
    # between: the variance of the means, 4, less the within share, 2.5 * mean(1/2, 1/4, 1)
    assert (centre, within) == (2.0, 2.5) and between == pytest.approx(4 - 2.5 * (1 / 2 + 1 / 4 + 1) / 3)
    ones = patient_tests._contributions(mean, np.zeros(3), np.ones(3)).sum(0)
    assert patient_tests.null_model(ones) == (2.0, 4.0, 0.0)


def test_patient_statistics_are_pandas_group_means_and_variances():
    table = simulated_table()
    group = table.groupby(["set", "patient_id"], sort=True)
    codes, n = group.ngroup().to_numpy(), group.size().to_numpy(float)
    mean, var = patient_tests._group_moments(codes, n, table["score_loss"].to_numpy())
    np.testing.assert_allclose(mean, group["score_loss"].mean().to_numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(var, group["score_loss"].var(ddof=1).fillna(0.0).to_numpy(), rtol=1e-12)


def test_benjamini_hochberg_equals_scipys():
    from scipy.stats import false_discovery_control
    p = np.random.default_rng(0).random(300) ** 3
    np.testing.assert_allclose(patient_tests.benjamini_hochberg(p), false_discovery_control(p), rtol=1e-12)


# --- the canary audit -------------------------------------------------------------------

def test_epsilon_bound_against_the_binomial_tail():
    from scipy.stats import binom
    from mlm_mia.stats import audit
    assert audit.epsilon_lower_bound(100, 20, 0) == 0.0  # no right guess proves nothing
    assert audit.epsilon_lower_bound(100, 20, 10) == 0.0  # chance level neither
    # 18 of 20 right: the bound is where P[Binomial(20, e^eps / (1 + e^eps)) >= 18] = 0.05
    bound = audit.epsilon_lower_bound(100, 20, 18)
    q = np.exp(bound) / (1 + np.exp(bound))
    assert binom.sf(17, 20, q) == pytest.approx(0.05, rel=1e-6)
    assert 0.9 < bound < 1.5
    bounds = [audit.epsilon_lower_bound(1000, 100, v) for v in range(50, 101, 5)]
    assert bounds == sorted(bounds) and bounds[0] == 0.0  # never decreases with more right
    # delta > 0 can only lower the bound
    assert audit.epsilon_lower_bound(1000, 100, 90, delta=1e-5) <= audit.epsilon_lower_bound(1000, 100, 90)
    # the delta term as Steinke et al. define it: P[tail] + 2 m delta max_i P[v - i <= B < v] / i
    m, r, v, eps, delta = 200, 40, 33, 1.0, 1e-4
    q = np.exp(eps) / (1 + np.exp(eps))
    alpha = max(sum(binom.pmf(v - j, r, q) for j in range(1, i + 1)) / i for i in range(1, v + 1))
    assert audit.p_value(m, r, v, eps, delta) == pytest.approx(binom.sf(v - 1, r, q) + 2 * m * delta * alpha)


def test_one_run_bound_uses_a_fixed_grid_paid_for_by_a_union_bound():
    from mlm_mia.stats import audit
    rng = np.random.default_rng(0)
    included = rng.random(400) < 0.5
    perfect = audit.one_run_bound(included + rng.random(400) * 0.1, included)
    assert perfect["epsilon"] > 1 and perfect["correct"] == perfect["guesses"]
    assert len(perfect["grid"]) == 4  # beta / 4 for each of the 4 pairs
    assert perfect["epsilon"] < audit.epsilon_lower_bound(400, perfect["guesses"], perfect["correct"])
    assert audit.one_run_bound(rng.random(400), included)["epsilon"] < 0.5  # a blind attack


def test_the_ceiling_is_what_a_perfect_attack_proves_and_no_attack_passes_it():
    from mlm_mia.stats import audit
    # 8 of 16 in: the grid's k = 8 guesses each way all right, 16 of 16, at beta = 0.05 / 3
    # (grid sizes 1, 3, 8): the epsilon where P[Binomial(16, q) = 16] = q^16 = beta
    q = (0.05 / 3) ** (1 / 16)
    assert audit.bound_ceiling(np.arange(16) % 2 == 0) == pytest.approx(np.log(q / (1 - q)), rel=1e-6)
    rng = np.random.default_rng(1)
    for m in (16, 64, 400):
        included = rng.random(m) < 0.5
        ceiling = audit.bound_ceiling(included)
        for _ in range(20):
            assert audit.one_run_bound(included + rng.normal(0, 0.7, m), included)["epsilon"] <= ceiling
    # with 16 canaries, even a perfect attack proves little; with 400, much more
    assert audit.bound_ceiling(np.arange(16) % 2 == 0) < 1.5 < audit.bound_ceiling(np.arange(400) % 2 == 0)


def test_canaries_are_reproducible_under_any_hash_seed_and_apart_from_the_sets(corpus, tmp_path):
    import os
    import subprocess
    import sys
    ROOT = Path(__file__).resolve().parents[1]
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / "out"
        result = subprocess.run([sys.executable, str(ROOT / "prepare_data_MIA.py"), "--train-notes",
                                 str(corpus["train"]), "--heldout-notes", str(corpus["heldout"]),
                                 "--n-patients", "10", "--n-sentences", "40", "--canaries", "40",
                                 "--seed", "3", "--out-dir", str(out)],
                                capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": hash_seed})
        assert result.returncode == 0, result.stderr
        outputs.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert outputs[0] == outputs[1]
    planted = [json.loads(line) for line in (tmp_path / "out" / "canaries.jsonl").open()]
    assert len({c["text"] for c in planted}) == len({c["secret"] for c in planted}) == 40
    assert sorted(collections.Counter(c["repeats"] for c in planted).values()) == [10, 10, 10, 10]
    assert 10 < sum(c["included"] for c in planted) < 30
    sets_text = (tmp_path / "out" / "members.jsonl").read_text() + (tmp_path / "out" / "non_members.jsonl").read_text()
    assert not any(c["secret"] in sets_text for c in planted)
    # the included canaries as NOTEEVENTS notes, each as often as its repeats
    from mlm_mia.data import csv_notes
    notes = list(csv_notes.read_notes(tmp_path / "out" / "canary_notes.csv.gz"))
    assert collections.Counter(n.text for n in notes) == {c["text"]: c["repeats"] for c in planted if c["included"]}


@pytest.mark.parametrize("args, message", [
    (["--canaries", "4", "--canary-repeats", "1,0"], "--canary-repeats '1,0': give distinct positive"),
    (["--canaries", "4", "--canary-repeats", "a,b"], "--canary-repeats 'a,b'"),
    (["--canaries", "6", "--canary-digits", "1"], "--canaries 6: more canaries than half the secret space"),
])
def test_bad_canary_arguments_are_one_clear_error(corpus, tmp_path, args, message, capsys):
    code = cli.run_main(prepare.main, ["--train-notes", str(corpus["train"]), "--heldout-notes", str(corpus["heldout"]),
                                       "--n-patients", "10", "--n-sentences", "40", *args, "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert list(tmp_path.iterdir()) == []


# --- one run's outputs, and runs compared ----------------------------------------------

@pytest.fixture(scope="module")
def audited(corpus, random_roberta, tmp_path_factory) -> dict:
    """Small sets with a population and 8 canaries, scored under an untrained tiny model."""
    root = tmp_path_factory.mktemp("audited")
    data = root / "data"
    assert prepare.main(["--train-notes", str(corpus["train"]), "--heldout-notes", str(corpus["heldout"]),
                         "--n2c2", str(corpus["n2c2"]), "--n-patients", "10", "--n-sentences", "40",
                         "--population", "80", "--population-patients", "25", "--canaries", "8",
                         "--canary-repeats", "1,4", "--out-dir", str(data)]) == 0
    out = root / "results"
    args = ["--target", str(random_roberta), "--reference", str(random_roberta), "--data-dir", str(data),
            "--no-cache", "--bootstrap", "50", "--exposure-alternatives", "7"]
    assert score.main(args + ["--out-dir", str(out)]) == 0
    return {"root": root, "data": data, "out": out, "args": args}


def set_texts(data: Path) -> list[str]:
    return [json.loads(line)["text"] for f in sorted(data.glob("*.jsonl")) for line in f.open()]


def test_no_output_holds_a_sentence_a_canary_or_a_secret(audited):
    outputs = sorted(p for p in audited["out"].iterdir() if p.is_file())
    assert {p.name for p in outputs} == {"scores.csv", "metrics.json", "settings.json", "patients.csv",
                                         "roc.png", "report.html"}
    secrets = [json.loads(line)["secret"] for line in (audited["data"] / "canaries.jsonl").open()]
    for path in outputs:
        content = path.read_bytes()
        for text in set_texts(audited["data"]) + secrets:
            assert text.encode() not in content, (path.name, text)
    html = (audited["out"] / "report.html").read_text()
    markup = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # the figures' bytes aside
    assert "<script" not in markup and "http" not in markup.replace("http-equiv", "")  # nothing fetched
    assert html.index("1. Validity") < html.index("2. Sentence and patient level") < html.index("Planted canaries")
    results = json.loads((audited["out"] / "metrics.json").read_text())
    assert results["canaries"]["canaries"] == 8 and set(results["canaries"]["by_attack"]["loss"]) == {"all", "1", "4"}
    fdp = results["canaries"]["by_attack"]["loss"]["all"]["fdp"]  # beside Steinke et al.'s, its assumption stated
    assert fdp["epsilon"] is None and fdp["mu"] >= 0 and "Gaussian DP" in results["canaries"]["fdp_assumption"]
    assert "Mahloujifar" in html and "Gaussian DP" in html
    assert {"validity", "patient_tests", "members_vs_non_members"} <= set(results)


def test_the_most_exposed_sentences_only_on_explicit_request(audited, tmp_path):
    assert score.main(audited["args"] + ["--out-dir", str(tmp_path), "--show-exposed", "3"]) == 0
    html = (tmp_path / "report.html").read_text()
    members = [json.loads(line)["text"] for line in (audited["data"] / "members.jsonl").open()]
    import html as html_module
    assert sum(html_module.escape(text) in html for text in members) == 3
    assert "this section holds text of the notes" in html
    assert not any(text.encode() in (tmp_path / "scores.csv").read_bytes() for text in members)


def test_metrics_script_recomputes_everything_but_the_models(audited, tmp_path):
    assert metrics_cli.main([str(audited["out"] / "scores.csv"), "--bootstrap", "50", "--json",
                             str(tmp_path / "m.json"), "--patients", str(tmp_path / "p.csv"),
                             "--html", str(tmp_path / "r.html")]) == 0
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads((audited["out"] / "metrics.json").read_text())
    assert (tmp_path / "p.csv").read_bytes() == (audited["out"] / "patients.csv").read_bytes()
    assert "Membership inference report" in (tmp_path / "r.html").read_text()


def test_targets_compared_on_the_same_resampled_patients(audited, tiny_tokenizer, tmp_path, capsys):
    from mlm_mia.training.train import TinyShape, new_model
    other = tmp_path / "other_model"
    new_model(tiny_tokenizer, TinyShape(hidden=32, layers=2, heads=2, intermediate=64, max_positions=66),
              seed=5).save_pretrained(other)
    tiny_tokenizer.save_pretrained(other)
    args = [a if a != audited["args"][1] else str(other) for a in audited["args"]]
    assert score.main(args + ["--out-dir", str(tmp_path / "b")]) == 0
    first, second = str(audited["out"] / "scores.csv"), str(tmp_path / "b" / "scores.csv")
    assert metrics_cli.main([first, second, "--names", "a,b", "--bootstrap", "50", "--json",
                             str(tmp_path / "c.json"), "--html", str(tmp_path / "c.html")]) == 0
    comparison = json.loads((tmp_path / "c.json").read_text())
    loss = comparison["comparisons"]["members_vs_non_members"]["loss"]
    d = loss["differences"]["b"]
    assert d["auc"] == pytest.approx(loss["runs"]["b"]["auc"] - loss["runs"]["a"]["auc"])
    assert d["auc_ci"][0] <= d["auc"] <= d["auc_ci"][1]
    assert "Targets compared on the same sets" in (tmp_path / "c.html").read_text()
    # a run against itself: every paired difference is exactly 0
    assert metrics_cli.main([first, first, "--names", "a,a2", "--bootstrap", "30", "--json", str(tmp_path / "s.json")]) == 0
    same = json.loads((tmp_path / "s.json").read_text())["comparisons"]["members_vs_non_members"]["loss"]
    assert same["differences"]["a2"] == {"auc": 0.0, "tpr": 0.0, "auc_ci": [0.0, 0.0], "tpr_ci": [0.0, 0.0]}
    # runs on other sets are refused
    other_sets = pd.read_csv(first).assign(id=lambda t: t["id"] + "x")
    other_sets.to_csv(tmp_path / "x.csv", index=False)
    code = cli.run_main(metrics_cli.main, [first, str(tmp_path / "x.csv"), "--names", "a,x"])
    assert code == 2 and "differ from a's" in capsys.readouterr().err


def test_the_metrics_path_imports_neither_torch_nor_transformers():
    import subprocess
    import sys
    code = ("import sys, mlm_mia.cli.metrics, mlm_mia.data.prepare; "
            "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "[]", result.stderr
