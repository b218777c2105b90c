"""A model pass beyond the PLL that an attack may ask the engine for (EncoderMI's
embeddings, the masked-LM loss): run and cached per sentence like the scores. Light: no
torch import, so that the attacks' registry loads without it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Probe:
    """A per-sentence model pass beyond the PLL, cached like the scores:
    ``compute(model, tokenizer, texts, max_length, seed, batch_tokens, progress) -> [n, d]``,
    advancing the :class:`~mlm_mia.common.progress.Progress` ``progress`` (or None) by
    ``len(texts)`` in all."""

    name: str
    key: str  # everything that changes its values besides the model, dtype and seed
    compute: Callable[..., np.ndarray]
