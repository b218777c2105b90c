"""Where a run's time goes: seconds per stage, for the log line a run ends with and for
bench/bench_run.py."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator


class Stopwatch:
    """Exclusive seconds per named stage: a stage entered inside another is not counted
    in the outer one (model loading inside scoring counts as loading only). Stages are
    listed in the order they first started."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stack: list[list] = []

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        entry = [name, time.perf_counter(), 0.0]  # name, start, time spent in inner stages
        self.seconds.setdefault(name, 0.0)
        self._stack.append(entry)
        try:
            yield
        finally:
            self._stack.pop()
            elapsed = time.perf_counter() - entry[1]
            self.seconds[name] += elapsed - entry[2]
            if self._stack:
                self._stack[-1][2] += elapsed

    def summary(self) -> str:
        return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.seconds.items())
