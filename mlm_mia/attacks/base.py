"""What every attack is given and what it declares: the run's per-sentence inputs, the
settings, and the model passes beyond the PLL that an attack may need (probes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from ..common import columns
from ..settings.flags import SHARED_FLAGS

if TYPE_CHECKING:  # the metrics path never imports torch
    from ..engine.pll import TokenScores

REDUCTIONS = ("mean", "sum")


@dataclass(frozen=True)
class Settings:
    """The attack settings a run records in settings.json."""

    reduction: str = "mean"  # the target's PLL per scored token, or summed
    min_k_fraction: float = SHARED_FLAGS["--min-k-fraction"]["default"]
    rmia_offline_a: float = SHARED_FLAGS["--rmia-offline-a"]["default"]
    seed: int = 0


@dataclass(frozen=True)
class Probe:
    """A per-sentence model pass beyond the PLL, cached like the scores:
    ``compute(model, tokenizer, texts, max_length, seed, batch_tokens, progress) -> [n, d]``,
    advancing the :class:`~mlm_mia.common.progress.Progress` ``progress`` (or None) by
    ``len(texts)`` in all."""

    name: str
    key: str  # everything that changes its values besides the model, dtype and seed
    compute: Callable[..., np.ndarray]


@dataclass(frozen=True)
class ProbeRequest:
    """``probe`` under ``model`` (``target`` or ``shadow_0``), on the rows of ``sets``
    (all rows when empty)."""

    model: str
    probe: Probe
    sets: tuple[str, ...] = ()


@dataclass
class Inputs:
    """Everything an attack may read, one row per sentence in ``table``'s order."""

    table: pd.DataFrame  # columns.ID_COLUMNS, model PLL columns and shadow columns
    texts: list[str]
    references: list[str]  # the reference models' names (column prefixes)
    target_tokens: list[TokenScores]  # per-token log-probs under the target
    distribution_stats: bool  # whether target_tokens carry Min-K%++'s statistics
    settings: Settings = field(default_factory=Settings)
    # (model, probe name) -> [n, d] values, NaN on rows the probe did not run on
    features: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    # extra per-model values a statistic needs: (model, name) -> [n]
    model_values: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def model_score(self, model: str, reduction: str | None = None) -> np.ndarray:
        """``model``'s PLL, per scored token (``mean``) or summed (``sum``); the run's
        reduction by default."""
        return reduce(self.table[columns.pll(model)].to_numpy(float),
                      self.table[columns.n_tokens(model)].to_numpy(float),
                      reduction or self.settings.reduction)

    def in_set(self, *names: str) -> np.ndarray:
        return self.table["set"].isin(names).to_numpy()

    @property
    def shadows(self) -> list[int]:
        return columns.shadow_indices(self.table)


def reduce(pll: np.ndarray, n_tokens: np.ndarray, reduction: str) -> np.ndarray:
    """Summed PLL, or PLL per scored token (NaN for a sentence with none)."""
    pll = np.asarray(pll, dtype=float)
    if reduction == "sum":
        return pll
    n_tokens = np.asarray(n_tokens, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_tokens > 0, pll / n_tokens, np.nan)
