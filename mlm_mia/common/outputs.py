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

from .errors import InputError

STAGING_PREFIX = ".staging-"


@contextlib.contextmanager
def _naming(path: Path, scratch: Path | None = None) -> Iterator[None]:
    """An OSError that names no file (a full disk while writing) names ``path``; one that
    names the internal ``scratch`` file or folder (or a file in it) names what it stands
    for in ``path``: errors name the user's files, never a temporary one."""
    try:
        yield
    except OSError as err:
        named = None if err.filename is None else Path(err.filename)
        if named is None or named == scratch:
            raise OSError(err.errno, err.strerror, str(path)) from None
        if scratch is not None and scratch in named.parents:
            raise OSError(err.errno, err.strerror, str(path / named.relative_to(scratch))) from None
        raise


def check_apart(outputs: dict[str, Iterable[str | Path]], inputs: dict[str, Iterable[str | Path]]) -> None:
    """No output is written over an input, or over another output: every path a run
    writes (``flag -> paths``: files, or the out-dir itself) differs, resolved, from every
    path it reads (files or folders) and from the other outputs. Checked before any work;
    a clash is one :class:`InputError` naming both flags."""
    seen: dict[Path, tuple[str, Path]] = {}
    for flag, paths in inputs.items():
        for path in paths:
            seen.setdefault(Path(path).resolve(), (flag, Path(path)))
    for flag, paths in outputs.items():
        for path in map(Path, paths):
            other = seen.get(path.resolve())
            if other is not None:
                raise InputError(f"{flag} {path}: the same {'folder' if path.is_dir() else 'file'} "
                                 f"as {other[0]} {other[1]}; a run never writes over what it reads "
                                 "or writes, give another path")
            seen[path.resolve()] = (flag, path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; renamed to ``path`` when the block ends
    without an exception, removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # a name near the 255-byte limit leaves room for the random part
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", dir=path.parent)
    except OSError as err:  # it names the temporary file it could not make
        raise OSError(err.errno, err.strerror, str(path)) from None
    os.close(fd)
    try:
        with _naming(path, Path(tmp)):
            yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


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
def staging_dir(out_dir: str | Path, owned: Iterable[str] = ()) -> Iterator[Path]:
    """A scratch folder inside ``out_dir`` whose files are moved into ``out_dir`` on success.

    On any exception the scratch folder is removed and ``out_dir`` keeps what it had.
    Files are moved one by one with atomic renames, in sorted order, so a reader never
    sees a partial file. Files named in ``owned`` (the kind of run's outputs) that this
    run did not write are removed afterwards, so the folder never mixes two runs' files.
    """
    out_dir = Path(out_dir)
    with _scratch(out_dir, STAGING_PREFIX) as stage, _naming(out_dir, stage):
        yield stage
        written = {item.name for item in stage.iterdir()}
        for item in sorted(stage.iterdir()):
            target = out_dir / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
        for name in sorted(set(owned) - written):
            stale = out_dir / name
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            elif stale.exists() or stale.is_symlink():
                stale.unlink()


_HELD: dict[str, bool] = {}  # what this process holds locked (resolved path -> exclusive)


@contextlib.contextmanager
def held(path: str | Path, exclusive: bool, busy: str) -> Iterator[None]:
    """Holds ``path`` (a folder, or a lock file made if missing) with an advisory lock for
    the block: exclusive for the one run that writes it, shared by runs that read it. A run
    that wants it the other way stops at once with ``busy`` (an :class:`InputError`). A
    path this process already holds at least as strongly is not locked twice (an out-dir
    that is also the data folder)."""
    import fcntl

    key = str(Path(path).resolve())
    if key in _HELD and (_HELD[key] or not exclusive):
        yield
        return
    handle = os.open(path, os.O_RDONLY if Path(path).is_dir() else os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(busy) from None
        _HELD[key] = exclusive
        try:
            yield
        finally:
            del _HELD[key]
    finally:
        os.close(handle)


@contextlib.contextmanager
def locked_output_dir(out_dir: str | Path, flag: str) -> Iterator[Path]:
    """Holds ``out_dir`` for one run: made and checked writable before any work, locked
    (the folder itself: no lock file left) so that a second run into it, or a run reading
    it, stops at once, and cleared of the staging folders of runs that were killed while
    writing."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{flag} {out_dir}: exists and is not a folder; give a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()  # writable, checked before any work
    except OSError as err:
        raise InputError(f"{flag} {out_dir}: cannot write there ({err.strerror}); give a "
                         "writable folder") from None
    with held(out_dir, True, f"{flag} {out_dir}: another run is writing there or reading from it; "
                             "wait for it to end or give another folder"):
        remove_stale_staging(out_dir)
        yield out_dir


def remove_stale_staging(folder: Path) -> None:
    """Staging folders a killed run left in ``folder`` (call with the folder's lock held)."""
    for stale in Path(folder).glob(STAGING_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def gzip_text_writer(path: str | Path) -> Iterator[TextIO]:
    """A UTF-8 text handle writing a gzip file whose bytes depend on the content alone
    (no time stamp in the header)."""
    with open(path, "wb") as raw, \
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as zipped, \
            io.TextIOWrapper(zipped, encoding="utf-8", newline="") as text:
        yield text
