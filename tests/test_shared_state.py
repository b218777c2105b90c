"""Shared state that a run reads while another may change it: shadow-model folders, the
data folder, and what they keep. Two runs on one shadow folder at the same time, and a
battery of cases each ending with exit status 2, one line naming the folder or flag and
the fix, and nothing written or lost."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlm_mia.cli import common as cli
from mlm_mia.cli import prepare
from mlm_mia.training import recipe, shadow
from mlm_mia.report import html as report_html
from mlm_mia.cli import score
from mlm_mia.common.errors import InputError
from mlm_mia.engine.scoring import ScoreSettings
from mlm_mia.common.stopwatch import Stopwatch

from conftest import recipe_with
from test_bad_input import snapshot

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "tests" / "tiny_recipe.yaml"
SMALL = ["--n-patients", "8", "--n-sentences", "24", "--population", "24"]


def hold(path: Path, exclusive: bool) -> int:
    """Lock ``path`` as another run would (a folder, or a lock file); close the fd to let go."""
    handle = os.open(path, os.O_RDONLY if path.is_dir() else os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    return handle


def run_quietly(main, argv: list[str]) -> tuple[int, list[str]]:
    """A script's exit status and its stderr lines (the log goes elsewhere)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.run_main(main, argv)
    return code, err.getvalue().strip().splitlines()


@pytest.fixture(scope="module")
def study(corpus, small_sets, random_roberta, tiny_tokenizer, tmp_path_factory) -> dict:
    """A copy of the small sets, the untrained tiny target, another checkpoint of its
    architecture to continue the shadows from, and a short recipe."""
    from mlm_mia.training.train import TinyShape, new_model
    root = tmp_path_factory.mktemp("shared_state")
    data = root / "data"
    shutil.copytree(small_sets, data)
    init = root / "pretrained"
    new_model(tiny_tokenizer, TinyShape(hidden=32, layers=2, heads=2, intermediate=64, max_positions=66),
              seed=1).save_pretrained(init)
    tiny_tokenizer.save_pretrained(init)
    recipe_file = recipe_with(RECIPE, root / "recipe.yaml", epochs=4)
    return {"root": root, "data": data, "target": random_roberta, "init": init, "recipe": recipe_file,
            "corpus": corpus, "tokenizer": tiny_tokenizer}


def score_argv(study: dict, shadows: Path, out: Path, *extra: str) -> list[str]:
    return ["--target", str(study["target"]), "--data-dir", str(study["data"]), "--out-dir", str(out),
            "--shadow-models", "2", "--shadow-recipe", str(study["recipe"]), "--shadow-init", str(study["init"]),
            "--shadow-dir", str(shadows), "--device", "cpu", "--bootstrap", "0", *extra]


def prepare_argv(study: dict, out: Path) -> list[str]:
    corpus = study["corpus"]
    return ["--train-notes", str(corpus["train"]), "--heldout-notes", str(corpus["heldout"]),
            "--n2c2", str(corpus["n2c2"]), *SMALL, "--out-dir", str(out)]


@pytest.fixture(scope="module")
def concurrent(study) -> dict:
    """Run A trains two shadows (a process of its own); while it holds them, run B asks for
    the same folder with other patient halves (--shadow-seed 1) and prepare_data_MIA.py
    tries to draw the sets again into A's data folder."""
    root, shadows = study["root"], study["root"] / "shadows"
    data_before = snapshot(study["data"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_CACHE": str(root / "hf_datasets")}
    argv = score_argv(study, shadows, root / "out_a", "--cache-dir", str(root / "cache"))
    first = subprocess.Popen([sys.executable, str(ROOT / "score_MIA.py"), *argv], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    # A trains shadow 0 (holding it) once its work folder is there; probing the lock could collide with A's
    while not (shadows / ".shadow_00.work").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, "run A ended before run B could start"
    start = time.monotonic()
    second = run_quietly(score.main, score_argv(study, shadows, root / "out_b", "--shadow-seed", "1", "--no-cache"))
    second_seconds = time.monotonic() - start
    redraw = run_quietly(prepare.main, prepare_argv(study, study["data"]))
    a_busy = first.poll() is None  # both attempts were made while A held its folders
    out, err = first.communicate(timeout=900)
    return {"shadows": shadows, "data": study["data"], "out_a": root / "out_a", "out_b": root / "out_b",
            "a_code": first.returncode, "a_err": err, "a_busy": a_busy, "second": second, "second_seconds": second_seconds,
            "redraw": redraw, "data_before": data_before}


def test_a_second_run_on_a_shadow_folder_in_use_stops_at_once_and_the_first_is_whole(study, concurrent):
    assert concurrent["a_code"] == 0, concurrent["a_err"][-3000:]
    assert concurrent["a_busy"]
    code, err = concurrent["second"]
    assert code == 2 and len(err) == 1, err
    assert "shadow model 0 is being trained or used by another run" in err[0] and "--shadow-dir" in err[0]
    assert not (concurrent["out_b"]).exists() or not any(concurrent["out_b"].iterdir())
    # A's labels are those of the models in the folder: the records it planned, untouched by B
    settings = json.loads((concurrent["out_a"] / "settings.json").read_text())
    table = pd.read_csv(concurrent["out_a"] / "scores.csv", dtype={"patient_id": str})
    for i in range(2):
        record = json.loads((concurrent["shadows"] / f"shadow_{i:02d}" / "shadow.json").read_text())
        assert record["seed"] == 0 and record["patients"] == settings["shadow_models"]["patients_seen"][i]
        np.testing.assert_array_equal(table[f"shadow_{i}_in"], table["patient_id"].isin(record["patients"]))
    assert settings["shadow_models"]["seed"] == 0


def test_sets_cannot_be_drawn_again_while_a_run_reads_them(concurrent):
    code, err = concurrent["redraw"]
    assert code == 2 and len(err) == 1 and "another run is writing there or reading from it" in err[0], err
    assert f"--out-dir {concurrent['data']}:" in err[0] and snapshot(concurrent["data"]) == concurrent["data_before"]
    settings = json.loads((concurrent["out_a"] / "settings.json").read_text())
    from mlm_mia.data.sets import sets_digest
    assert settings["sets_sha256"] == sets_digest(Path(settings["data_dir"]))


def token_bytes(tokenizer, sentence: str) -> list[bytes]:
    ids = tokenizer(sentence, add_special_tokens=False)["input_ids"][:10]
    return [np.asarray(ids, dtype=dtype).tobytes() for dtype in ("<i4", "<i8")]


def test_no_note_text_or_its_tokens_is_kept_beside_the_shadows_or_in_the_cache(study, concurrent):
    record = json.loads((concurrent["shadows"] / "shadow_00" / "shadow.json").read_text())
    ids, texts = shadow.population_text(study["data"])
    trained = [t for p, t in zip(ids, texts) if p in set(record["patients"]) and len(t) > 60][:5]
    assert len(trained) == 5
    needles = [t.encode() for t in trained] + [b for t in trained for b in token_bytes(study["tokenizer"], t)]
    kept = {**{f"shadows/{k}": v for k, v in snapshot(concurrent["shadows"]).items()},
            **{f"cache/{k}": v for k, v in snapshot(study["root"] / "cache").items()}}
    assert any(k.startswith("cache/") for k in kept) and "shadows/shadow_00/model.safetensors" in kept
    assert not [name for name, content in kept.items() if any(n in content for n in needles)]
    assert sorted(p.name for p in concurrent["shadows"].iterdir()) == [
        ".shadow_00.lock", ".shadow_01.lock", "shadow_00", "shadow_01"]
    hf_cache = study["root"] / "hf_datasets"
    assert not hf_cache.exists() or not [p for p in hf_cache.rglob("*") if p.is_file()]


def test_the_demo_s_training_keeps_no_text(study, tmp_path):
    from mlm_mia.training.train import TinyShape, train_tiny_mlm
    texts = [t for t in shadow.population_text(study["data"])[1] if len(t) > 60][:40]
    short = recipe.Recipe(epochs=1, batch_size=8, precision="fp32")
    train_tiny_mlm(texts, tmp_path / "model", study["tokenizer"], short, seed=1,
                   shape=TinyShape(hidden=16, layers=1, heads=2, intermediate=32, max_positions=66))
    needles = [t.encode() for t in texts[:5]] + [b for t in texts[:5] for b in token_bytes(study["tokenizer"], t)]
    files = snapshot(tmp_path)
    assert "model/model.safetensors" in files
    assert not [name for name, content in files.items() if any(n in content for n in needles)]


def test_the_report_says_where_the_shadows_started_and_when_they_differ(concurrent):
    page = (concurrent["out_a"] / "report.html").read_text()
    settings = json.loads((concurrent["out_a"] / "settings.json").read_text())
    assert "<h2>Shadow models</h2>" in page and "seed of the patient halves" in page
    assert f"continued from {settings['shadow_models']['init']}, given as the checkpoint" in page
    tiny = {**settings["shadow_models"], "init": "tiny", "differs_from_target": {"hidden_size": [128, 32]}}
    html = report_html.shadows_section(tiny)
    assert "The shadow models differ from the target (hidden_size 128 vs 32)" in html and "continued" not in html


def test_a_rerun_that_differs_only_in_the_bootstrap_seed_keeps_the_shadows(study, concurrent, tmp_path):
    before = snapshot(concurrent["shadows"])
    # a training job for both shadows: one drawn on other halves would be refused, not retrained
    code, err = run_quietly(score.main, score_argv(study, concurrent["shadows"], tmp_path / "out", "--seed", "5",
                                                   "--shadow-index", "0,1", "--no-cache"))
    assert code == 0, err
    assert snapshot(concurrent["shadows"]) == before


def test_replace_shadows_trains_again_only_what_it_was_asked_to(study, concurrent, tmp_path):
    shadows = tmp_path / "shadows"
    shutil.copytree(concurrent["shadows"], shadows)
    untouched = snapshot(shadows / "shadow_01")
    two_steps = recipe_with(study["recipe"], tmp_path / "two_steps.yaml", max_steps=2)
    code, err = run_quietly(score.main, score_argv(study, shadows, tmp_path / "out", "--shadow-seed", "1",
                                                   "--shadow-recipe", str(two_steps), "--shadow-index", "0",
                                                   "--replace-shadows", "--no-cache"))
    assert code == 0, err
    record = json.loads((shadows / "shadow_00" / "shadow.json").read_text())
    assert record["seed"] == 1 and record["recipe"]["max_steps"] == 2
    assert snapshot(shadows / "shadow_01") == untouched and not (shadows / ".shadow_00.work").exists()


def test_a_shadow_changed_after_the_run_planned_is_caught_where_it_is_hashed_and_loaded(study, concurrent,
                                                                                          tmp_path):
    shadows = tmp_path / "shadows"
    shutil.copytree(concurrent["shadows"], shadows)
    planned = shadow.plan(study["data"], 2, study["target"], shadow.architecture_key(study["target"]),
                          recipe.load(study["recipe"]), str(study["init"]), shadows, seed=0)
    settings = ScoreSettings(device="cpu")
    before_hash = shadow.ShadowModelDir(planned[0], settings, Stopwatch())
    before_load = shadow.ShadowModelDir(planned[1], settings, Stopwatch())
    assert before_load.fingerprint
    for i in range(2):  # as a run that ignored the lock would leave them: trained for other halves
        path = shadows / f"shadow_{i:02d}" / "shadow.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "seed": 1}))
    with pytest.raises(InputError, match="shadow_00: changed while this run was using it"):
        before_hash.fingerprint
    with pytest.raises(InputError, match="shadow_01: changed while this run was using it"):
        before_load.loaded


# the battery: (script, argv, what the one line must contain, the setup that makes the case)
def battery(study: dict, trained: Path, bad: Path) -> dict:
    def shadows_copy(name: str, change=None) -> Path:
        folder = bad / name / "shadows"
        shutil.copytree(trained, folder)
        if change:
            change(folder)
        return folder

    def case(name: str, *extra: str, change=None, shadows: Path | None = None) -> list[str]:
        folder = shadows or shadows_copy(name, change)
        return score_argv(study, folder, bad / name / "out", "--no-cache", *extra)

    def cut_short(folder: Path) -> None:
        path = folder / "shadow_00" / "shadow.json"
        path.write_bytes(path.read_bytes()[:200])

    def not_a_record(folder: Path) -> None:
        (folder / "shadow_00" / "shadow.json").write_text("[1, 2]\n")

    def no_record(folder: Path) -> None:
        (folder / "shadow_00" / "shadow.json").unlink()

    def partial_of_other_settings(folder: Path) -> None:
        work = folder / ".shadow_00.work"
        (folder / "shadow_00").rename(work)
        record = json.loads((work / "shadow.json").read_text())
        (work / "shadow.json").write_text(json.dumps({**record, "seed": 9}))

    def recipe_file(name: str, **changes) -> list[str]:
        path = bad / f"{name}.yaml"
        recipe_with(study["recipe"], path, **changes)
        return case(name, "--shadow-recipe", str(path), shadows=bad / "nowhere")

    target_copy = bad / "target_copy"
    shutil.copytree(study["target"], target_copy)
    (target_copy / "README.md").write_text("the target, saved again\n")
    empty = bad / "empty_data"
    empty.mkdir()
    other_lr = bad / "other_lr.yaml"
    recipe_with(study["recipe"], other_lr, learning_rate=1e-3)
    held = shadows_copy("shadow_in_use")
    held_shared = shadows_copy("shadow_scored")
    return {
        "other_shadow_seed": ("score", case("other_shadow_seed", "--shadow-seed", "1"),
                              ("shadow_00 was trained for other settings or data (shadow.json differs in",
                               "seed", "give another --shadow-dir, or --replace-shadows")),
        "other_recipe": ("score", case("other_recipe", "--shadow-recipe", str(other_lr)),
                         ("shadow_00 was trained for other settings or data", "differs in recipe")),
        "other_init": ("score", case("other_init", "--shadow-init", "scratch"), ("differs in init",)),
        "record_cut_short": ("score", case("record_cut_short", change=cut_short),
                             ("shadow_00/shadow.json cannot be read as a shadow record", "--replace-shadows")),
        "record_not_an_object": ("score", case("record_not_an_object", change=not_a_record),
                                 ("shadow_00/shadow.json is not a shadow record",)),
        "folder_without_record": ("score", case("folder_without_record", change=no_record),
                                  ("shadow_00 holds no shadow.json", "--replace-shadows")),
        "partial_training_of_other_settings": ("score", case("partial", change=partial_of_other_settings),
                                               (".shadow_00.work was trained for other settings", "seed")),
        "shadows_ready_for_other_settings": ("score", case("ready_other", "--shadow-seed", "1", "--shadows-ready"),
                                             ("shadow models [0, 1] of 2 are not trained",)),
        "shadow_in_use": ("score", case("shadow_in_use", shadows=held),
                          ("shadow model 0 is being trained or used by another run",),
                          (held / ".shadow_00.lock", True)),
        "replace_a_shadow_in_use": ("score", case("replace_in_use", "--shadow-seed", "1", "--replace-shadows",
                                                  shadows=held_shared),
                                    ("shadow model 0 is being trained or used by another run",),
                                    (held_shared / ".shadow_00.lock", False)),
        "sets_being_drawn": ("score", case("sets_being_drawn", shadows=bad / "nowhere"),
                             ("prepare_data_MIA.py or a demo is writing the sets there",), (study["data"], True)),
        "draw_sets_being_read": ("prepare", prepare_argv(study, study["data"]),
                                 ("another run is writing there or reading from it",), (study["data"], False)),
        "demo_into_a_folder_in_use": ("score", ["--demo", "--data-dir", str(empty), "--out-dir", str(bad / "demo_out"),
                                                "--no-cache"],
                                      (f"--data-dir {empty}: another run is using it",), (empty, False)),
        "recipe_nan_learning_rate": ("score", recipe_file("nan_lr", learning_rate=float("nan")),
                                     ("nan_lr.yaml: learning_rate must be a finite number, not nan",)),
        "recipe_infinite_epochs": ("score", recipe_file("inf_epochs", epochs=float("inf")),
                                   ("inf_epochs.yaml: epochs must be a finite number, not inf",)),
        "recipe_nan_warmup": ("score", recipe_file("nan_warmup", warmup_ratio=float("nan")),
                              ("warmup_ratio must be a finite number",)),
        "recipe_negative_max_steps": ("score", recipe_file("negative_steps", max_steps=-3),
                                      ("negative_steps.yaml: epochs and max_steps must be >= 0",)),
        "init_is_the_target": ("score", case("init_target", "--shadow-init", str(study["target"]),
                                             shadows=bad / "nowhere"),
                               ("holds the target's own weights", "give the checkpoint the target was trained from")),
        "init_is_a_copy_of_the_target": ("score", case("init_copy", "--shadow-init", str(target_copy),
                                                       shadows=bad / "nowhere"),
                                         (f"--shadow-init {target_copy}: holds the target's own weights",)),
    }


def test_each_shared_state_case_is_one_line_exit_2_and_nothing_written_or_lost(study, concurrent,
                                                                               tmp_path):
    cases = battery(study, concurrent["shadows"], tmp_path)
    assert len(cases) >= 12
    failures = []
    for name, (script, argv, expected, *lock) in cases.items():
        out = Path(argv[argv.index("--out-dir") + 1])
        if not out.exists():  # an earlier run's output, which must stay
            out.mkdir(parents=True)
            (out / "scores.csv").write_text("an earlier run's output\n")
        watched = [Path(argv[argv.index(flag) + 1]) for flag in ("--out-dir", "--shadow-dir", "--data-dir")
                   if flag in argv]
        before = {folder: snapshot(folder) if folder.exists() else None for folder in watched}
        handle = hold(*lock[0]) if lock else None
        try:
            code, err = run_quietly({"score": score.main, "prepare": prepare.main}[script], argv)
        finally:
            if handle is not None:
                os.close(handle)
        after = {folder: snapshot(folder) if folder.exists() else None for folder in watched}
        if not (code == 2 and len(err) == 1 and all(e in err[0] for e in expected) and "Traceback" not in err[0]
                and after == before):
            changed = [str(f) for f in watched if after[f] != before[f]]
            failures.append((name, code, err[-2:], expected, changed))
    assert not failures, "\n".join(map(str, failures))


def test_the_demo_holding_its_data_folder_can_draw_its_sets_there(study, tmp_path):
    from mlm_mia.common.outputs import held
    data = tmp_path / "demo_data"
    data.mkdir()
    with held(data, True, "busy"):  # as the demo holds it while prepare_data_MIA.py's code writes the sets
        code, err = run_quietly(prepare.main, prepare_argv(study, data))
    assert code == 0 and (data / "members.jsonl").exists()
    handle = hold(data, False)  # another run reading it
    try:
        code, err = run_quietly(prepare.main, prepare_argv(study, data))
    finally:
        os.close(handle)
    assert code == 2 and "another run is writing there or reading from it" in err[0]
