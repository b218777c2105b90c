"""Shadow models trained like the target: through transformers' Trainer, resumable,
reusable, divided among torchrun ranks or cluster jobs."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mlm_mia.cli import common as cli
from mlm_mia.training import recipe, shadow
from mlm_mia.cli import score
from mlm_mia.training.train import SeededMasking, StopAfter

from conftest import recipe_with

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "tests" / "tiny_recipe.yaml"


@pytest.fixture
def quick_recipe(tmp_path) -> Path:
    """The tests' recipe cut to 2 epochs: these tests check who trains what, not how well."""
    return recipe_with(RECIPE, tmp_path / "quick_recipe.yaml", epochs=2)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return load_file(folder / "model.safetensors")


def same_weights(a: Path, b: Path, atol: float = 1e-6) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=atol, rtol=0) for k in wa)


def plan(small_sets, random_roberta, out: Path, n: int = 2, **changes) -> list[shadow.Shadow]:
    tiny = dataclasses.replace(recipe.load(RECIPE), epochs=3, save_steps=4, **changes)
    return shadow.plan(small_sets, n, random_roberta, shadow.architecture_key(random_roberta), tiny,
                       "scratch", out, seed=0), tiny


def test_seeded_masking_gives_the_batch_the_library_collator_gives(corpus_sentences, tiny_tokenizer):
    from transformers import DataCollatorForLanguageModeling
    tok = tiny_tokenizer
    ids = tok([s for _, s in corpus_sentences["train"][:64]], truncation=True, max_length=128)["input_ids"]
    ids[0][3:3] = [tok.mask_token_id, tok.unk_token_id]  # special inside a row: never masked
    ours = SeededMasking(tok, 0.15, seed=3)
    ours.epoch = 2
    batch = ours([{"input_ids": row, "index": 10 + i} for i, row in enumerate(ids)])
    library = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    key = np.random.SeedSequence([3, 2, 10]).generate_state(1)[0]
    library.generator = torch.Generator().manual_seed(int(key))
    expected = library([{"input_ids": row} for row in ids])
    assert batch.keys() == {"input_ids", "attention_mask", "labels"}
    assert all(torch.equal(batch[k], expected[k]) for k in batch)
    assert 0 < (batch["labels"] != -100).sum() < batch["attention_mask"].sum()
    assert (batch["labels"][0, 3:5] == -100).all()
    tok.padding_side = "left"  # a tokenizer that pads on the left is padded there too
    try:
        library.generator = torch.Generator().manual_seed(int(key))
        left = ours([{"input_ids": row, "index": 10 + i} for i, row in enumerate(ids)])
        expected = library([{"input_ids": row} for row in ids])
        assert all(torch.equal(left[k], expected[k]) for k in left)
    finally:
        tok.padding_side = "right"


def test_a_shadow_stopped_and_resumed_ends_as_one_trained_straight_through(small_sets, random_roberta,
                                                                         tiny_tokenizer, tmp_path):
    (first, _), tiny = plan(small_sets, random_roberta, tmp_path / "straight")
    shadow.train(first, "scratch", random_roberta, tiny_tokenizer, tiny)
    (stopped, _), _ = plan(small_sets, random_roberta, tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        shadow.train(stopped, "scratch", random_roberta, tiny_tokenizer, tiny, callbacks=[StopAfter(6)])
    assert not stopped.folder.exists() and [p.name for p in stopped.work.glob("checkpoint-*")] == ["checkpoint-4"]
    shadow.train(stopped, "scratch", random_roberta, tiny_tokenizer, tiny)  # resumes at step 4
    assert same_weights(first.folder, stopped.folder) and not stopped.work.exists()
    assert stopped.done and json.loads((stopped.folder / "shadow.json").read_text()) == first.record


def test_a_shadow_is_reused_while_its_record_matches(small_sets, random_roberta, tmp_path):
    shadows, _ = plan(small_sets, random_roberta, tmp_path)
    assert not any(s.done for s in shadows)
    shadows[0].folder.mkdir(parents=True)
    (shadows[0].folder / "shadow.json").write_text(json.dumps(shadows[0].record))
    assert plan(small_sets, random_roberta, tmp_path)[0][0].done
    # another recipe, another model
    assert not plan(small_sets, random_roberta, tmp_path, learning_rate=1e-3)[0][0].done


def score_args(small_sets, random_roberta, recipe_file: Path, shadows: Path, out: Path, *extra: str) -> list[str]:
    return ["--target", str(random_roberta), "--data-dir", str(small_sets), "--out-dir", str(out),
            "--no-cache", "--bootstrap", "0", "--no-plot", "--shadow-models", "4", "--shadow-recipe", str(recipe_file),
            "--shadow-dir", str(shadows), "--device", "cpu", *extra]


def test_cluster_jobs_train_their_shadows_and_the_scoring_run_needs_them_all(small_sets, random_roberta,
                                                                            quick_recipe, tmp_path, capsys):
    shadows = tmp_path / "shadows"
    assert cli.run_main(score.main, score_args(small_sets, random_roberta, quick_recipe, shadows, tmp_path / "a",
                                               "--shadow-index", "0,2")) == 0
    assert sorted(p.name for p in shadows.glob("shadow_*")) == ["shadow_00", "shadow_02"]
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())  # trained, not scored
    code = cli.run_main(score.main, score_args(small_sets, random_roberta, quick_recipe, shadows, tmp_path / "b",
                                               "--shadows-ready"))
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "shadow models [1, 3] of 4 are not trained" in err and "--shadow-index 1,3" in err


def test_two_torchrun_ranks_train_four_shadows_as_one_process_does(small_sets, random_roberta, quick_recipe,
                                                                   tmp_path):
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same float arithmetic in both
    one = tmp_path / "one"
    result = subprocess.run([sys.executable, str(ROOT / "score_MIA.py"),
                             *score_args(small_sets, random_roberta, quick_recipe, one, tmp_path / "out1",
                                         "--shadow-index", "0,1,2,3")],
                            capture_output=True, text=True, cwd=ROOT, env=one_thread)
    assert result.returncode == 0, result.stderr[-3000:]
    two = tmp_path / "two"
    # run_study called from Python, not the script: each rank's child trains from the settings,
    # with no command line to copy
    script = tmp_path / "study.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nimport mlm_mia\n"
                      "from mlm_mia.cli.score import parse_settings\n"
                      f"mlm_mia.run_study(parse_settings({score_args(small_sets, random_roberta, quick_recipe, two, tmp_path / 'out2')!r}))\n")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531",
         str(script)], capture_output=True, text=True, cwd=tmp_path, env=one_thread)
    assert result.returncode == 0, result.stderr[-3000:]
    for i in range(4):
        assert same_weights(one / f"shadow_{i:02d}", two / f"shadow_{i:02d}", atol=1e-5), i
    assert (tmp_path / "out2" / "scores.csv").exists()
