"""Scoring sentences under a model directory: the engine or minicons, with the cache."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from . import models
from .cache import ScoreCache
from ..common.errors import InputError
from .pll import PLLEngine, TokenScores
from .probe import Probe
from ..common.progress import Progress
from ..common.stopwatch import Stopwatch

log = logging.getLogger(__name__)

CACHE_BLOCK = 2048  # sentences scored between two cache commits
SCORES_VERSION = "2"  # part of every cache key: raise it when the engine's numbers change


@dataclass(frozen=True)
class ScoreSettings:
    """How sentences are scored; every field that can change a score is in the cache key."""

    pll: str = "original"
    backend: str = "engine"
    device: str = "auto"
    dtype: str = "auto"
    batch_tokens: int = 16384
    compile: bool = False
    progress: bool = True


class MiniconsBackend:
    """minicons' own ``MaskedLMScorer``, for cross-checks (fp32; never truncates)."""

    def __init__(self, path: Path, device: torch.device, pll: str, max_length: int, tokenizer):
        try:
            from minicons import scorer
        except ImportError as err:
            raise InputError(f"--backend minicons: minicons cannot be imported ({err}); "
                             "install requirements.txt (it needs transformers < 5)") from None
        self.scorer = scorer.MaskedLMScorer(str(path), str(device))
        self.pll = pll
        self.max_length = max_length
        self.tokenizer = tokenizer

    def score(self, sentences: Sequence[str], progress: Progress | None = None) -> list[TokenScores]:
        lengths = [len(ids) for ids in self.tokenizer(list(sentences))["input_ids"]]
        if max(lengths, default=0) > self.max_length:
            raise InputError(f"--backend minicons: {sum(n > self.max_length for n in lengths)} "
                             f"sentences are longer than the model's {self.max_length} tokens and "
                             "minicons cannot truncate; use --backend engine")
        results = []
        for start in range(0, len(sentences), 16):
            batch = list(sentences[start:start + 16])
            for tokens in self.scorer.token_score(batch, PLL_metric=self.pll):
                logprobs = np.array([s for _, s in tokens], dtype=float)
                unknown = np.full_like(logprobs, np.nan)
                results.append(TokenScores(logprobs, False, unknown, unknown))
            if progress is not None:
                progress.update(len(batch))
        return results


def _compute_missing(keys: list[bytes], todo: list[int], found: dict, compute: Callable,
                     put: Callable) -> None:
    """Fills ``found`` for ``keys[todo]``: ``compute(block)`` gives the values of a block of
    indices, each block committed with ``put`` before the next starts (an interrupted
    run resumes there)."""
    for start in range(0, len(todo), CACHE_BLOCK):
        block = todo[start:start + CACHE_BLOCK]
        items = [(keys[i], value) for i, value in zip(block, compute(block))]
        put(items)
        found.update(items)


class ModelDir:
    """One model directory of a run: checked and its tokenizer loaded when made;
    fingerprinted and its model loaded at most once, when first needed, for its scores and
    its EncoderMI features alike."""

    def __init__(self, path: Path, flag: str, name: str, settings: ScoreSettings,
                 stopwatch: Stopwatch | None = None):
        self.stopwatch = stopwatch or Stopwatch()
        self.path = models.check_model_dir(path, flag)
        self.tokenizer = models.load_tokenizer(self.path, flag)
        models.check_weights(self.path, flag)
        self.flag = flag
        self.name = name
        self.device = models.resolve_device(settings.device)
        self.dtype = models.resolve_dtype(settings.dtype, self.device)

    @cached_property
    def fingerprint(self) -> str:
        return models.fingerprint(self.path)

    @cached_property
    def loaded(self) -> tuple[PreTrainedModel, int]:
        """The model (on the device, in the run's dtype) and its input limit in tokens."""
        with self.stopwatch.stage("loading"):
            model = models.load_model(self.path, self.flag, self.device, self.dtype, self.tokenizer)
        return model, models.max_sequence_length(model, self.tokenizer)

    def release(self) -> None:
        """Frees the loaded model, if any (the next use loads it again)."""
        vars(self).pop("loaded", None)


def score_sentences(model_dir: ModelDir, sentences: Sequence[str], settings: ScoreSettings,
                    cache: ScoreCache, distribution_stats: bool = True,
                    spans: Sequence[tuple[int, int]] | None = None) -> list[TokenScores]:
    """Per-token log-probabilities of ``sentences`` under ``model_dir``'s model (with the
    distribution statistics Min-K%++ needs unless ``distribution_stats`` is false; with
    ``spans``, of each span's tokens only, by this project's engine whatever the backend:
    see :meth:`PLLEngine.score`).

    Cached results are reused; the rest are scored in blocks, each committed to the
    cache before the next starts.
    """
    if spans is not None:  # minicons scores whole sentences only
        settings = dataclasses.replace(settings, backend="engine")
        distribution_stats = False
    dtype = torch.float32 if settings.backend == "minicons" else model_dir.dtype
    namespace = "|".join([SCORES_VERSION, model_dir.fingerprint, settings.backend, settings.pll,
                          str(dtype)] + ([] if distribution_stats else ["no-stats"])
                         + (["compiled"] if settings.compile else []) + ([] if spans is None else ["spans"]))
    keys = cache.keys(namespace, sentences if spans is None else
                      [f"{start},{stop},{s}" for s, (start, stop) in zip(sentences, spans)])
    found = cache.get(keys)
    todo = [i for i, key in enumerate(keys) if key not in found]
    log.info("%s: %d sentences to score, %d from the cache (%s, %s, %s, %s)", model_dir.name,
             len(todo), len(keys) - len(todo), settings.backend, settings.pll, model_dir.device,
             str(dtype).split(".")[-1])
    if todo:
        model, max_length = model_dir.loaded
        if settings.backend == "minicons":
            backend = MiniconsBackend(model_dir.path, model_dir.device, settings.pll, max_length,
                                      model_dir.tokenizer)
        else:
            backend = PLLEngine(model, model_dir.tokenizer, max_length, settings.pll,
                                max(settings.batch_tokens, max_length), distribution_stats,
                                settings.compile)
        log.debug("%s: at most %d tokens a sentence, %d a forward pass", model_dir.name, max_length,
                  max(settings.batch_tokens, max_length))
        label = f"PLL {model_dir.name}" + ("" if spans is None else " (spans)")
        with Progress(label, len(todo), "sentences", enabled=settings.progress) as bar:
            def score_block(block: list[int]) -> list[TokenScores]:
                texts = [sentences[i] for i in block]
                if spans is None:
                    return backend.score(texts, bar)
                return backend.score(texts, bar, spans=[spans[i] for i in block])

            _compute_missing(keys, todo, found, score_block, cache.put)
    scores = [found[key] for key in keys]
    n_truncated = sum(s.truncated for s in scores)
    if n_truncated:
        log.warning("%s: %d sentences were longer than the model's limit and were truncated to "
                    "their first tokens (counted in settings.json)", model_dir.name, n_truncated)
    return scores


def probe_features(model_dir: ModelDir, probe: Probe, sentences: Sequence[str],
                   settings: ScoreSettings, cache: ScoreCache, seed: int) -> list[np.ndarray]:
    """Each sentence's ``probe`` values under ``model_dir``'s model, cached like the scores."""
    namespace = "|".join([probe.name, SCORES_VERSION, model_dir.fingerprint, str(model_dir.dtype),
                          str(seed), probe.key])
    keys = cache.keys(namespace, sentences)
    found = cache.get_vectors(keys)
    todo = [i for i, key in enumerate(keys) if key not in found]
    log.info("%s: %s features of %d sentences to compute, %d from the cache", model_dir.name,
             probe.name, len(todo), len(keys) - len(todo))
    if todo:
        model, max_length = model_dir.loaded
        with Progress(f"{probe.name} {model_dir.name}", len(todo), "sentences",
                      enabled=settings.progress) as bar:
            _compute_missing(keys, todo, found, lambda block: probe.compute(
                model, model_dir.tokenizer, [sentences[i] for i in block], max_length, seed,
                settings.batch_tokens, bar), cache.put_vectors)
    return [found[key] for key in keys]
