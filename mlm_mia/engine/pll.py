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
  even for 512-token sentences); the copies are built on the device from one copy of
  each sentence, and results come back once, at the end;
- the LM head runs only at the masked position of each copy, not at every position.

Sentences longer than the model's limit are truncated to it (the first tokens are
kept); each result says whether it was, and the caller reports the count.

Given a character span per sentence, only the tokens of the span are scored, the span
treated as one word of ``within_word_l2r``: each of its tokens is predicted with itself
and the span's later tokens masked, so the sum is a left-to-right estimate of log p(span |
the rest of the sentence) (the name-condition probe scores a condition this way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..common.progress import Progress

from ..settings.choices import PLL_METRICS

# copies per forward pass at most, whatever the token budget: bounds the LM head's
# [copies x vocabulary] fp32 logits (0.8 GB at roberta-base's 50k) for short sentences
MAX_COPIES = 4096


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


def last_hidden_state(model: torch.nn.Module, input_ids: torch.Tensor | None = None,
                      inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """The encoder's last hidden states for unpadded, equal-length ``input_ids`` (or their
    word embeddings ``inputs_embeds``, to which the model adds its position embeddings).

    BERT-family models are run as embeddings then encoder with no attention mask, which is
    exact here since nothing is padded. Through ``base_model()`` they would build an
    all-ones mask and test it on the host (a device sync per batch) or, when compiled,
    hand attention a full mask, which keeps it off the flash kernel.
    """
    base = model.base_model
    if isinstance(getattr(base, "embeddings", None), torch.nn.Module) and \
            isinstance(getattr(base, "encoder", None), torch.nn.Module):
        return base.encoder(base.embeddings(input_ids=input_ids, inputs_embeds=inputs_embeds))[0]
    return base(input_ids=input_ids, inputs_embeds=inputs_embeds).last_hidden_state


def unscored_ids(tokenizer) -> list[int]:
    """The token ids never scored (minicons' rule): the sentence's start, end and padding.
    ``[UNK]`` and ``<mask>`` are scored like any token; every attack that masks tokens
    follows this rule, so a sentence the PLL scores is scored by all of them."""
    return sorted({tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
                   tokenizer.bos_token_id, tokenizer.eos_token_id} - {None})


def equal_length_batches(lengths: Sequence[int], batch_tokens: int, copies: int = 1
                         ) -> Iterator[list[int]]:
    """Indices of sequences of equal length (shortest first), in batches of at most
    ``batch_tokens`` tokens when each sequence is run as ``copies`` copies (at least one
    sequence per batch)."""
    by_length: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        by_length.setdefault(length, []).append(index)
    for length, indices in sorted(by_length.items()):
        per_batch = max(1, batch_tokens // (length * copies))
        for start in range(0, len(indices), per_batch):
            yield indices[start:start + per_batch]


@dataclass(frozen=True)
class Bucket:
    """Encoded sentences of one exact length, on the device, and their masked copies.

    Copy ``c`` predicts position ``position[c]`` of sentence ``sentence[c]``; the copies
    are in sentence order, then position order, so each sentence's are contiguous.
    """

    indices: list[int]  # each sentence's position in the caller's list
    ids: torch.Tensor  # [S, L] token ids, special tokens included
    words: torch.Tensor  # [S, L] word index of each token from the fast tokenizer, -1 for none
    scored: torch.Tensor  # [S, L] bool, the positions predicted
    sentence: torch.Tensor  # [C] sentence of each copy
    position: torch.Tensor  # [C] masked position of each copy
    counts: list[int]  # copies per sentence

    @property
    def n_copies(self) -> int:
        return int(self.position.numel())

    def masked_copies(self, start: int, stop: int, pll: str, mask_id: int) -> torch.Tensor:
        """Copies ``start:stop``, each with its target (and, for ``within_word_l2r``, the
        later targets of the same word) masked."""
        sentence, position = self.sentence[start:stop], self.position[start:stop]
        copies = self.ids[sentence]
        if pll == "within_word_l2r":
            words = self.words[sentence]
            word = words.gather(1, position[:, None])
            later = torch.arange(copies.size(1), device=copies.device)[None, :] > position[:, None]
            mask = later & (words == word) & (word >= 0) & self.scored[sentence]
            copies.masked_fill_(mask, mask_id)
        copies[torch.arange(copies.size(0), device=copies.device), position] = mask_id
        return copies


class PLLEngine:
    """Scores sentences under one masked LM.

    >>> engine = PLLEngine(model, tokenizer, max_length=512)   # doctest: +SKIP
    >>> [s.pll for s in engine.score(["Pt was seen today."])]   # doctest: +SKIP
    """

    def __init__(self, model: torch.nn.Module, tokenizer, max_length: int, pll: str = "original",
                 batch_tokens: int = 16384, distribution_stats: bool = True, compile: bool = False):
        if pll not in PLL_METRICS:
            raise ValueError(f"pll must be one of {PLL_METRICS}, not {pll!r}")
        if batch_tokens < max_length:
            raise ValueError(f"batch_tokens ({batch_tokens}) must be at least max_length ({max_length})")
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pll = pll
        self.batch_tokens = batch_tokens
        self.distribution_stats = distribution_stats
        self.head = lm_head_of(model)
        # one graph for every batch size and length; fuses the elementwise work between
        # the matrix products (layer norms, GELU, residuals, the log-softmax)
        self._forward = torch.compile(self._logprobs, dynamic=True) if compile else self._logprobs
        self.device = next(model.parameters()).device
        self.special_ids = unscored_ids(tokenizer)

    def encode(self, sentences: Sequence[str], spans: Sequence[tuple[int, int]] | None = None
               ) -> tuple[list[Bucket], list[bool]]:
        """The sentences in buckets of equal length (shortest first), on the device, and
        which sentences were truncated. With ``spans`` (character ``start, stop`` per
        sentence), only the tokens overlapping the span are scored, as one word."""
        encoded = self.tokenizer(list(sentences), add_special_tokens=True, truncation=False,
                                 return_offsets_mapping=spans is not None)
        by_length: dict[int, list[tuple[int, list[int], list[int]]]] = {}
        truncated = []
        for index, ids in enumerate(encoded["input_ids"]):
            words = [-1 if w is None else w for w in encoded.word_ids(index)]
            if spans is not None:
                start, stop = spans[index]
                words = [0 if w >= 0 and a < stop and start < b else -1
                         for w, (a, b) in zip(words, encoded["offset_mapping"][index])]
            cut = len(ids) > self.max_length
            if cut:  # keep the first tokens and the closing special token
                ids = ids[: self.max_length - 1] + ids[-1:]
                words = words[: self.max_length - 1] + words[-1:]
            by_length.setdefault(len(ids), []).append((index, ids, words))
            truncated.append(cut)
        buckets = []
        for length in sorted(by_length):
            indices, ids, words = zip(*by_length[length])
            ids = np.array(ids, dtype=np.int64)
            scored = ~np.isin(ids, self.special_ids)
            if spans is not None:
                scored &= np.array(words) >= 0
            sentence, position = np.nonzero(scored)
            tensors = [torch.from_numpy(a).to(self.device)
                       for a in (ids, np.array(words, dtype=np.int64), scored, sentence, position)]
            buckets.append(Bucket(list(indices), *tensors, scored.sum(1).tolist()))
        return buckets, truncated

    def _logprobs(self, input_ids: torch.Tensor, targets: torch.Tensor,
                  target_ids: torch.Tensor) -> torch.Tensor:
        """``[3, B]``: log p(target token | masked copy), and the mean and standard deviation
        of log p over the vocabulary at the masked position (NaN unless
        ``distribution_stats``), for equal-length copies."""
        rows = torch.arange(input_ids.size(0), device=input_ids.device)
        if self.head is not None:
            hidden = last_hidden_state(self.model, input_ids)
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
        # centred, not E[x^2] - E[x]^2, which cancels to ~1e-3 relative in fp32
        std = (probs * (logprobs - mean[:, None]).square()).sum(-1).sqrt()
        return torch.stack([logprobs[rows, target_ids], mean, std])

    @torch.inference_mode()
    def score(self, sentences: Sequence[str], progress: Progress | None = None,
              spans: Sequence[tuple[int, int]] | None = None) -> list[TokenScores]:
        """Per-token log-probabilities of every sentence, in input order (with ``spans``, of
        each span's tokens, masked left to right: see the module's docstring); ``progress``
        advances by ``len(sentences)`` in all, in step with the work done (copies x length).

        Nothing waits for the device until the end: the copies are built on it and the
        results stay there, so on a GPU the host queues the next chunk while one runs.
        """
        buckets, truncated = self.encode(sentences, spans)
        pll = self.pll if spans is None else "within_word_l2r"
        mask_id = self.tokenizer.mask_token_id
        # sentences per unit of work, so that the time left counts the long sentences' cost
        scale = len(sentences) / max(sum(b.n_copies * b.ids.size(1) for b in buckets), 1)
        outputs = []
        for bucket in buckets:
            rows = max(1, min(self.batch_tokens // bucket.ids.size(1), MAX_COPIES))
            for start in range(0, bucket.n_copies, rows):
                stop = min(start + rows, bucket.n_copies)
                position = bucket.position[start:stop]
                target_ids = bucket.ids[bucket.sentence[start:stop], position]
                outputs.append(self._forward(bucket.masked_copies(start, stop, pll, mask_id),
                                              position, target_ids))
                if progress is not None:
                    progress.update((stop - start) * bucket.ids.size(1) * scale)
        flat = torch.cat(outputs, 1).double().cpu().numpy() if outputs else np.empty((3, 0))
        results: list[np.ndarray] = [np.empty((3, 0))] * len(truncated)
        offset = 0
        for bucket in buckets:
            for index, count in zip(bucket.indices, bucket.counts):
                results[index] = flat[:, offset: offset + count]
                offset += count
        return [TokenScores(r[0].copy(), t, r[1].copy(), r[2].copy()) for r, t in zip(results, truncated)]
