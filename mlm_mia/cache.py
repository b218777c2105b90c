"""On-disk cache of per-sentence token scores (:class:`~mlm_mia.pll.TokenScores`).

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

from .pll import TokenScores

TABLE = "token_scores"


class ScoreCache:
    """A SQLite table ``key -> (float64 [log-probs; dist. mean; dist. std], truncated flag)``."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.db = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=60)
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} "
                            "(key BLOB PRIMARY KEY, scores BLOB, truncated INTEGER)")

    @staticmethod
    def keys(namespace: str, sentences: Iterable[str]) -> list[bytes]:
        """One 16-byte key per sentence within ``namespace`` (model and settings)."""
        return [hashlib.blake2b(f"{namespace}\0{s}".encode(), digest_size=16).digest()
                for s in sentences]

    def get(self, keys: list[bytes]) -> dict[bytes, TokenScores]:
        if self.db is None:
            return {}
        found = {}
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            rows = self.db.execute(
                f"SELECT key, scores, truncated FROM {TABLE} WHERE key IN ({','.join('?' * len(part))})",
                part)
            for key, blob, truncated in rows:
                logprobs, mean, std = np.frombuffer(blob, dtype=np.float64).reshape(3, -1)
                found[key] = TokenScores(logprobs, bool(truncated), mean, std)
        return found

    def put(self, items: list[tuple[bytes, TokenScores]]) -> None:
        if self.db is None:
            return
        rows = [(key, np.stack([s.logprobs, s.dist_mean, s.dist_std]).astype(np.float64).tobytes(),
                 int(s.truncated)) for key, s in items]
        with self.db:
            self.db.executemany(f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
