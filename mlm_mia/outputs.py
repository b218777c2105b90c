"""Atomic output writing: a file is either complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def json_text(obj: Any) -> str:
    """Stable JSON text (sorted keys, indented, trailing newline)."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def jsonl_text(records: Iterable[dict]) -> str:
    """One compact JSON object per line, keys in insertion order."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


@contextlib.contextmanager
def _scratch(parent: Path, prefix: str) -> Iterator[Path]:
    """A new folder inside ``parent``, removed on the way out whatever happens."""
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def replaced_dir(folder: str | Path) -> Iterator[Path]:
    """A scratch folder beside ``folder`` that replaces it, whole, on success.

    Fill the yielded folder; when the block ends without an exception, the old ``folder``
    (if any) is removed and the scratch folder renamed into its place. On an exception the
    scratch folder is removed and ``folder`` keeps what it had.
    """
    folder = Path(folder)
    with _scratch(folder.parent, f".{folder.name}-") as scratch:
        yield scratch
        scratch.chmod(0o755)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(scratch, folder)


@contextlib.contextmanager
def staging_dir(out_dir: str | Path) -> Iterator[Path]:
    """A scratch folder inside ``out_dir`` whose files are moved into ``out_dir`` on success.

    On any exception the scratch folder is removed and ``out_dir`` keeps what it had.
    Files are moved one by one with atomic renames, in sorted order, so a reader never
    sees a partial file.
    """
    out_dir = Path(out_dir)
    with _scratch(out_dir, ".staging-") as stage:
        yield stage
        for item in sorted(stage.iterdir()):
            target = out_dir / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)


@contextlib.contextmanager
def gzip_text_writer(path: str | Path) -> Iterator[TextIO]:
    """A UTF-8 text handle writing a gzip file whose bytes depend on the content alone
    (no time stamp in the header)."""
    with open(path, "wb") as raw, \
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as zipped, \
            io.TextIOWrapper(zipped, encoding="utf-8", newline="") as text:
        yield text
