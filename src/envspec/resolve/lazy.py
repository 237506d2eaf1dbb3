"""`Lazy`: a sequence computed only as far as it is read, and kept, so it can be walked from
the start again and again.

A name's acceptable versions (and the candidates made of them) are asked for thousands of
times while resolvelib backtracks and the pruner looks ahead, but almost every walk stops at
the first or second item: computing the whole list (a specifier checked against every
version of a name, a candidate built for each) was most of the work. A `Lazy` is owned by
one target's resolution, walked by one thread. `itertools.tee` walks from where the copy was
made, not from the start, and a list must be complete first, hence this small class.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """The items of `source`, computed as they are first read."""

    __slots__ = ("_items", "_source")

    def __init__(self, source: Iterable[T]) -> None:
        self._items: list[T] = []
        self._source: Iterator[T] | None = iter(source)

    def __iter__(self) -> Iterator[T]:
        i = 0
        while i < len(self._items) or self._more():
            yield self._items[i]
            i += 1

    def __bool__(self) -> bool:
        return bool(self._items) or self._more()

    def head(self, n: int) -> list[T]:
        """The first `n` items (fewer when there are not as many)."""
        return self.span(0, n)

    def span(self, start: int, stop: int) -> list[T]:
        """Items `start` to `stop` (exclusive), as far as there are."""
        while len(self._items) < stop and self._more():
            pass
        return self._items[start:stop]

    def is_last(self, i: int) -> bool:
        """Whether item `i` (one already read) is the last."""
        return len(self.span(i + 1, i + 2)) == 0

    def _more(self) -> bool:
        """Compute one more item; False when there is none."""
        if self._source is None:
            return False
        try:
            self._items.append(next(self._source))
        except StopIteration:
            self._source = None
            return False
        return True
