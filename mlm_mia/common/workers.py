"""Work on notes spread over processes: each batch of notes goes to a worker process, and
the results come back in input order, so the outputs are the same byte for byte whatever
the number of processes. At most a few batches are in flight: memory stays bounded on a
4 GB input."""

from __future__ import annotations

import multiprocessing
from collections import deque
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, TypeVar

K = TypeVar("K")
BATCH = 256  # notes per task


class Workers:
    """``processes`` worker processes (none for 1: the work is done in this process)."""

    def __init__(self, processes: int = 1):
        self.processes = max(1, processes)
        self._pool = None

    def __enter__(self) -> Workers:
        if self.processes > 1:
            self._pool = multiprocessing.get_context("fork").Pool(self.processes)
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def map(self, function: Callable[[list], list], items: Iterable[tuple[K, Any]]
            ) -> Iterator[tuple[K, Any]]:
        """``(key, result)`` for each ``(key, payload)`` of ``items``, in order, where
        ``function`` maps a list of payloads to the list of their results (a module-level
        function: it is sent to the workers by name)."""
        iterator = iter(items)
        batches = iter(lambda: list(islice(iterator, BATCH)), [])
        if self._pool is None:
            for batch in batches:
                yield from zip((k for k, _ in batch), function([p for _, p in batch]))
            return
        pending: deque = deque()
        for batch in batches:
            pending.append(([k for k, _ in batch], self._pool.apply_async(function, ([p for _, p in batch],))))
            if len(pending) >= 2 * self.processes:
                keys, result = pending.popleft()
                yield from zip(keys, result.get())
        while pending:
            keys, result = pending.popleft()
            yield from zip(keys, result.get())
