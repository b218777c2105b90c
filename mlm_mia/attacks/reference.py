"""The loss attack, the likelihood ratio against reference models, and the blind baseline.

- ``loss`` (Yeom et al. 2018, "Privacy risk in machine learning"): the target's PLL.
- ``ratio`` (Mireshghallah et al. 2022, "Quantifying privacy risks of masked language
  models using membership inference attacks"): target PLL - reference PLL of the same
  sentence, which calibrates away how easy the sentence is.
- ``reference_only``: the reference's PLL alone. It never sees the target, so any
  separation it achieves comes from the sets differing in distribution.

With several references, each gets its own ``ratio_<name>`` and ``reference_only_<name>``.
"""

from __future__ import annotations

import numpy as np

from .base import Inputs


def _suffix(reference: str) -> str:
    """``""`` for the one reference (named ``reference``), ``_<folder>`` for several."""
    return reference[len("reference"):]


def loss(inputs: Inputs) -> np.ndarray:
    return inputs.model_score("target")


def ratio(inputs: Inputs) -> dict[str, np.ndarray]:
    target = inputs.model_score("target")
    return {f"ratio{_suffix(r)}": target - inputs.model_score(r) for r in inputs.references}


def reference_only(inputs: Inputs) -> dict[str, np.ndarray]:
    return {f"reference_only{_suffix(r)}": inputs.model_score(r) for r in inputs.references}
