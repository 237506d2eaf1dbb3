"""Which of a distribution's Requires-Dist lines a candidate wants, decided once per marker
and read off for a whole release without a step of Python per line.

A candidate wants a line when its marker holds on the target: the plain name with no extra,
a name with extras with one of them and not without (`Provider._wants`). The answer depends
only on the marker and the extras, and markers are one object per distinct text
(`index.requires`), so each (marker, extras) is decided once per target (`Wanted`). A
release's lines are mapped to their answers by `itertools.compress` over its markers' ids,
once per sequence of markers: a package's releases repeat their markers in the same order.
Asked line by line, as before, each line cost a memo lookup in Python for every candidate: an
unsloth release lists ~480 lines under 155 markers, and an offline lock of the seed stack
reads 69 releases, each as `unsloth` and as `unsloth[colab-new]`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import compress

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import NormalizedName

Decide = Callable[[Marker | None, frozenset[NormalizedName]], bool]
_MARKER = operator.attrgetter("marker")


class Wanted(dict[int, bool]):
    """A marker's id → whether a candidate with one set of extras wants the lines under it,
    decided (`decide`) the first time the id is looked up."""

    __slots__ = ("_decide", "_extras", "_markers")

    def __init__(
        self,
        markers: dict[int, Marker | None],
        decide: Decide,
        extras: frozenset[NormalizedName],
    ) -> None:
        super().__init__()
        self._markers, self._decide, self._extras = markers, decide, extras

    def __missing__(self, key: int) -> bool:
        found = self[key] = self._decide(self._markers[key], self._extras)
        return found


@dataclass(kw_only=True, slots=True)
class LineIndex:
    """One target's answers: each Requires-Dist's marker ids (by the tuple's identity; the
    entry holds it), every marker seen (by id; held, so ids stay theirs), one `Wanted` per set
    of extras, and the wanted positions per (marker ids, extras): releases of a package repeat
    their markers in the same order (77 unsloth releases have 13 such sequences)."""

    decide: Decide
    _ids: dict[int, tuple[Sequence[Requirement], tuple[int, ...]]] = field(default_factory=dict)
    _markers: dict[int, Marker | None] = field(default_factory=dict)
    _sequences: dict[tuple[int, ...], tuple[int, ...]] = field(default_factory=dict)
    _wanted: dict[frozenset[NormalizedName], Wanted] = field(default_factory=dict)
    _positions: dict[tuple[int, frozenset[NormalizedName]], tuple[int, ...]] = field(
        default_factory=dict
    )

    def wanted(
        self, requires: Sequence[Requirement], extras: frozenset[NormalizedName]
    ) -> tuple[int, ...]:
        """The positions of the lines of `requires` a candidate with `extras` wants, in
        order."""
        known = self._ids.get(id(requires))
        if known is None:
            known = self._ids[id(requires)] = (requires, self._sequence(requires))
        sequence = known[1]
        key = (id(sequence), extras)  # `_sequences` holds it
        found = self._positions.get(key)
        if found is None:
            table = self._wanted.get(extras)
            if table is None:
                table = self._wanted[extras] = Wanted(self._markers, self.decide, extras)
            lines = range(len(requires))
            found = self._positions[key] = tuple(compress(lines, map(table.__getitem__, sequence)))
        return found

    def _sequence(self, requires: Sequence[Requirement]) -> tuple[int, ...]:
        """The ids of the markers of `requires`, one tuple per distinct sequence."""
        markers = list(map(_MARKER, requires))
        ids = tuple(map(id, markers))
        known = self._sequences.get(ids)
        if known is None:
            self._markers.update(zip(ids, markers, strict=True))
            known = self._sequences[ids] = ids
        return known
