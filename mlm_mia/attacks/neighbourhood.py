"""The neighbourhood attack (Mattern et al. 2023, "Membership Inference Attacks against
Language Models via Neighbourhood Comparison"; MIMIR's ``ne``).

A sentence's neighbours are the sentence with one word (token) replaced by what a masked LM
proposes there (:mod:`mlm_mia.engine.neighbours` makes them). A model's loss on a text it
trained on is lower than on texts that differ from it by a word, where for a text it never
saw the two are alike; comparing with the neighbours calibrates away how easy the sentence
is with no reference model of the population. The score is the target's PLL of the sentence
minus the mean of its neighbours' PLLs (both reduced as ``--reduction`` says), that is, the
neighbours' mean loss minus the sentence's: MIMIR's ``loss(x) - mean loss(neighbours)`` with
the sign turned, so that higher means member. A sentence with no clean neighbour (none were
found) scores 0: its neighbourhood is itself, as in MIMIR when its mask filler gives nothing.
"""

from __future__ import annotations

import numpy as np

from ..common import columns
from .base import Inputs, reduce

# the neighbours' summed PLLs and scored tokens under the target, [n, N] (NaN past a
# sentence's neighbours): Inputs.features keys
PLL = (columns.TARGET, "neighbours_pll")
N_TOKENS = (columns.TARGET, "neighbours_n_tokens")


def neighbourhood_score(own: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """``own[i] - mean_j neighbours[i, j]`` over the neighbours a sentence has (non-NaN),
    0 for a sentence with none."""
    neighbours = np.asarray(neighbours, dtype=float)
    present = ~np.isnan(neighbours)
    count = present.sum(1)
    total = np.where(present, neighbours, 0.0).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.asarray(own, dtype=float) - total / count, 0.0)


def ne(inputs: Inputs) -> np.ndarray:
    reduction = inputs.settings.reduction
    neighbours = reduce(inputs.features[PLL], inputs.features[N_TOKENS], reduction)
    return neighbourhood_score(inputs.model_score(columns.TARGET), neighbours)
