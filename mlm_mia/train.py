"""Tiny RoBERTa masked LMs trained locally in seconds: the demo's target and reference
models, and the tests' models. Nothing is downloaded: the tokenizer is trained here too."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import (DataCollatorForLanguageModeling, RobertaConfig, RobertaForMaskedLM,
                          RobertaTokenizerFast)

from .pll import lm_head_of

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


@dataclass(frozen=True)
class TinyShape:
    """Size of a tiny RoBERTa (roberta-base is 768 / 12 / 12 / 3072)."""

    hidden: int = 128
    layers: int = 2
    heads: int = 4
    intermediate: int = 256
    max_positions: int = 514  # 512 tokens, as roberta-base
    dropout: float = 0.0  # none: these models are meant to memorise their few epochs


def train_tokenizer(texts: Sequence[str], out_dir: Path, vocab_size: int = 2000
                    ) -> RobertaTokenizerFast:
    """A byte-level BPE tokenizer (RoBERTa's kind) trained on ``texts``, saved in ``out_dir``."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2,
                            special_tokens=SPECIAL_TOKENS, show_progress=False)
    with tempfile.TemporaryDirectory() as scratch:
        vocab, merges = bpe.save_model(scratch)
        tokenizer = RobertaTokenizerFast(vocab_file=vocab, merges_file=merges, model_max_length=512)
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def new_model(tokenizer: RobertaTokenizerFast, shape: TinyShape, seed: int) -> RobertaForMaskedLM:
    """A randomly initialised RoBERTa masked LM sized for ``tokenizer``."""
    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, intermediate_size=shape.intermediate,
        max_position_embeddings=shape.max_positions, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1, hidden_dropout_prob=shape.dropout,
        attention_probs_dropout_prob=shape.dropout,
    )
    return RobertaForMaskedLM(config)


def batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar-length examples (little padding), in shuffled order."""
    order = rng.permutation(len(lengths))
    pool = batch_size * 50
    result = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort([lengths[i] for i in chunk], kind="stable")]
        result += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [result[i] for i in rng.permutation(len(result))]


def train_mlm(model: RobertaForMaskedLM, tokenizer: RobertaTokenizerFast, texts: Sequence[str],
              epochs: int, seed: int, batch_size: int = 32, lr: float = 2e-3,
              max_length: int = 128) -> RobertaForMaskedLM:
    """Masked-LM training (15% masking, as RoBERTa) on ``texts``, one text per example.

    The loss is the model's own masked-LM cross-entropy, but the LM head is applied only
    at the masked positions, which on a tiny model is most of the work saved.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    steps = epochs * -(-len(encoded) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps,
                                                   pct_start=0.1)
    head = lm_head_of(model)
    model.train()
    for epoch in range(epochs):
        total, plan = 0.0, batches([len(ids) for ids in encoded], batch_size, rng)
        for batch_index in plan:
            batch = collator([{"input_ids": encoded[i]} for i in batch_index])
            hidden = model.base_model(input_ids=batch["input_ids"],
                                      attention_mask=batch["attention_mask"]).last_hidden_state
            masked = batch["labels"] != -100
            loss = torch.nn.functional.cross_entropy(head(hidden[masked]), batch["labels"][masked])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            total += loss.item()
        log.debug("epoch %d: loss %.3f", epoch + 1, total / len(plan))
    return model.eval()


def train_tiny_mlm(texts: Sequence[str], out_dir: Path, tokenizer: RobertaTokenizerFast,
                   epochs: int, seed: int, shape: TinyShape = TinyShape()) -> Path:
    """Train a tiny RoBERTa on ``texts`` and save it, tokenizer included, to ``out_dir``."""
    model = train_mlm(new_model(tokenizer, shape, seed), tokenizer, texts, epochs, seed)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
