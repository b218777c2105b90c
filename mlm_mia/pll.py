"""The one pseudo-log-likelihood (PLL) engine: per-token masked log-probabilities.

For a sentence with special tokens ``<s> t1 ... tn </s>``, each target ``ti`` is
predicted from a copy of the sentence in which it is masked (Salazar et al. 2020):

- ``original``: only ``ti`` is masked;
- ``within_word_l2r`` (Kauf & Ivanova 2023): ``ti`` and the later sub-tokens of the
  same word are masked.

Both are defined exactly as in minicons' ``MaskedLMScorer``: the targets are every token
that is not ``<s>``/``</s>``/``[CLS]``/``[SEP]``/padding, and the scores are natural-log
probabilities. The engine differs only in how it computes them:

- masked copies of many sentences are batched together, grouped by exact length so no
  padding is computed, in chunks of at most ``batch_tokens`` tokens (bounded memory,
  even for 512-token sentences);
- the LM head runs only at the masked position of each copy, not at every position.

Sentences longer than the model's limit are truncated to it (the first tokens are
kept); each result says whether it was, and the caller reports the count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

PLL_METRICS = ("original", "within_word_l2r")


@dataclass(frozen=True)
class TokenScores:
    """Per-token log-probabilities of one sentence, and the mean and standard deviation
    of the log-probabilities of the model's whole distribution at each masked position
    (what Min-K%++ standardises by; NaN where a backend does not give them)."""

    logprobs: np.ndarray  # float64, one per scored token, natural log
    truncated: bool
    dist_mean: np.ndarray  # E_z[log p(z)] at each masked position
    dist_std: np.ndarray  # its standard deviation

    @property
    def pll(self) -> float:
        return float(self.logprobs.sum())

    @property
    def n_tokens(self) -> int:
        return int(self.logprobs.size)


def lm_head_of(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The module mapping last hidden states to vocabulary logits, when it is a single one.

    RoBERTa-family models call it ``lm_head``, BERT ``cls``. ``None`` for other
    architectures, which are run whole instead (same scores, more work).
    """
    for name in ("lm_head", "cls"):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Module):
            return head
    return None


@dataclass(frozen=True)
class _Sentence:
    """One encoded sentence and the positions it predicts."""

    index: int  # position in the caller's list
    ids: torch.Tensor  # [L] token ids, special tokens included
    word_ids: tuple[int | None, ...]  # word of each token, from the fast tokenizer
    targets: torch.Tensor  # [n] positions predicted, one masked copy each

    def masked_copies(self, start: int, stop: int, pll: str, mask_id: int) -> torch.Tensor:
        """Copies ``start:stop`` of the sentence, each with its target (and, for
        ``within_word_l2r``, the later targets of the same word) masked."""
        targets = self.targets[start:stop]
        copies = self.ids.repeat(targets.numel(), 1)
        copies[torch.arange(targets.numel()), targets] = mask_id
        if pll == "within_word_l2r":
            all_targets = self.targets.tolist()
            for row, position in enumerate(targets.tolist()):
                word = self.word_ids[position]
                if word is not None:
                    for other in all_targets:
                        if other > position and self.word_ids[other] == word:
                            copies[row, other] = mask_id
        return copies


def chunks(sentences: list[_Sentence], rows: int) -> Iterator[list[tuple[_Sentence, int, int]]]:
    """Pieces ``(sentence, start, stop)`` of the sentences' copies, ``rows`` copies a chunk."""
    pending, n_pending = [], 0
    for sentence in sentences:
        n, start = sentence.targets.numel(), 0
        while start < n:
            take = min(n - start, rows - n_pending)
            pending.append((sentence, start, start + take))
            n_pending += take
            start += take
            if n_pending == rows:
                yield pending
                pending, n_pending = [], 0
    if pending:
        yield pending


class PLLEngine:
    """Scores sentences under one masked LM.

    >>> engine = PLLEngine(model, tokenizer, max_length=512)   # doctest: +SKIP
    >>> [s.pll for s in engine.score(["Pt was seen today."])]   # doctest: +SKIP
    """

    def __init__(self, model: torch.nn.Module, tokenizer, max_length: int, pll: str = "original",
                 batch_tokens: int = 16384, progress: bool = True, name: str = "model",
                 distribution_stats: bool = True):
        if pll not in PLL_METRICS:
            raise ValueError(f"pll must be one of {PLL_METRICS}, not {pll!r}")
        if batch_tokens < max_length:
            raise ValueError(f"batch_tokens ({batch_tokens}) must be at least max_length ({max_length})")
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pll = pll
        self.batch_tokens = batch_tokens
        self.progress = progress
        self.name = name
        self.distribution_stats = distribution_stats
        self.head = lm_head_of(model)
        self.device = next(model.parameters()).device
        # minicons' rule: never score these token ids
        self.special_ids = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
                            tokenizer.bos_token_id, tokenizer.eos_token_id} - {None}

    def encode(self, sentences: Sequence[str]) -> tuple[list[_Sentence], list[bool]]:
        """Each sentence encoded with its targets, and which sentences were truncated."""
        encoded = self.tokenizer(list(sentences), add_special_tokens=True, truncation=False)
        result, truncated = [], []
        for index, ids in enumerate(encoded["input_ids"]):
            word_ids = encoded.word_ids(index)
            cut = len(ids) > self.max_length
            if cut:  # keep the first tokens and the closing special token
                ids = ids[: self.max_length - 1] + ids[-1:]
                word_ids = word_ids[: self.max_length - 1] + word_ids[-1:]
            targets = [i for i, token in enumerate(ids) if token not in self.special_ids]
            result.append(_Sentence(index, torch.tensor(ids, dtype=torch.long), tuple(word_ids),
                                    torch.tensor(targets, dtype=torch.long)))
            truncated.append(cut)
        return result, truncated

    @torch.inference_mode()
    def _logprobs(self, input_ids: torch.Tensor, targets: torch.Tensor,
                  target_ids: torch.Tensor) -> torch.Tensor:
        """``[3, B]``: log p(target token | masked copy), and the mean and standard deviation
        of log p over the vocabulary at the masked position (NaN unless
        ``distribution_stats``), for equal-length copies."""
        rows = torch.arange(input_ids.size(0), device=input_ids.device)
        if self.head is not None:
            hidden = self.model.base_model(input_ids=input_ids).last_hidden_state
            logits = self.head(hidden[rows, targets])
        else:
            logits = self.model(input_ids=input_ids).logits[rows, targets]
        logits = logits.float()
        if not self.distribution_stats:
            picked = logits[rows, target_ids] - torch.logsumexp(logits, dim=-1)
            return torch.stack([picked, torch.full_like(picked, torch.nan), torch.full_like(picked, torch.nan)])
        logprobs = torch.log_softmax(logits, dim=-1)
        probs = logprobs.exp()
        mean = (probs * logprobs).sum(-1)
        std = ((probs * logprobs.square()).sum(-1) - mean.square()).clamp_min(0).sqrt()
        return torch.stack([logprobs[rows, target_ids], mean, std])

    def score(self, sentences: Sequence[str]) -> list[TokenScores]:
        """Per-token log-probabilities of every sentence, in input order."""
        encoded, truncated = self.encode(sentences)
        results = [np.empty((3, e.targets.numel())) for e in encoded]
        by_length: dict[int, list[_Sentence]] = {}
        for sentence in encoded:
            by_length.setdefault(sentence.ids.numel(), []).append(sentence)
        mask_id = self.tokenizer.mask_token_id
        bar = tqdm(total=sum(r.shape[1] for r in results), desc=f"PLL {self.name}", unit="copy",
                   disable=not self.progress or None, leave=False)
        for length in sorted(by_length):
            for pieces in chunks(by_length[length], max(1, self.batch_tokens // length)):
                ids = torch.cat([s.masked_copies(a, b, self.pll, mask_id) for s, a, b in pieces])
                targets = torch.cat([s.targets[a:b] for s, a, b in pieces])
                target_ids = torch.cat([s.ids[s.targets[a:b]] for s, a, b in pieces])
                logprobs = self._logprobs(ids.to(self.device), targets.to(self.device),
                                          target_ids.to(self.device)).double().cpu().numpy()
                offset = 0
                for sentence, a, b in pieces:
                    results[sentence.index][:, a:b] = logprobs[:, offset: offset + b - a]
                    offset += b - a
                bar.update(ids.size(0))
        bar.close()
        return [TokenScores(r[0], t, r[1], r[2]) for r, t in zip(results, truncated)]
