"""Loading masked LMs from local directories only, with checks that give clear errors."""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..common.digests import folder_sha256
from ..common.errors import InputError
from ..settings.choices import dtype_name

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "sentencepiece.bpe.model",
                   "spiece.model")


def check_model_dir(path: str | Path, flag: str) -> Path:
    """``path`` as a directory holding a saved masked LM, or an :class:`InputError`."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{flag} {path}: not a local directory. This tool never downloads "
                         "models: give the folder of a model saved with save_pretrained()")
    if not (path / "config.json").is_file():
        raise InputError(f"{flag} {path}: no config.json; save the model there with "
                         "model.save_pretrained()")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise InputError(f"{flag} {path}: no model weights ({', '.join(WEIGHT_FILES[:2])})")
    return path


def load_tokenizer(path: Path, flag: str) -> PreTrainedTokenizerBase:
    """The model's own fast tokenizer, from its directory."""
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise InputError(f"{flag} {path}: no tokenizer in the model directory (none of "
                         f"{', '.join(TOKENIZER_FILES)}); save it there with "
                         "tokenizer.save_pretrained()")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, use_fast=True,
                                                  trust_remote_code=False)
    except Exception as err:  # transformers raises many kinds here
        raise InputError(f"{flag} {path}: no usable tokenizer in the model directory ({err}); "
                         "save it there with tokenizer.save_pretrained()") from None
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(f"{flag} {path}: the tokenizer is not a fast (Rust) tokenizer, which "
                         "word-level PLL needs; save a tokenizer.json with the model")
    if tokenizer.mask_token_id is None:
        raise InputError(f"{flag} {path}: the tokenizer has no mask token; a masked LM is needed")
    return tokenizer


def load_masked_lm(path: str | Path, flag: str, device: torch.device, dtype: torch.dtype
                   ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model (eval mode, on ``device`` in ``dtype``) and tokenizer from a local directory."""
    path = check_model_dir(path, flag)
    tokenizer = load_tokenizer(path, flag)
    return load_model(path, flag, device, dtype, tokenizer), tokenizer


# weights a masked LM legitimately leaves unused: the pooler and BERT's next-sentence head
# (roberta-base and bert-base checkpoints carry them), and old position-id buffers
UNUSED_OK = re.compile(r"(^|\.)pooler\.|^cls\.seq_relationship\.|(^|\.)position_ids$")


def _load(path: Path, flag: str, **kwargs) -> PreTrainedModel:
    """``AutoModelForMaskedLM`` from ``path``, refusing any weight that would be initialised
    at random (missing from the checkpoint) and any unexpected one (a checkpoint that is
    not this config's masked LM): either would give scores of a model nobody trained."""
    try:
        with _quiet_transformers():
            model, info = AutoModelForMaskedLM.from_pretrained(
                path, local_files_only=True, trust_remote_code=False, output_loading_info=True, **kwargs)
    except Exception as err:  # transformers and safetensors raise many kinds here
        raise InputError(f"{flag} {path}: cannot load a masked LM from it ({_one_line(err)}); "
                         "save it again with AutoModelForMaskedLM.save_pretrained()") from None
    missing = sorted(info.get("missing_keys", []))
    unused = sorted(k for k in info.get("unexpected_keys", []) if not UNUSED_OK.search(k))
    mismatched = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", []))
    problems = [f"{len(names)} {what} ({_names(names)})" for names, what in (
        (missing, "weights missing from the checkpoint, which would be initialised at random"),
        (unused, "weights in the checkpoint that this config does not use"),
        (mismatched, "weights whose shape does not match the config")) if names]
    if problems:
        head = " (no masked-LM head: saved with AutoModel?)" if any(
            "lm_head" in k or k.startswith("cls.predictions") for k in missing) else ""
        raise InputError(f"{flag} {path}: not a trained masked LM{head}: {'; '.join(problems)}. Save "
                         "the model with AutoModelForMaskedLM.save_pretrained(), with a config.json "
                         "that matches its weights")
    return model


def _names(keys: list[str], shown: int = 3) -> str:
    return ", ".join(keys[:shown]) + (f", ... ({len(keys) - shown} more)" if len(keys) > shown else "")


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:300]


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' own warnings about unused or new weights: this module reports them."""
    from transformers.utils import logging as hf_logging
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def check_weights(path: Path, flag: str) -> None:
    """That ``path`` holds complete masked-LM weights matching its config, without loading
    them (the model is built on the meta device; only the files' headers are read)."""
    _load(path, flag, device_map="meta")


def load_model(path: Path, flag: str, device: torch.device, dtype: torch.dtype,
               tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The masked LM saved in ``path`` (eval mode, on ``device`` in ``dtype``), checked
    against its ``tokenizer``."""
    model = _load(path, flag, dtype=dtype)
    if model.config.vocab_size < len(tokenizer):
        raise InputError(f"{flag} {path}: the tokenizer has {len(tokenizer)} tokens but the "
                         f"model only {model.config.vocab_size}; they do not belong together")
    return model.to(device).eval()


def max_sequence_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """Longest input (special tokens included) the model accepts."""
    positions = model.config.max_position_embeddings
    if model.config.model_type in ("roberta", "xlm-roberta", "camembert"):
        positions -= model.config.pad_token_id + 1  # RoBERTa positions start after padding_idx
    return int(min(positions, tokenizer.model_max_length))


def fingerprint(path: str | Path) -> str:
    """SHA-256 over the names and contents of a model directory's files."""
    return folder_sha256(path)


def weights_sha256(path: str | Path) -> str:
    """SHA-256 over the contents of a model directory's weight files alone (shards
    included), whatever else the folder holds: the same weights copied elsewhere match."""
    from ..common.digests import file_sha256, texts_sha256
    files = sorted(p for pattern in ("*.safetensors", "pytorch_model*.bin") for p in Path(path).glob(pattern))
    return texts_sha256(file_sha256(p) for p in files)


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise InputError(f"--device {name}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA GPU is visible; use --device cpu")
    return device


def default_batch_tokens(device: torch.device) -> int:
    """Tokens per forward pass when none is given: large on a GPU, whose matrix units need
    big products to be busy; small on a CPU, where it only bounds memory."""
    return 262_144 if device.type == "cuda" else 16_384




def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on a GPU that supports it, fp32 otherwise."""
    name = dtype_name(name)
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
