"""What a run says while it works: progress with the time left, --quiet, --verbose, and
the Seconds line."""

import json
import logging
from pathlib import Path

import pytest

from mlm_mia.common import progress
from mlm_mia.common.progress import Progress
from mlm_mia.common.stopwatch import Stopwatch
from mlm_mia.cli import prepare
from mlm_mia.cli.common import run_main
from mlm_mia.cli import score
from mlm_mia.training import demo, recipe as recipe_module

from conftest import recipe_with

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def levels():
    """The loggers' levels as they were, after a test that sets them with the flags."""
    loggers = [logging.getLogger(), logging.getLogger(progress.PACKAGE)]
    saved = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, saved):
        logger.setLevel(level)


@pytest.fixture
def at_once(monkeypatch):
    """Progress shown from a stage's start (the tests' stages last less than its delay)."""
    monkeypatch.setattr(progress, "DELAY", 0.0)


def progress_lines(caplog) -> dict[str, list[str]]:
    """The progress module's log lines by stage."""
    stages: dict[str, list[str]] = {}
    for record in caplog.records:
        if record.name == progress.__name__:
            stage, _, rest = record.getMessage().partition(": ")
            stages.setdefault(stage, []).append(rest)
    return stages


def set_texts(data: Path) -> list[str]:
    return [json.loads(line)["text"] for path in data.glob("*.jsonl")
            for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_progress_line_counts_rate_and_time_left():
    bar = Progress("PLL target", 1000, "sentences")
    bar.start, bar.done = 0.0, 250
    assert bar.line(10.0) == "PLL target: 250/1,000 sentences (25%), 25.0 sentences/s, 30 s left"
    bar.first = 200  # a resumed stage: its rate counts this run's work only
    assert bar.line(10.0) == "PLL target: 250/1,000 sentences (25%), 5.0 sentences/s, 2 min 30 s left"
    assert [progress.duration(s) for s in (0.4, 59.6, 3599, 7830)] == ["0 s", "1 min 00 s", "59 min 59 s",
                                                                        "2 h 10 min"]


@pytest.fixture
def tiny_sets(corpus, tmp_path) -> Path:
    """Sets of 2 patients x 6 sentences."""
    data = tmp_path / "data"
    assert prepare.main(["--train-notes", str(corpus["train"]), "--heldout-notes", str(corpus["heldout"]),
                         "--n2c2", str(corpus["n2c2"]), "--n-patients", "2", "--n-sentences", "6",
                         "--out-dir", str(data)]) == 0
    return data


def test_a_log_gets_a_line_every_tenth_of_the_stage_and_at_least_every_30_s(caplog, at_once):
    with caplog.at_level(logging.INFO):
        with Progress("scan", 1000, "notes") as bar:
            for _ in range(1000):
                bar.update()
            assert [line.split(" ")[0] for line in progress_lines(caplog)["scan"]] == [
                f"{n:,}/1,000" for n in range(100, 1001, 100)]
            bar.last_time -= progress.LOG_SECONDS  # half a minute since the last line
            bar.update(0)
    *_, slow, end = progress_lines(caplog)["scan"]
    assert slow.startswith("1,000/1,000 notes") and end.startswith("1,000 notes in 0 s")


def test_a_log_shows_each_scoring_stage_with_its_time_left_and_no_text_and_quiet_silences_it(
        random_roberta, tiny_sets, tmp_path, caplog, capsys, levels, at_once):
    args = ["--target", str(random_roberta), "--data-dir", str(tiny_sets), "--cache-dir", str(tmp_path / "cache"),
            "--bootstrap", "0", "--no-plot"]
    assert run_main(score.main, args + ["--out-dir", str(tmp_path / "verbose"), "--verbose"]) == 0
    stages = progress_lines(caplog)
    assert {"PLL target", "masked_loss target", "encodermi target"} <= set(stages)
    for stage, lines in stages.items():
        *moving, last = lines
        assert moving and all(" left" in line and "/s" in line for line in moving), stage
        assert " in " in last and "/s)" in last  # the stage's end: its time and rate
        assert len(lines) <= 11  # a line at most every 10% of the stage, and its end
    messages = [r.getMessage() for r in caplog.records]
    seconds = next(m for m in messages if m.startswith("Seconds: "))
    assert "PLL" in seconds and "masked_loss" in seconds
    assert any(r.levelno == logging.DEBUG and r.name.startswith("mlm_mia.") for r in caplog.records)
    printed = caplog.text + "".join(capsys.readouterr())
    assert not [t for t in set_texts(tiny_sets) if t in printed]

    # the other PLL variant is scored afresh (the probes come from the cache): silently
    caplog.clear()
    assert run_main(score.main, args + ["--out-dir", str(tmp_path / "quiet"), "--quiet", "--pll",
                                        "within_word_l2r"]) == 0
    assert [r.getMessage() for r in caplog.records if r.levelno < logging.WARNING] == []
    assert run_main(score.main, args + ["--out-dir", str(tmp_path / "both"), "--quiet", "--verbose"]) == 2
    assert "--quiet and --verbose: give one of them" in capsys.readouterr().err


def test_the_demo_times_its_data_and_training_and_shows_the_training_s_steps(
        tmp_path, monkeypatch, caplog, at_once):
    """The demo's own steps (sets, tokenizer, target, reference) on a recipe of 3 steps."""
    monkeypatch.chdir(tmp_path)  # the synthetic corpus goes into data/synthetic
    monkeypatch.setattr(recipe_module, "DEMO_RECIPE", recipe_with(
        recipe_module.DEMO_RECIPE, tmp_path / "recipe.yaml", max_steps=3, epochs=0))
    watch = Stopwatch()
    with caplog.at_level(logging.INFO):
        demo.prepare(tmp_path / "data", 0, watch)
    assert list(watch.seconds)[:2] == ["demo data", "training"] and watch.seconds["training"] > 0
    stages = progress_lines(caplog)
    for model in ("target", "reference"):
        *moving, last = stages[f"training {model}"]
        assert moving[-1].startswith("3/3 steps (100%)") and " left" in moving[0]
        assert last.startswith("3 steps in ")


def test_reading_note_files_shows_the_bytes_read(corpus, tmp_path, caplog, at_once, monkeypatch):
    from mlm_mia.data import csv_notes
    from mlm_mia.data.sources import note_source

    monkeypatch.setattr(csv_notes, "READ_EVERY", 8)
    source = note_source(str(corpus["train"]), "--train-notes", None)
    with caplog.at_level(logging.INFO):
        notes = [note for note, _ in source.notes()]
    assert notes == list(csv_notes.read_notes(corpus["train"]))
    *moving, end = progress_lines(caplog)["reading --train-notes"]
    total = round(corpus["train"].stat().st_size / 1e3)  # a small file: kB
    assert moving and all(line.endswith(" left") and f"/{total:,} kB (" in line for line in moving)
    assert end.startswith(f"{total:,} kB in ")  # the whole file, compressed bytes
    assert not [n.text for n in notes if n.text in caplog.text]  # sizes and rates, never text
