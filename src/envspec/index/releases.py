"""`Releases`: one project's files on an index, grouped by release, newest release first,
each release's `Artifact`s made when that release is first asked for.

A resolution reads a handful of releases of each name (641 of the 29,247 the seed stack's
pages list over its three targets), but a page lists every release there has been: making an
`Artifact` for each of a page's rows, and ranking each release's files for each target, was
a third of an offline lock. Ordering the releases (which needs only their versions) is done
once per page for every target; the rows of a release become `Artifact`s on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from packaging.version import Version

from envspec.model import Artifact

Row = TypeVar("Row")


class Releases(Generic[Row]):
    """The releases of one project, newest first, each with its files (in page order)
    made by `make` from the rows kept for it; thread-safe (a release is made once)."""

    __slots__ = ("_lock", "_made", "_make", "_rows", "order")

    def __init__(self, rows: dict[Version, list[Row]], make: Callable[[Row], Artifact]) -> None:
        self.order: tuple[Version, ...] = tuple(sorted(rows, reverse=True))
        self._rows = rows
        self._make = make
        self._made: dict[Version, tuple[Artifact, ...]] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.order)

    def files(self, version: Version) -> tuple[Artifact, ...]:
        """The files of release `version` (none when the page lists no such release)."""
        made = self._made.get(version)
        if made is None:
            with self._lock:
                made = self._made.get(version)
                if made is None:
                    made = tuple(map(self._make, self._rows.get(version, ())))
                    self._made[version] = made
        return made

    def every(self) -> Iterator[Artifact]:
        """Every file, newest release first."""
        for version in self.order:
            yield from self.files(version)


def _same(artifact: Artifact) -> Artifact:
    return artifact


def of_artifacts(
    artifacts: Iterable[Artifact], identify: Callable[[str], tuple[str, Version] | None], name: str
) -> Releases[Artifact]:
    """The files of `artifacts` whose filenames `identify` names as project `name`."""
    rows: dict[Version, list[Artifact]] = {}
    for artifact in artifacts:
        found = identify(artifact.filename)
        if found is not None and found[0] == name:
            rows.setdefault(found[1], []).append(artifact)
    return Releases(rows, _same)
