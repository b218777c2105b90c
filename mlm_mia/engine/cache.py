"""On-disk caches of per-sentence results.

:class:`ScoreCache` (token scores, feature vectors) is keyed by (model fingerprint, scoring
settings, sentence text) and stores only hashes and numbers, never the text.
:class:`TextCache` stores texts made from a sentence (the neighbourhood attack's
neighbours): note text, so it is kept in the data folder, never beside the results. Each
batch is committed as it is computed, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..common.errors import InputError
from .pll import TokenScores

TABLE = "token_scores"
VECTORS = "vectors"
TEXTS = "texts"


class _SQLiteCache:
    """One SQLite file of ``key -> value`` tables (``TABLES``: name -> value columns), checked
    readable and writable when opened; ``where`` names it in errors (a flag and a folder)."""

    TABLES: dict[str, str] = {}

    def __init__(self, path: str | Path | None, where: str, fix: str):
        self.path = Path(path) if path else None
        self.where, self.fix = where, fix
        self.db = None
        if self.path is not None:
            with self._errors():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=60)
                for table, values in self.TABLES.items():
                    self.db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key BLOB PRIMARY KEY, {values})")
                first = next(iter(self.TABLES))
                with self.db:  # readable and writable, checked before any work
                    self.db.execute(f"SELECT count(*) FROM (SELECT 1 FROM {first} LIMIT 1)")
                    self.db.execute(f"DELETE FROM {first} WHERE key IS NULL")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """A corrupt, unreadable or full cache file: one clear error naming it."""
        try:
            yield
        except (sqlite3.Error, OSError) as err:
            raise InputError(f"{self.where}: cannot use the cache {self.path.name} ({err}); "
                             f"{self.fix}") from None

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

    def close(self) -> None:
        if self.db is not None:
            self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ScoreCache(_SQLiteCache):
    """SQLite tables ``key -> (float64 [log-probs; dist. mean; dist. std], truncated flag)``
    and ``key -> float64 vector`` (other per-sentence features, such as EncoderMI's)."""

    TABLES = {TABLE: "scores BLOB, truncated INTEGER", VECTORS: "vector BLOB"}

    def __init__(self, path: str | Path | None):
        folder = Path(path).parent if path else None
        super().__init__(path, f"--cache-dir {folder}",
                         "delete it, give another --cache-dir, or run with --no-cache")

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


class TextCache(_SQLiteCache):
    """SQLite table ``key -> list of texts`` (JSON). Holds note text: keep it with the data."""

    TABLES = {TEXTS: "texts TEXT"}

    def get_texts(self, keys: list[bytes]) -> dict[bytes, list[str]]:
        return {key: json.loads(texts) for key, texts in self._rows(TEXTS, "texts", keys)}

    def put_texts(self, items: list[tuple[bytes, list[str]]]) -> None:
        self._write(TEXTS, [(key, json.dumps(texts, ensure_ascii=False)) for key, texts in items])
