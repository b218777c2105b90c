"""On-disk cache of per-sentence token scores (:class:`~mlm_mia.pll.TokenScores`).

Keyed by (model fingerprint, scoring settings, sentence text); stores only hashes and
numbers, never the text. Each batch is committed as it is scored, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..common.errors import InputError
from .pll import TokenScores

TABLE = "token_scores"
VECTORS = "vectors"


class ScoreCache:
    """SQLite tables ``key -> (float64 [log-probs; dist. mean; dist. std], truncated flag)``
    and ``key -> float64 vector`` (other per-sentence features, such as EncoderMI's)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.db = None
        if self.path is not None:
            with self._errors():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=60)
                self.db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} "
                                "(key BLOB PRIMARY KEY, scores BLOB, truncated INTEGER)")
                self.db.execute(f"CREATE TABLE IF NOT EXISTS {VECTORS} (key BLOB PRIMARY KEY, vector BLOB)")
                with self.db:  # readable and writable, checked before any work
                    self.db.execute(f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} LIMIT 1)")
                    self.db.execute(f"DELETE FROM {TABLE} WHERE key IS NULL")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """A corrupt, unreadable or full cache file: one clear error naming it."""
        try:
            yield
        except (sqlite3.Error, OSError) as err:
            raise InputError(f"--cache-dir {self.path.parent}: cannot use the cache {self.path.name} "
                             f"({err}); delete it, give another --cache-dir, or run with --no-cache") from None

    @staticmethod
    def keys(namespace: str, sentences: Iterable[str]) -> list[bytes]:
        """One 16-byte key per sentence within ``namespace`` (model and settings)."""
        return [hashlib.blake2b(f"{namespace}\0{s}".encode(), digest_size=16).digest()
                for s in sentences]

    def _rows(self, table: str, columns: str, keys: list[bytes]) -> Iterator[tuple]:
        if self.db is None:
            return
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            with self._errors():
                rows = self.db.execute(
                    f"SELECT key, {columns} FROM {table} WHERE key IN ({','.join('?' * len(part))})",
                    part).fetchall()
            yield from rows

    def _write(self, table: str, rows: list[tuple]) -> None:
        if self.db is not None and rows:
            with self._errors(), self.db:
                self.db.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({','.join('?' * len(rows[0]))})",
                                    rows)

    def get(self, keys: list[bytes]) -> dict[bytes, TokenScores]:
        found = {}
        for key, blob, truncated in self._rows(TABLE, "scores, truncated", keys):
            logprobs, mean, std = np.frombuffer(blob, dtype=np.float64).reshape(3, -1)
            found[key] = TokenScores(logprobs, bool(truncated), mean, std)
        return found

    def put(self, items: list[tuple[bytes, TokenScores]]) -> None:
        self._write(TABLE, [(key, np.stack([s.logprobs, s.dist_mean, s.dist_std]).astype(np.float64).tobytes(),
                             int(s.truncated)) for key, s in items])

    def get_vectors(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        return {key: np.frombuffer(blob, dtype=np.float64)
                for key, blob in self._rows(VECTORS, "vector", keys)}

    def put_vectors(self, items: list[tuple[bytes, np.ndarray]]) -> None:
        self._write(VECTORS, [(key, np.asarray(v, dtype=np.float64).tobytes()) for key, v in items])

    def close(self) -> None:
        if self.db is not None:
            self.db.close()

    def __enter__(self) -> ScoreCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
