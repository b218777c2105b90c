"""A masked-LM training recipe, read from a YAML file (``configs/shadow_recipe.yaml`` says
what every key means). Shadow models are trained with the target's recipe; the demo's
target and reference with ``configs/demo_recipe.yaml``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..common.errors import InputError

INPUTS = ("sentences", "notes")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ROOT = Path(__file__).resolve().parents[2]
DEMO_RECIPE = ROOT / "configs" / "demo_recipe.yaml"


@dataclass(frozen=True)
class Recipe:
    input: str = "sentences"  # one cleaned sentence per example, or whole notes packed into blocks
    block_size: int = 128  # tokens per example, special tokens included
    epochs: float = 12.0
    max_steps: int = 0  # > 0: this many optimiser steps instead of epochs
    learning_rate: float = 2e-3
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    batch_size: int = 32
    gradient_accumulation: int = 1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    mlm_probability: float = 0.15
    precision: str = "auto"
    seed: int = 1
    save_steps: int = 500

    def as_dict(self) -> dict:
        return asdict(self)


def _check(recipe: Recipe, where: str) -> Recipe:
    from transformers import SchedulerType

    problems = [f"{f.name} must be a finite number, not {getattr(recipe, f.name)}" for f in fields(Recipe)
                if f.type == "float" and not math.isfinite(getattr(recipe, f.name))]
    if problems:  # NaN compares false with every bound below
        raise InputError(f"{where}: {'; '.join(problems)}")
    if recipe.input not in INPUTS:
        problems.append(f"input must be one of {list(INPUTS)}")
    if recipe.precision not in PRECISIONS:
        problems.append(f"precision must be one of {list(PRECISIONS)}")
    if recipe.lr_scheduler not in {s.value for s in SchedulerType}:
        problems.append("lr_scheduler must be a transformers scheduler type (linear, cosine, ...)")
    for name in ("block_size", "batch_size", "gradient_accumulation", "save_steps"):
        if getattr(recipe, name) < 1:
            problems.append(f"{name} must be at least 1")
    if recipe.block_size < 8:
        problems.append("block_size must be at least 8")
    if recipe.epochs < 0 or recipe.max_steps < 0:
        problems.append("epochs and max_steps must be >= 0")
    elif recipe.epochs == 0 and recipe.max_steps == 0:
        problems.append("give epochs > 0 or max_steps > 0")
    if not 0 < recipe.mlm_probability < 1 or not 0 <= recipe.warmup_ratio < 1:
        problems.append("mlm_probability must be in (0, 1) and warmup_ratio in [0, 1)")
    if recipe.learning_rate <= 0 or recipe.weight_decay < 0 or recipe.max_grad_norm <= 0 or recipe.seed < 0:
        problems.append("learning_rate and max_grad_norm must be > 0, weight_decay and seed >= 0")
    if problems:
        raise InputError(f"{where}: {'; '.join(problems)}")
    return recipe


def load(path: Path, flag: str = "--shadow-recipe") -> Recipe:
    """The recipe in a YAML file; unknown keys, wrong types and values out of range are one
    clear error naming the file."""
    from ..settings.flags import yaml_mapping

    where = f"{flag} {path}"
    values = yaml_mapping(path, where, "key: value (see configs/shadow_recipe.yaml)")
    known = {f.name: f.type for f in fields(Recipe)}
    unknown = sorted(str(k) for k in set(values) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    typed = {}
    for name, value in values.items():
        kind = {"int": int, "float": float, "str": str}[known[name]]
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind):
            raise InputError(f"{where}: {name} must be {'a number' if kind is float else kind.__name__}, "
                             f"not {value!r}")
        typed[name] = kind(value)
    return _check(Recipe(**typed), where)
