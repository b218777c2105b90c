"""How much a run says: progress of its long stages (done/total, rate, time left) on
stderr, and the verbosity ``--quiet`` / ``--verbose`` set.

On a terminal a stage is one line updated in place; elsewhere (a log file, CI) a log
line at most every 10% of the stage or every 30 s. A stage shorter than a second shows
nothing. Only stage names and counts are shown, never a sentence.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from itertools import accumulate
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .errors import InputError

PACKAGE = "mlm_mia"
DELAY = 1.0  # seconds a stage runs before its progress shows
TERMINAL_SECONDS = 0.2  # between two redraws of a terminal's line
LOG_FRACTION = 0.1  # of the stage between two log lines
LOG_SECONDS = 30.0  # at most between two log lines when the stage moves slower

log = logging.getLogger(__name__)


def set_verbosity(quiet: bool, verbose: bool) -> None:
    """``--quiet``: warnings and errors only, no progress; ``--verbose``: this package's
    debug lines too. Call once the flags are read (logging already set up)."""
    if quiet and verbose:
        raise InputError("--quiet and --verbose: give one of them, not both")
    logging.getLogger().setLevel(logging.WARNING if quiet else logging.INFO)
    # NOTSET: the package follows the root's level (a torchrun rank other than 0 sets WARNING)
    logging.getLogger(PACKAGE).setLevel(logging.DEBUG if verbose else logging.NOTSET)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 10 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """The progress of one stage of ``total`` units (``update``/``set`` may give fractions;
    ``done``: units already done before this run, as a training resumed from a checkpoint).
    Use it as a context manager, or ``close`` it: the stage ends with a line of its time
    and rate (at debug level when the stage was too short to show progress)."""

    def __init__(self, stage: str, total: float, unit: str, done: float = 0, enabled: bool = True):
        self.stage, self.total, self.unit = stage, total, unit
        self.first = self.done = self.last_done = done
        self.start = self.last_time = time.monotonic()
        self.enabled = enabled and log.isEnabledFor(logging.INFO)
        self.terminal = self.enabled and sys.stderr.isatty()
        self.shown = False

    def update(self, units: float = 1) -> None:
        self.set(self.done + units)

    def set(self, done: float) -> None:
        self.done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < DELAY:
            return
        if self.terminal:
            if now - self.last_time >= TERMINAL_SECONDS:
                width = shutil.get_terminal_size().columns - 1  # a wrapped line would not be redrawn
                sys.stderr.write(f"\r{self.line(now)[:width]}\x1b[K")
                sys.stderr.flush()
                self.shown, self.last_time = True, now
        elif done - self.last_done >= LOG_FRACTION * self.total or now - self.last_time >= LOG_SECONDS:
            log.info(self.line(now))
            self.shown, self.last_time, self.last_done = True, now, done

    def rate(self, now: float) -> float:
        """Units per second in this run."""
        return (self.done - self.first) / max(now - self.start, 1e-9)

    def line(self, now: float) -> str:
        rate = self.rate(now)
        left = f"{duration((self.total - self.done) / rate)} left" if rate > 0 else "time left unknown"
        percent = 100 * self.done / self.total if self.total else 100
        return (f"{self.stage}: {round(self.done):,}/{round(self.total):,} {self.unit} ({percent:.0f}%), "
                f"{rate:,.{1 if rate < 100 else 0}f} {self.unit}/s, {left}")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        self.close(finished=error_type is None)

    def close(self, finished: bool = True) -> None:
        """Ends the stage: the terminal's line cleared and, if ``finished``, its time and rate."""
        if self.terminal and self.shown:
            sys.stderr.write("\r\x1b[K")  # the line in place gives way to the log's
            sys.stderr.flush()
        if self.enabled and finished:
            now = time.monotonic()
            rate = self.rate(now)
            log.log(logging.INFO if self.shown else logging.DEBUG, "%s: %s %s in %s (%s %s/s)",
                    self.stage, f"{round(self.done):,}", self.unit, duration(now - self.start),
                    f"{rate:,.{1 if rate < 100 else 0}f}", self.unit)


class FilesProgress(Progress):
    """The progress of reading ``paths`` one after the other, in kB or MB of the files (of
    the compressed bytes, for a .gz): :meth:`files` gives each path with the callback that
    its reader tells how many of its bytes it has read."""

    def __init__(self, stage: str, paths: Sequence[Path], enabled: bool = True):
        self.paths = [Path(p) for p in paths]
        sizes = [p.stat().st_size for p in self.paths]
        self.scale, unit = (1e6, "MB") if sum(sizes) >= 1e7 else (1e3, "kB")
        self.before = list(accumulate(sizes, initial=0))
        super().__init__(stage, sum(sizes) / self.scale, unit, enabled=enabled)

    def files(self) -> Iterator[tuple[Path, Callable[[int], None]]]:
        for path, before in zip(self.paths, self.before):
            yield path, lambda read, before=before: self.set((before + read) / self.scale)

    def close(self, finished: bool = True) -> None:
        if finished:
            self.set(self.total)
        super().close(finished)
