import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlm_mia.cli import metrics as metrics_cli
from mlm_mia.cli import prepare
from mlm_mia.cli import score
from mlm_mia.study.run import run_study
from mlm_mia.cli.common import run_main as cli_main
from mlm_mia.common.errors import InputError

from conftest import recipe_with

ROOT = Path(__file__).resolve().parents[1]


RECIPE = ROOT / "tests" / "tiny_recipe.yaml"


@pytest.fixture(scope="module")
def study(corpus, tiny_tokenizer, tmp_path_factory) -> dict:
    """Sets of 30 patients x 200 sentences and a population of 20 patients, a tiny target
    trained on the training part (40% of the patients) and a tiny reference trained on
    the held-out patients outside the sets (the remaining 22)."""
    import dataclasses

    from mlm_mia.training import recipe
    from mlm_mia.data import split
    from mlm_mia.data.sources import note_source
    from mlm_mia.training.train import TinyShape, train_tiny_mlm
    root = tmp_path_factory.mktemp("study")
    data = root / "data"
    split.split_notes([corpus["noteevents"]], root / "split", 0.4, seed=3)
    halves = {half: root / "split" / name for half, name in (("train", split.TRAIN_FILE),
                                                              ("heldout", split.HELDOUT_FILE))}
    assert prepare.main(["--train-notes", str(halves["train"]), "--heldout-notes", str(halves["heldout"]),
                         "--n2c2", str(corpus["n2c2"]), "--n-patients", "30", "--n-sentences", "200",
                         "--population", "200", "--population-patients", "20", "--out-dir", str(data)]) == 0
    manifest = json.loads((data / "manifest.json").read_text())["sets"]
    outside = {p for name in ("non_members", "population") for p in manifest[name]["patients"]}
    sentences = {half: list(note_source(str(path), half, None).sentences(20)) for half, path in halves.items()}
    train = [s for _, s in sentences["train"]]
    population = [s for p, s in sentences["heldout"] if p not in outside]
    shape = TinyShape(hidden=64, layers=2, heads=2, intermediate=128, max_positions=130)
    tiny = recipe.load(RECIPE)
    target = train_tiny_mlm(train, root / "target", tiny_tokenizer, tiny, seed=1, shape=shape)
    # the same number of optimisation steps as the target
    reference = train_tiny_mlm(population, root / "reference", tiny_tokenizer, dataclasses.replace(
        tiny, epochs=round(tiny.epochs * len(train) / len(population))), seed=1, shape=shape)
    return {"root": root, "data": data, "target": target, "reference": reference}


def run_score(study, out: Path, *extra: str) -> dict:
    args = ["--target", str(study["target"]), "--reference", str(study["reference"]),
            "--data-dir", str(study["data"]), "--out-dir", str(out),
            "--cache-dir", str(study["root"] / "cache"), "--bootstrap", "200", *extra]
    return run_study(score.parse_settings(args)).metrics


@pytest.fixture(scope="module")
def scored(study) -> Path:
    out = study["root"] / "results"
    run_score(study, out)
    return out


def test_outputs_and_scores_file_columns(scored):
    assert sorted(p.name for p in scored.iterdir()) == ["metrics.json", "patients.csv", "report.html", "roc.png",
                                                        "scores.csv", "settings.json"]
    table = pd.read_csv(scored / "scores.csv")
    assert list(table.columns) == ["set", "id", "patient_id", "target_pll", "target_n_tokens",
                                   "reference_pll", "reference_n_tokens", "score_loss",
                                   "score_ratio", "score_reference_only", "score_min_k",
                                   "score_min_k_pp", "score_zlib", "score_rmia", "score_encodermi_t",
                                   "score_masked_loss", "text_only_members_vs_non_members",
                                   "text_only_members_vs_externals"]
    assert table["set"].value_counts().to_dict() == {"members": 200, "non_members": 200,
                                                     "externals": 200, "population": 200}
    loss = table["target_pll"] / table["target_n_tokens"]
    np.testing.assert_allclose(table["score_loss"], loss, rtol=1e-8)
    np.testing.assert_allclose(table["score_ratio"], table["score_loss"] - table["score_reference_only"],
                               rtol=1e-7, atol=1e-9)


def test_settings_record_how_each_attack_was_computed(scored):
    settings = json.loads((scored / "settings.json").read_text())
    assert settings["min_k_fraction"] == 0.2 and settings["lira"] is None
    assert settings["rmia"]["offline_a"] == 0.3 and "not tuned" in settings["rmia"]["offline_a_source"]
    assert set(settings["attacks_left_out"]) == {"lira_online", "lira_offline", "rmia_offline", "encodermi_v",
                                                 "ne"}


def test_metrics_json_layout_and_a_real_effect(scored):
    results = json.loads((scored / "metrics.json").read_text())
    assert set(results) == {"verdict", "validity", "members_vs_non_members", "members_vs_externals",
                            "patient_members_vs_non_members", "patient_tests"}
    loss = results["members_vs_non_members"]["loss"]
    assert set(loss) >= {"auc", "auc_ci", "tpr_at_fpr", "precision", "recall", "f1", "threshold",
                         "n_pos", "n_neg"}
    assert (loss["n_pos"], loss["n_neg"]) == (200, 200)
    assert results["patient_members_vs_non_members"]["loss"]["n_pos"] == 30
    sentences = results["members_vs_non_members"]
    # the tiny target saw its members: they score above the non-members; the reference
    # saw neither, and the sets share one distribution, so it cannot tell them apart
    # (EncoderMI needs stronger memorisation than this target's: its test trains its own)
    # (RMIA from the reference alone, offline with a = 0.3: between loss and ratio)
    floors = {"loss": 0.53, "ratio": 0.6, "min_k": 0.55, "min_k_pp": 0.6, "zlib": 0.53, "rmia": 0.56}
    assert {a: sentences[a]["auc"] > floor for a, floor in floors.items()} == dict.fromkeys(floors, True)
    assert abs(sentences["reference_only"]["auc"] - 0.5) < 0.05
    assert results["patient_members_vs_non_members"]["ratio"]["auc"] > 0.6


def test_verdict_and_context_of_a_real_run(study, scored):
    """The tiny target saw its members, the sets share one distribution: the verdict says
    the sets do not differ and the ratio leaks beyond the text; report.html opens with it
    and records what ran."""
    from mlm_mia.engine.models import fingerprint

    verdict = json.loads((scored / "metrics.json").read_text())["verdict"]
    assert verdict["sets_differ"]["differ"] is False and verdict["leakage"]["leaks"] is True
    assert verdict["leakage"]["headline"]["attack"] == "ratio"
    assert verdict["leakage"]["headline"]["excess_ci"][0] > 0
    run = json.loads((scored / "settings.json").read_text())["run"]
    assert (run["device"], run["dtype"], run["target_sha256"]) == ("cpu", "fp32", fingerprint(study["target"]))
    assert run["attacks_run"] == [c[len("score_"):] for c in pd.read_csv(scored / "scores.csv", nrows=0).columns
                                  if c.startswith("score_")]
    page = (scored / "report.html").read_text()
    order = [page.index(h) for h in ("<h2>Verdict</h2>", "<h2>1. Validity", "<h2>About this run</h2>")]
    assert order == sorted(order) and "{'" not in page and "Yes, " in page


def test_metrics_script_recomputes_the_same_numbers(scored, tmp_path, capsys):
    assert metrics_cli.main([str(scored / "scores.csv"), "--json", str(tmp_path / "m.json"),
                             "--bootstrap", "200"]) == 0
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads((scored / "metrics.json").read_text())
    printed = capsys.readouterr().out
    assert "members_vs_non_members" in printed and "TPR@1%FPR" in printed


def test_rerun_reads_the_cache_and_gives_identical_scores(study, scored, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        run_score(study, tmp_path, "--no-plot")
    assert "target: 0 sentences to score, 800 from the cache" in caplog.text
    assert "target: encodermi features of 0 sentences to compute, 800 from the cache" in caplog.text
    assert (tmp_path / "scores.csv").read_bytes() == (scored / "scores.csv").read_bytes()


def test_minicons_backend_gives_the_same_scores(study, scored, tmp_path):
    pytest.importorskip("minicons.scorer")
    run_score(study, tmp_path, "--backend", "minicons", "--no-plot", "--no-cache")
    ours, theirs = pd.read_csv(scored / "scores.csv"), pd.read_csv(tmp_path / "scores.csv")
    np.testing.assert_allclose(ours["target_pll"], theirs["target_pll"], rtol=1e-4)
    np.testing.assert_allclose(ours["reference_pll"], theirs["reference_pll"], rtol=1e-4)


def test_compiled_engine_scores_apart_in_the_cache_and_agrees(study, scored, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        run_score(study, tmp_path, "--compile", "--no-plot", "--bootstrap", "0")
    assert "target: 800 sentences to score, 0 from the cache" in caplog.text
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["compile"] is True and settings["batch_tokens"] == 16384  # the CPU's default
    eager, compiled = pd.read_csv(scored / "scores.csv"), pd.read_csv(tmp_path / "scores.csv")
    for column in ("target_pll", "reference_pll", "score_min_k_pp"):
        np.testing.assert_allclose(compiled[column], eager[column], rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="--compile applies to --backend engine only"):
        run_score(study, tmp_path / "other", "--compile", "--backend", "minicons")


def test_config_file_settings_and_flags_winning(study, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("reduction: sum\nbootstrap: 0\nno_plot: true\npll: within_word_l2r\n"
                      "reference: [a, b]\n")
    args = score.parse_settings(["--config", str(config), "--pll", "original", "--target", "m"])
    assert (args.reduction, args.bootstrap, args.no_plot, args.pll) == ("sum", 0, True, "original")
    assert args.reference == (Path("a"), Path("b"))
    assert score.parse_settings(["--config", str(config), "--reference", "c", "--target", "m"]).reference == (Path("c"),)
    config.write_text("dtype: bfloat16\n")  # PyTorch's names for the dtypes, as on the command line
    assert score.parse_settings(["--config", str(config), "--demo"]).dtype == "bf16"
    assert score.parse_settings(["--dtype", "float32", "--demo"]).dtype == "fp32"
    for text, message in [("reductoin: sum", "unknown setting"),
                          ("reduction: median", "argument --reduction: invalid choice: 'median'"),
                          ("backend: minicon", "argument --backend: invalid choice: 'minicon'"),
                          ("no_cache: 'false'", "no_cache must be true or false"),
                          ("pll: foo", "argument --pll: invalid choice"),
                          ("dtype: fp64", "argument --dtype: invalid choice"),
                          ("bootstrap: 1.5", "argument --bootstrap: invalid non-negative integer value: '1.5'"),
                          ("seed: -1", "argument --seed: invalid non-negative integer value: '-1'")]:
        config.write_text(text + "\n")
        with pytest.raises(InputError, match=f"--config {config}: .*{message}"):
            score.parse_settings(["--config", str(config)])


def test_several_references_each_get_their_columns(study, tmp_path):
    run_score(study, tmp_path, "--reference", str(study["target"]), "--no-plot", "--bootstrap", "0")
    columns = pd.read_csv(tmp_path / "scores.csv").columns
    assert {"reference_reference_pll", "reference_target_pll", "score_ratio_reference",
            "score_ratio_target", "score_reference_only_target"} <= set(columns)


def script(name: str, *args: str):
    return subprocess.run([sys.executable, str(ROOT / name), *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ})


@pytest.mark.parametrize("case", ["hub_name", "bad_reference", "bad_reference_with_shadows",
                                  "no_tokenizer", "no_sets"])
def test_bad_model_or_data_is_a_clear_error(study, tmp_path, case):
    data, target, reference = str(study["data"]), str(study["target"]), str(study["reference"])
    extra = []
    if case == "hub_name":
        target, expected = "roberta-base", "not a local directory"
    elif case.startswith("bad_reference"):
        reference, expected = str(tmp_path), "no config.json"
        if case.endswith("with_shadows"):
            extra = ["--shadow-models", "2", "--shadow-dir", str(tmp_path / "shadows")]
    elif case == "no_tokenizer":
        broken = tmp_path / "model"
        broken.mkdir()
        for name in ("config.json", "model.safetensors"):
            (broken / name).write_bytes((study["target"] / name).read_bytes())
        target, expected = str(broken), "no tokenizer in the model directory"
    else:
        data, expected = str(tmp_path), "needs members.jsonl"
    out = tmp_path / "out"
    result = script("score_MIA.py", "--target", target, "--reference", reference,
                    "--data-dir", data, "--out-dir", str(out), "--no-cache", *extra)
    assert result.returncode == 2, result.stderr
    # every folder is checked before any work
    assert "sentences to score" not in result.stderr and "Training shadow" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("score_MIA.py: error:") and expected in last
    assert not out.exists() or not any(out.iterdir())


def test_metrics_script_rejects_nan_and_one_class(scored, tmp_path):
    table = pd.read_csv(scored / "scores.csv")
    table.loc[3, "score_loss"] = np.nan
    table.to_csv(tmp_path / "nan.csv", index=False)
    result = script("metrics.py", str(tmp_path / "nan.csv"))
    assert result.returncode == 2 and "score_loss: 1 sentences have no finite score" in result.stderr
    table = pd.read_csv(scored / "scores.csv")
    table[table["set"] == "members"].to_csv(tmp_path / "one.csv", index=False)
    result = script("metrics.py", str(tmp_path / "one.csv"))
    assert result.returncode == 2 and "needs members and non_members or externals" in result.stderr


def test_torchrun_shards_and_gathers_like_one_process(study, scored, tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
         str(ROOT / "score_MIA.py"), "--target", str(study["target"]), "--reference", str(study["reference"]),
         "--data-dir", str(study["data"]), "--out-dir", str(out), "--no-cache", "--device", "cpu",
         "--bootstrap", "200"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    tables = [line for line in result.stdout.splitlines() if line.startswith("members_vs_non_members  (")]
    assert len(tables) == 1  # printed once, by rank 0
    one, two = pd.read_csv(scored / "scores.csv"), pd.read_csv(out / "scores.csv")
    assert list(one["id"]) == list(two["id"]) and list(one.columns) == list(two.columns)
    for column in [c for c in one.columns if c.endswith(("_pll", "_n_tokens")) or c.startswith("score_")]:
        np.testing.assert_allclose(two[column], one[column], rtol=1e-6, atol=1e-9)
    assert json.loads((out / "settings.json").read_text())["processes"] == 2


@pytest.fixture(scope="module")
def scored_with_shadows(study) -> Path:
    out = study["root"] / "results_shadow"
    run_score(study, out, "--shadow-models", "4", "--shadow-recipe", str(shadow_recipe(study)),
              "--shadow-dir", str(study["root"] / "shadow_models"), "--no-plot")
    return out


def shadow_recipe(study) -> Path:
    """The target's recipe with half its epochs: shadows that memorise less than the
    target still separate its members (LiRA AUC about 0.7), at half the tests' time."""
    return recipe_with(RECIPE, study["root"] / "shadow_recipe.yaml", epochs=15)


def test_shadow_models_record_what_they_saw(study, scored_with_shadows):
    table = pd.read_csv(scored_with_shadows / "scores.csv", dtype={"patient_id": str})
    settings = json.loads((scored_with_shadows / "settings.json").read_text())
    seen = settings["shadow_models"]["patients_seen"]
    assert len(seen) == 4 and settings["shadow_models"]["recipe"]["epochs"] == 15
    # trained like the target: its architecture, not the old fixed tiny shape
    assert settings["shadow_models"]["differs_from_target"] is None and settings["shadow_models"]["init"] == "scratch"
    for i in range(4):
        record = json.loads((study["root"] / "shadow_models" / f"shadow_{i:02d}" / "shadow.json").read_text())
        assert record["patients"] == seen[i]
        np.testing.assert_array_equal(table[f"shadow_{i}_in"], table["patient_id"].isin(seen[i]).astype(int))
    # complementary pairs: every sentence is IN for exactly 2 of the 4 models, but the
    # externals (another hospital), which are IN for none
    times_in = table[[f"shadow_{i}_in" for i in range(4)]].sum(axis=1)
    assert (times_in == np.where(table["set"] == "externals", 0, 2)).all()
    assert {"memorization", "score_lira_online", "score_lira_offline", "score_encodermi_v",
            "score_rmia_offline", "target_lira_statistic"} <= set(table.columns)
    np.testing.assert_allclose(table["target_lira_statistic"], table["score_loss"])  # the PLL statistic
    assert settings["lira"]["statistic"] == "pll" and settings["lira"]["normality"]["pll"] is None  # 4 models
    tuned = settings["rmia"]["rmia_offline"]
    assert settings["rmia"]["pr_x"] == "shadow models (online)" and "offline_a" not in settings["rmia"]
    assert tuned["auc_by_a"][str(tuned["offline_a"])] == max(tuned["auc_by_a"].values())


def test_every_shadow_attack_scores_members_above_non_members(scored_with_shadows):
    results = json.loads((scored_with_shadows / "metrics.json").read_text())
    sentences = results["members_vs_non_members"]
    floors = {"lira_online": 0.6, "lira_offline": 0.6, "rmia": 0.6}
    measured = {a: round(sentences[a]["auc"], 3) for a in floors}
    assert {a: measured[a] > f for a, f in floors.items()} == dict.fromkeys(floors, True), measured
    by_memorization = results["by_memorization"]
    assert list(by_memorization["by_shadow_models"]) == ["1", "2", "4"]
    quartiles = by_memorization["by_quartile"]["lira_online"]
    # the shadow models' most memorized sentences are the ones the target gives away most
    assert quartiles["q4"]["auc"] > quartiles["q1"]["auc"]


def test_metrics_script_recomputes_the_memorization_report(scored_with_shadows, tmp_path, capsys):
    assert metrics_cli.main([str(scored_with_shadows / "scores.csv"), "--json", str(tmp_path / "m.json"),
                             "--bootstrap", "200"]) == 0
    assert json.loads((tmp_path / "m.json").read_text()) == \
        json.loads((scored_with_shadows / "metrics.json").read_text())
    assert "LiRA with the first K shadow models" in capsys.readouterr().out


def test_each_model_folder_is_hashed_and_loaded_once(study, scored_with_shadows, tmp_path,
                                                     monkeypatch):
    from mlm_mia.engine import models
    reads = []

    def counted(function):
        def wrapper(path, *args):
            reads.append((function.__name__, Path(path)))
            return function(path, *args)
        return wrapper

    monkeypatch.setattr(models, "fingerprint", counted(models.fingerprint))
    monkeypatch.setattr(models, "load_model", counted(models.load_model))
    shadow_dir = study["root"] / "shadow_models"  # trained for scored_with_shadows: reused
    run_score(study, tmp_path, "--shadow-models", "4", "--shadow-recipe", str(shadow_recipe(study)),
              "--shadow-dir", str(shadow_dir), "--no-cache", "--no-plot", "--bootstrap", "0")
    # the target's hash also keys the shadow models; its scores and EncoderMI features,
    # like shadow 0's, come from one load
    folders = [study["target"], study["reference"]] + [shadow_dir / f"shadow_{i:02d}" for i in range(4)]
    assert sorted(reads) == sorted((f, folder) for f in ("fingerprint", "load_model") for folder in folders)


def test_one_shadow_model_is_refused(study, tmp_path):
    with pytest.raises(InputError, match="at least 2"):
        run_score(study, tmp_path, "--shadow-models", "1")


def test_shadow_models_without_the_notes_they_read_is_a_clear_error(study, tmp_path):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(study["data"], data, ignore=shutil.ignore_patterns("shadow_models"))
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["sources"]["train_notes"] = str(tmp_path / "moved" / "train_notes.csv.gz")
    (data / "manifest.json").write_text(json.dumps(manifest))
    args = ["--target", str(study["target"]), "--reference", str(study["reference"]),
            "--data-dir", str(data), "--out-dir", str(tmp_path / "out"), "--shadow-models", "2"]
    with pytest.raises(InputError, match="moved.*named in .*manifest.json"):
        run_study(score.parse_settings(args)).metrics
    assert list((tmp_path / "out").iterdir()) == []


TARGET_ONLY = ["score_loss", "score_min_k", "score_min_k_pp", "score_zlib", "score_encodermi_t",
               "score_masked_loss"]


def test_the_target_alone_runs_every_attack_that_needs_no_reference(study, scored, tmp_path, capsys):
    config = tmp_path / "target_only.yaml"
    config.write_text(f"target: {study['target']}\ndata_dir: {study['data']}\nout_dir: {tmp_path / 'out'}\n"
                      f"cache_dir: {study['root'] / 'cache'}\nbootstrap: 50\n")
    assert cli_main(score.main, ["--config", str(config)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert [c for c in table.columns if c.startswith("score_")] == TARGET_ONLY
    assert "reference_pll" not in table.columns
    results = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(results["members_vs_non_members"]) == {c[len("score_"):] for c in TARGET_ONLY}
    # the same numbers as with a reference, for the attacks both runs have
    with_reference = pd.read_csv(scored / "scores.csv")
    for column in TARGET_ONLY:
        np.testing.assert_array_equal(table[column], with_reference[column])
    assert printed.count("Left out:") == 1
    assert "Left out: ratio and reference_only need a reference model (--reference MODEL_DIR);" in printed
    assert "rmia needs a reference model (--reference MODEL_DIR) or shadow models" in printed
    assert "no model checks how far the sets differ" in printed
    assert metrics_cli.main([str(tmp_path / "out" / "scores.csv"), "--bootstrap", "50",
                             "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text()) == results


def test_with_shadow_models_lira_and_rmia_need_no_reference(study, scored_with_shadows, tmp_path):
    args = ["--target", str(study["target"]), "--data-dir", str(study["data"]), "--out-dir", str(tmp_path),
            "--cache-dir", str(study["root"] / "cache"), "--shadow-models", "4",
            "--shadow-recipe", str(shadow_recipe(study)), "--shadow-dir", str(study["root"] / "shadow_models"),
            "--no-plot", "--bootstrap", "0"]
    assert cli_main(score.main, args) == 0
    columns = [c for c in pd.read_csv(tmp_path / "scores.csv").columns if c.startswith("score_")]
    assert columns == TARGET_ONLY[:4] + ["score_lira_online", "score_lira_offline", "score_rmia",
                                         "score_encodermi_t", "score_encodermi_v", "score_masked_loss"]


def test_targets_are_compared_only_on_attacks_defined_alike(scored, scored_with_shadows, tmp_path, capsys):
    """The same target with and without shadow models: RMIA took Pr(x) from the reference
    in one run and from the shadows in the other, so it is left out, saying why."""
    plain, shadows = str(scored / "scores.csv"), str(scored_with_shadows / "scores.csv")
    assert metrics_cli.main([plain, shadows, "--names", "plain,shadows", "--bootstrap", "0",
                             "--json", str(tmp_path / "c.json"), "--html", str(tmp_path / "c.html")]) == 0
    result = json.loads((tmp_path / "c.json").read_text())
    left_out = result["not_compared"]
    assert left_out["rmia"] == ("defined differently: rmia.pr_x is \"reference models (offline)\" in plain; "
                                "\"shadow models (online)\" in shadows")
    assert left_out["lira_online"] == "scored by shadows only"
    compared = result["comparisons"]["members_vs_non_members"]
    assert "rmia" not in compared and {"loss", "ratio", "min_k", "zlib", "masked_loss"} <= set(compared)
    printed = capsys.readouterr().out
    assert 'not compared: rmia: defined differently: rmia.pr_x is "reference models (offline)"' in printed
    assert "Not compared" in (tmp_path / "c.html").read_text()
    # two runs defined alike: every attack compared
    twin = tmp_path / "twin"
    twin.mkdir()
    for name in ("scores.csv", "settings.json"):
        (twin / name).write_bytes((scored_with_shadows / name).read_bytes())
    assert metrics_cli.main([shadows, str(twin / "scores.csv"), "--names", "a,b", "--bootstrap", "0",
                             "--json", str(tmp_path / "same.json")]) == 0
    same = json.loads((tmp_path / "same.json").read_text())
    assert same["not_compared"] == {}
    table = pd.read_csv(shadows, nrows=1)
    assert set(same["comparisons"]["members_vs_non_members"]) == {
        c[len("score_"):] for c in table.columns if c.startswith("score_")}


def test_the_python_entry_points_do_what_the_scripts_do(study, scored, corpus, tmp_path):
    import mlm_mia
    from mlm_mia.data import split

    halves = study["root"] / "split"
    manifest = mlm_mia.prepare_sets(mlm_mia.PrepareSettings(
        train_notes=halves / split.TRAIN_FILE, heldout_notes=halves / split.HELDOUT_FILE, n2c2=corpus["n2c2"],
        n_patients=30, n_sentences=200, population=200, population_patients=20, out_dir=tmp_path / "data"))
    for name in ("members", "non_members", "externals", "population"):  # as prepare_data_MIA.py drew them
        assert (tmp_path / "data" / f"{name}.jsonl").read_bytes() == (study["data"] / f"{name}.jsonl").read_bytes()
    assert manifest["sets"]["members"]["n_sentences"] == 200
    results = mlm_mia.run_study(mlm_mia.StudySettings(
        target=study["target"], reference=[str(study["reference"])], data_dir=study["data"],
        out_dir=tmp_path / "out", cache_dir=study["root"] / "cache", bootstrap="200"))
    assert (tmp_path / "out" / "scores.csv").read_bytes() == (scored / "scores.csv").read_bytes()
    assert results.metrics == json.loads((scored / "metrics.json").read_text())
    pd.testing.assert_frame_equal(results.table.reset_index(drop=True), pd.read_csv(
        scored / "scores.csv", dtype={"id": str, "patient_id": str, "set": str}), check_dtype=False)
    assert results.record["references"] and results.left_out == json.loads(
        (scored / "settings.json").read_text())["attacks_left_out"]


def test_settings_pass_the_flags_checks_however_given():
    from mlm_mia import StudySettings

    settings = StudySettings(demo=True, dtype="float32", seed="3", reference=["r"], min_k_fraction=1)
    assert (settings.dtype, settings.seed, settings.reference, settings.min_k_fraction) == ("fp32", 3, (Path("r"),), 1.0)
    assert StudySettings(demo=True, reference="ref_model").reference == (Path("ref_model"),)  # one folder, not its letters
    for changes, message in [({"seed": -1}, "--seed '-1'"), ({"min_k_fraction": 0}, "--min-k-fraction '0'"),
                             ({"pll": "foo"}, "--pll 'foo': must be one of original, within_word_l2r"),
                             ({"no_plot": "yes"}, "--no-plot: must be true or false"),
                             ({"shadow_models": 1}, "--shadow-models must be 0"),
                             ({"shadow_index": (0, 0), "shadow_models": 2}, "--shadow-index '0,0'"),
                             ({"demo": False}, "give --target")]:
        with pytest.raises(InputError, match=message):
            StudySettings(**{"demo": True, **changes})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.seed = 4


def test_a_run_replaces_only_its_own_results_unless_told(study, scored, tmp_path):
    import shutil

    out = tmp_path / "results"
    shutil.copytree(scored, out)
    before = (out / "metrics.json").read_bytes()
    run_score(study, out)  # the same settings: a rerun refreshes its own results
    assert (out / "metrics.json").read_bytes() == before
    with pytest.raises(InputError, match=r"holds the results of another run \(--bootstrap differ\); give "
                                         "another --out-dir, or --overwrite"):
        run_score(study, out, "--bootstrap", "50")
    assert (out / "metrics.json").read_bytes() == before
    run_score(study, out, "--bootstrap", "50", "--overwrite")
    assert json.loads((out / "settings.json").read_text())["bootstrap"] == 50


def test_settings_written_as_a_config_file_read_back_the_same(tmp_path):
    import yaml
    from mlm_mia import StudySettings

    for settings in (StudySettings(demo=True), StudySettings(
            target=tmp_path / "t", reference=(tmp_path / "a", tmp_path / "b"), dtype="bfloat16", shadow_models=4,
            shadow_index=(1, 3), shadow_init="tiny", neighbours=2, audit_delta=1e-5, rmia_offline_a=0.25,
            no_cache=True, batch_tokens=4096, name_probe=True, diagnoses=tmp_path / "d.csv.gz",
            diagnosis_titles=tmp_path / "t.csv.gz", patient_names=tmp_path / "n.csv", out_dir=tmp_path / "out")):
        config = tmp_path / "settings.yaml"
        config.write_text(yaml.safe_dump(settings.config()), encoding="utf-8")
        assert score.parse_settings(["--config", str(config)]) == settings
