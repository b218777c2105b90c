"""The score table's layout, in one place.

One row per sentence, so that every per-sentence value of every model stays paired:

- ``set``, ``id``, ``patient_id``: which sentence (never its text);
- ``<model>_pll``, ``<model>_n_tokens``: summed PLL and scored tokens under the target
  and each reference model;
- ``shadow_<i>_score``, ``shadow_<i>_in``: the LiRA statistic under shadow model ``i``
  and whether that model trained on the sentence; ``target_lira_statistic``: the same
  statistic under the target;
- ``score_<attack>``: one column per attack, higher = more likely a member;
- ``memorization``: E[statistic | IN] - E[statistic | OUT] over the shadow models.
"""

from __future__ import annotations

import re

import pandas as pd

ID_COLUMNS = ("set", "id", "patient_id")
SCORE_PREFIX = "score_"
MEMORIZATION = "memorization"
TARGET = "target"
TARGET_STATISTIC = "target_lira_statistic"
_SHADOW_SCORE = re.compile(r"shadow_(\d+)_score")


def score(attack: str) -> str:
    """The column of an attack's scores."""
    return SCORE_PREFIX + attack


def attack_of(column: str) -> str | None:
    """The attack a column holds the scores of, or None for any other column."""
    return column[len(SCORE_PREFIX):] if column.startswith(SCORE_PREFIX) else None


def attack_names(table: pd.DataFrame) -> list[str]:
    """The attacks with a score column in ``table``, in column order."""
    return [a for c in table.columns if (a := attack_of(c)) is not None]


def pll(model: str) -> str:
    return f"{model}_pll"


def n_tokens(model: str) -> str:
    return f"{model}_n_tokens"


def shadow_name(index: int) -> str:
    return f"shadow_{index}"


def shadow_score(index: int) -> str:
    return f"{shadow_name(index)}_score"


def shadow_in(index: int) -> str:
    return f"{shadow_name(index)}_in"


def shadow_indices(table: pd.DataFrame) -> list[int]:
    """The indices of the shadow models whose columns ``table`` holds, in order."""
    return sorted(int(m.group(1)) for c in table.columns if (m := _SHADOW_SCORE.fullmatch(c)))
