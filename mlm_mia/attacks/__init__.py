"""Every attack, in one registry.

An attack is a function of :class:`Inputs` (the run's per-sentence table, the target's
token log-probs, probe features) returning its scores, higher = more likely a member: one
array, or ``{column name: array}`` for an attack with a column per reference model. Its
registry entry says what it needs (a reference model, shadow models, a population, the
distribution statistics, model passes beyond the PLL) and whether it is a blind baseline.
Adding an attack is its function and one entry here: the scores file, metrics.json, the
tables, the plots and metrics.py pick it up from the ``score_<name>`` column. The entry also
names the settings (keys of a run's settings.json) that define the attack: two runs'
scores of an attack are compared only when those settings are the same.

May import: :mod:`mlm_mia.common`, :mod:`mlm_mia.settings`, :mod:`mlm_mia.data`,
:mod:`mlm_mia.engine` and :mod:`mlm_mia.stats.metrics` (which imports nothing of the package).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ..common import columns
from ..data.sets import SHADOW_SETS
from . import encodermi, lira, masked_loss, neighbourhood, reference, rmia, tokens
from .base import Inputs, Probe, ProbeRequest, Settings, reduce

__all__ = ["REGISTRY", "Attack", "Inputs", "Probe", "ProbeRequest", "Settings",
           "add_attacks", "entry", "is_blind", "left_out_message", "plan", "probe_requests", "reduce"]

# what each requirement is and how a run gets it (for the "left out" message)
REQUIREMENTS = {
    "reference": "a reference model (--reference MODEL_DIR)",
    "shadows": "shadow models (--shadow-models K)",
    "population": "a population set (prepare_data_MIA.py --population N)",
    "distribution_stats": "the distribution statistics of the engine backend (minicons gives none)",
    "neighbours": "neighbours (--neighbours N; each costs one PLL of the sentence under the target)",
    "neighbour_model": "a masked LM to make the neighbours (--neighbour-model MODEL_DIR)",
}


@dataclass(frozen=True)
class Attack:
    name: str
    compute: Callable[[Inputs], np.ndarray | dict[str, np.ndarray]]
    # each item a requirement, or alternatives joined by "|" (any one will do)
    needs: frozenset[str] = frozenset()
    blind: bool = False  # never sees the target: measures how far the sets differ
    probes: tuple[ProbeRequest, ...] = ()
    per_reference: bool = False  # a column per reference: <name>, or <name>_<reference>
    # the settings.json keys (dotted: "rmia.pr_x") whose values define the attack
    defined_by: tuple[str, ...] = ()


# what defines the attacks that read the PLL, the references, the shadow models
_PLL = ("pll",)
_REFERENCES = ("references",)
_SHADOWS = ("shadow_models.n", "shadow_models.recipe", "shadow_models.init")

REGISTRY: tuple[Attack, ...] = (
    Attack("loss", reference.loss, defined_by=(*_PLL, "reduction")),
    Attack("ratio", reference.ratio, frozenset({"reference"}), per_reference=True,
           defined_by=(*_PLL, "reduction", *_REFERENCES)),
    Attack("reference_only", reference.reference_only, frozenset({"reference"}), blind=True,
           per_reference=True, defined_by=(*_PLL, "reduction", *_REFERENCES)),
    Attack("min_k", tokens.min_k, defined_by=(*_PLL, "min_k_fraction")),
    Attack("min_k_pp", tokens.min_k_pp, frozenset({"distribution_stats"}), defined_by=(*_PLL, "min_k_fraction")),
    Attack("zlib", tokens.zlib, defined_by=_PLL),
    Attack("lira_online", lira.lira_online, frozenset({"shadows"}),
           defined_by=(*_PLL, "reduction", "lira.statistic", *_SHADOWS)),
    Attack("lira_offline", lira.lira_offline, frozenset({"shadows"}),
           defined_by=(*_PLL, "reduction", "lira.statistic", *_SHADOWS)),
    Attack("rmia", rmia.rmia, frozenset({"population", "reference|shadows"}),
           defined_by=(*_PLL, "rmia.pr_x", "rmia.gamma", "rmia.offline_a", *_REFERENCES, *_SHADOWS)),
    Attack("rmia_offline", rmia.rmia_offline, frozenset({"population", "reference", "shadows"}),
           defined_by=(*_PLL, "rmia.gamma", *_REFERENCES, *_SHADOWS)),
    Attack("encodermi_t", encodermi.encodermi_t,
           probes=(ProbeRequest("target", encodermi.PROBE),), defined_by=("encodermi",)),
    Attack("encodermi_v", encodermi.encodermi_v, frozenset({"shadows"}),
           probes=(ProbeRequest("target", encodermi.PROBE),
                   ProbeRequest(columns.shadow_name(0), encodermi.PROBE, SHADOW_SETS)),
           defined_by=("encodermi", *_SHADOWS)),
    Attack("masked_loss", masked_loss.masked_loss,
           probes=(ProbeRequest("target", masked_loss.PROBE),)),
    Attack("ne", neighbourhood.ne, frozenset({"neighbours", "neighbour_model|reference"}),
           defined_by=(*_PLL, "reduction", "seed", "neighbours.n", "neighbours.model",
                       "neighbours.generation")),
)


def plan(available: set[str]) -> tuple[list[Attack], dict[str, str]]:
    """The attacks a run with ``available`` requirements can compute, and the others with
    what each lacks."""
    runnable, left_out = [], {}
    for attack in REGISTRY:
        missing = [need for need in sorted(attack.needs)
                   if not set(need.split("|")) & available]
        if missing:
            left_out[attack.name] = " and ".join(
                " or ".join(REQUIREMENTS[n] for n in need.split("|")) for need in missing)
        else:
            runnable.append(attack)
    return runnable, left_out


def left_out_message(left_out: dict[str, str]) -> str:
    """One plain paragraph: which attacks a run left out, grouped by what they need."""
    if not left_out:
        return ""
    by_need: dict[str, list[str]] = {}
    for name, need in left_out.items():
        by_need.setdefault(need, []).append(name)
    parts = [f"{names[0]} needs {need}" if len(names) == 1 else
             f"{', '.join(names[:-1])} and {names[-1]} need {need}" for need, names in by_need.items()]
    text = "Left out: " + "; ".join(parts) + "."
    if any(is_blind(name) for name in left_out):
        text += (" Without the reference_only blind baseline, no model checks how far the sets "
                 "differ in distribution.")
    return text


def probe_requests(attacks: list[Attack]) -> list[ProbeRequest]:
    """The probe passes ``attacks`` need, each once."""
    return list(dict.fromkeys(request for attack in attacks for request in attack.probes))


def add_attacks(inputs: Inputs, attacks: list[Attack]) -> pd.DataFrame:
    """``inputs.table`` with a ``score_<name>`` column per attack (in registry order) and,
    with shadow models, the ``memorization`` column."""
    table = inputs.table.copy()
    for attack in attacks:
        values = attack.compute(inputs)
        for name, column in (values if isinstance(values, dict) else {attack.name: values}).items():
            table[columns.score(name)] = np.asarray(column, dtype=float)
    if inputs.shadows:
        table[columns.MEMORIZATION] = lira.memorization(*lira.shadow_arrays(table))
    return table


def entry(name: str) -> Attack | None:
    """The registry entry of the score column of attack ``name`` (``ratio_<reference>``
    included), or None for a name no attack has."""
    exact = [a for a in REGISTRY if name == a.name]
    return (exact or [a for a in REGISTRY if a.per_reference and name.startswith(a.name + "_")] or [None])[0]


def is_blind(name: str) -> bool:
    """Whether the score column of attack ``name`` (``ratio_<reference>`` included) is a
    blind baseline."""
    attack = entry(name)
    return attack is not None and attack.blind
