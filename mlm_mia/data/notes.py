"""The unit every reader yields: one clinical note of one patient."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    """One note. ``patient_id`` is a string, namespaced per corpus where ids could clash,
    or ``None`` for plain training text that names no patient."""

    patient_id: str | None
    text: str
    source: str
