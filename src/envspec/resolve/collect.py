"""Fewer garbage collections while resolving: the one process-wide setting resolution touches.

A resolution allocates millions of small objects (versions, files, requirements, memo
entries) and keeps almost all of them until the lock is made; CPython's collector walks the
young ones every 700 allocations and again each time they are promoted, which was 15-20 % of
an offline seed-stack lock's CPU time while freeing next to nothing. While at least one
resolution runs (the targets of a lock may run in threads), the youngest generation is
collected every `YOUNG` allocations instead; the previous thresholds come back when the last
one ends. Nothing is collected less in total that was garbage: cycles are still found, later.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

YOUNG = 50_000  # allocations between collections of the youngest generation


class _Collector:
    """The process's collector thresholds, raised while any resolution runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._saved = gc.get_threshold()

    def enter(self) -> None:
        with self._lock:
            if self._running == 0:
                self._saved = gc.get_threshold()
                if 0 < self._saved[0] < YOUNG:  # 0: collection is off; leave it so
                    gc.set_threshold(YOUNG, *self._saved[1:])
            self._running += 1

    def leave(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                gc.set_threshold(*self._saved)


_COLLECTOR = _Collector()


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect the youngest generation every `YOUNG` allocations within this block."""
    _COLLECTOR.enter()
    try:
        yield
    finally:
        _COLLECTOR.leave()
