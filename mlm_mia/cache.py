"""On-disk cache of per-sentence token log-probabilities.

Keyed by (model fingerprint, scoring settings, sentence text); stores only hashes and
numbers, never the text. Each batch is committed as it is scored, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Iterable

import numpy as np


class ScoreCache:
    """A SQLite table ``key -> (float64 log-probs, truncated flag)``."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.db = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=60)
            self.db.execute("CREATE TABLE IF NOT EXISTS scores "
                            "(key BLOB PRIMARY KEY, logprobs BLOB, truncated INTEGER)")

    @staticmethod
    def keys(namespace: str, sentences: Iterable[str]) -> list[bytes]:
        """One 16-byte key per sentence within ``namespace`` (model and settings)."""
        return [hashlib.blake2b(f"{namespace}\0{s}".encode(), digest_size=16).digest()
                for s in sentences]

    def get(self, keys: list[bytes]) -> dict[bytes, tuple[np.ndarray, bool]]:
        if self.db is None:
            return {}
        found = {}
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            rows = self.db.execute(
                f"SELECT key, logprobs, truncated FROM scores WHERE key IN ({','.join('?' * len(part))})",
                part)
            found.update((k, (np.frombuffer(v, dtype=np.float64), bool(t))) for k, v, t in rows)
        return found

    def put(self, items: list[tuple[bytes, np.ndarray, bool]]) -> None:
        if self.db is None:
            return
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?)",
                                [(k, np.ascontiguousarray(v, np.float64).tobytes(), int(t))
                                 for k, v, t in items])

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
