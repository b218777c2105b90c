"""Masked-LM training: every model this project trains (the demo's target and reference,
the shadow models, the tests' tiny models) goes through ``transformers.Trainer``, with
the examples in a ``datasets.Dataset`` and ``DataCollatorForLanguageModeling``, from a
:class:`~mlm_mia.recipe.Recipe`. Nothing is downloaded: the demo's tokenizer is trained
here too.

The one change to the Trainer's own loss: the LM head runs only at the masked positions
(the same masked-LM cross-entropy; on a tiny model with a large vocabulary most of the
work saved).
"""

from __future__ import annotations

import functools
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import (DataCollatorForLanguageModeling, PreTrainedModel, PreTrainedTokenizerBase,
                          RobertaConfig, RobertaForMaskedLM, RobertaTokenizerFast, Trainer,
                          TrainerCallback, TrainingArguments)
from transformers.trainer_callback import PrinterCallback

from ..common.progress import Progress
from ..engine.pll import lm_head_of
from .recipe import Recipe

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


def examples(texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, recipe: Recipe,
             max_length: int):
    """The training examples as a ``datasets.Dataset`` of ``input_ids`` (and ``index``,
    their position, which seeds their masking): one sentence per example (cut to
    ``block_size`` tokens, or the model's ``max_length`` if shorter), or, for ``input:
    notes``, the texts tokenized, joined with ``</s>`` and cut into blocks of that many
    tokens, each framed by ``<s> ... </s>`` (as RoBERTa was pre-trained). In memory: a
    dataset made from a dict writes no cache file, so no text or token of it is kept."""
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    block = min(recipe.block_size, max_length)
    data = Dataset.from_dict({"text": list(texts)})
    if recipe.input == "sentences":
        data = data.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=block),
                        batched=True, remove_columns=["text"])
        return data.add_column("index", list(range(len(data))))
    inner = block - 2

    def pack(batch: dict) -> dict:
        stream = [t for ids in tokenizer(batch["text"], add_special_tokens=False, verbose=False)["input_ids"]
                  for t in ids + [tokenizer.sep_token_id]]
        blocks = [stream[i:i + inner] for i in range(0, len(stream), inner)]
        return {"input_ids": [[tokenizer.cls_token_id] + b + [tokenizer.sep_token_id] for b in blocks]}

    # one batch: blocks run across note boundaries, as run_mlm.py's group_texts does
    data = data.map(pack, batched=True, batch_size=None, remove_columns=["text"])
    return data.add_column("index", list(range(len(data))))


class SeededMasking(DataCollatorForLanguageModeling):
    """The usual masked-LM masking (15%: 80% ``<mask>``, 10% random, 10% unchanged), each
    batch masked with a generator seeded by ``(seed, epoch, its first example)``: the
    masks depend on nothing else, so a run resumed from a checkpoint masks exactly as a
    run that was never stopped.

    The batch is padded here with tensors, and the special tokens found by id, instead of
    by the tokenizer's per-example Python calls: the same batch and masks (the library's
    own ``torch_mask_tokens`` draws them), milliseconds a step less on a CPU."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, mlm_probability: float, seed: int):
        super().__init__(tokenizer, mlm_probability=mlm_probability)
        self.seed, self.epoch = seed, 0
        self.special_ids = torch.tensor(sorted(tokenizer.all_special_ids))

    def __call__(self, features, return_tensors=None):
        key = np.random.SeedSequence([self.seed, self.epoch, int(features[0]["index"])]).generate_state(1)[0]
        self.generator = torch.Generator().manual_seed(int(key))
        rows = [torch.as_tensor(f["input_ids"]) for f in features]
        side = self.tokenizer.padding_side
        input_ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_side=side,
                                                    padding_value=self.tokenizer.pad_token_id)
        attention_mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(r) for r in rows], batch_first=True,
                                                         padding_side=side)
        special = torch.isin(input_ids, self.special_ids) | (attention_mask == 0)
        input_ids, labels = self.torch_mask_tokens(input_ids, special_tokens_mask=special)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class EpochSampler(torch.utils.data.Sampler):
    """The examples in an order fixed by ``(seed, epoch)`` alone: shuffled, and with
    ``grouped``, sorted by length within pools of 50 batches (little padding) and the
    batches shuffled. It tells the masking which epoch it is."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, grouped: bool,
                 masking: SeededMasking):
        self.lengths, self.batch_size, self.seed, self.grouped = list(lengths), batch_size, seed, grouped
        self.masking = masking
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = self.masking.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        if not self.grouped:
            return iter(order.tolist())
        pool = self.batch_size * 50
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start:start + pool]
            chunk = chunk[np.argsort([self.lengths[i] for i in chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        return iter(np.concatenate([batches[i] for i in rng.permutation(len(batches))]).tolist())


class MaskedHeadTrainer(Trainer):
    """The masked-LM loss with the LM head applied at the masked positions only, and the
    examples in :class:`EpochSampler`'s order."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return EpochSampler([len(ids) for ids in dataset["input_ids"]], self.args.train_batch_size,
                            self.args.data_seed, self.args.group_by_length, self.data_collator)

    @functools.cached_property
    def _non_embedding_parameters(self) -> int:
        return self.model.num_parameters(exclude_embeddings=True)

    def floating_point_ops(self, inputs) -> int:
        """The Trainer's count (6 x tokens x non-embedding parameters), the parameters counted
        once rather than at every step (a millisecond a step on a tiny model)."""
        return 6 * inputs["input_ids"].numel() * self._non_embedding_parameters

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        hidden = model.base_model(input_ids=inputs["input_ids"],
                                  attention_mask=inputs.get("attention_mask")).last_hidden_state
        masked = labels != -100
        logits = lm_head_of(model)(hidden[masked]).float()
        loss = torch.nn.functional.cross_entropy(logits, labels[masked], reduction="sum")
        loss = loss / (num_items_in_batch if num_items_in_batch is not None else masked.sum().clamp(min=1))
        return (loss, None) if return_outputs else loss


class TrainingProgress(TrainerCallback):
    """The Trainer's optimiser steps as a progress stage (its own bar and logging are off);
    a training resumed from a checkpoint counts its earlier steps as done."""

    def __init__(self, stage: str):
        self.stage = stage
        self.progress: Progress | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.progress = Progress(self.stage, state.max_steps, "steps", done=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.set(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        self.progress.close()


class StopAfter(TrainerCallback):
    """Stops training after ``steps`` optimiser steps, as an interruption would (tests)."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.steps:
            raise KeyboardInterrupt


def precision_flags(recipe: Recipe, device: torch.device) -> dict:
    """``bf16`` / ``fp16`` for the Trainer: ``auto`` is bf16 on a GPU that has it."""
    precision = recipe.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def train_mlm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
              recipe: Recipe, work_dir: Path, seed: int | None = None, device: str = "auto",
              callbacks: Sequence[TrainerCallback] = (), stage: str = "training") -> PreTrainedModel:
    """Train ``model`` on ``texts`` with ``recipe``, checkpointing into ``work_dir``; a
    run that finds a checkpoint there resumes from it (optimizer, schedule, data order and
    random state included). The examples stay in memory: the checkpoints hold weights and
    training state, never the text or its tokens. Its progress shows as ``stage``."""
    if lm_head_of(model) is None:
        raise ValueError("training needs a model whose masked-LM head is one module (lm_head or cls)")
    seed = recipe.seed if seed is None else seed
    use_cpu = device == "cpu" or not torch.cuda.is_available()
    arguments = TrainingArguments(
        output_dir=str(work_dir), num_train_epochs=recipe.epochs, max_steps=recipe.max_steps or -1,
        learning_rate=recipe.learning_rate, lr_scheduler_type=recipe.lr_scheduler,
        warmup_ratio=recipe.warmup_ratio, per_device_train_batch_size=recipe.batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation, weight_decay=recipe.weight_decay,
        max_grad_norm=recipe.max_grad_norm, seed=seed, data_seed=seed, use_cpu=use_cpu,
        save_strategy="steps", save_steps=recipe.save_steps, save_total_limit=1,
        logging_strategy="no", report_to=[], disable_tqdm=True, dataloader_num_workers=0,
        group_by_length=recipe.input == "sentences", remove_unused_columns=False,
        **precision_flags(recipe, torch.device("cpu" if use_cpu else "cuda")))
    collator = SeededMasking(tokenizer, recipe.mlm_probability, seed)
    from ..engine.models import max_sequence_length
    data = examples(texts, tokenizer, recipe, max_sequence_length(model, tokenizer))
    trainer = MaskedHeadTrainer(model=model, args=arguments, train_dataset=data, data_collator=collator,
                                callbacks=[TrainingProgress(stage), *callbacks])
    trainer.remove_callback(PrinterCallback)  # the run's own output stays the tables
    resume = any(Path(work_dir).glob("checkpoint-*"))
    if resume:
        log.info("Resuming the training in %s from its last checkpoint", work_dir)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="mtime may not be reliable")
        output = trainer.train(resume_from_checkpoint=True if resume else None)
    log.debug("%s: %d steps, mean training loss %.4f", stage, output.global_step, output.training_loss)
    return trainer.model.eval()


def train_tiny_mlm(texts: Sequence[str], out_dir: Path, tokenizer: RobertaTokenizerFast,
                   recipe: Recipe, seed: int, shape: TinyShape = TinyShape(), stage: str = "training") -> Path:
    """Train a tiny RoBERTa on ``texts`` and save it, tokenizer included, to ``out_dir``."""
    with tempfile.TemporaryDirectory() as work:
        model = train_mlm(new_model(tokenizer, shape, seed), tokenizer, texts, recipe, Path(work), seed,
                          stage=stage)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
