"""SHA-256 digests of input files, model folders and text lists: what a run records to say
which inputs it used, and what reused models and caches are keyed by."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

BLOCK = 1 << 22


def _update_from_file(digest, path: Path) -> None:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of one file's bytes, read in blocks."""
    digest = hashlib.sha256()
    _update_from_file(digest, Path(path))
    return digest.hexdigest()


def folder_sha256(path: str | Path) -> str:
    """SHA-256 over the relative names and contents of every file under a folder."""
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*")):
        if file.is_file():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
            _update_from_file(digest, file)
    return digest.hexdigest()


def texts_sha256(texts: Iterable[str]) -> str:
    """SHA-256 of a sequence of texts (order matters; each text ends with a NUL byte)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()
