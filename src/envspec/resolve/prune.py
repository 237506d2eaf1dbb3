"""Doomed candidates: versions that can never be part of a solution on this target.

A candidate is doomed when one of its dependencies has no viable version once the spec's own
requirements on that name (always present on the target) and the constraints are applied —
for example an opencv-python release needing numpy>=2 under a phase's numpy<2, and then every
mlx-vlm release needing only such opencv-python releases. resolvelib learns nothing across
backtracks, so without this it would rediscover the same dead end under every unrelated
choice made since; skipping doomed candidates up front keeps that walk short.

Sound by construction: the look-ahead is depth-limited and a cycle or the limit counts as
viable, so a candidate is only ever skipped on a proof. A verdict of viable that rests on the
limit is kept with how far it looked, and looked at again when the version is asked about
from higher up (resolvelib asking about it itself): on the seed stack's macos-arm64 target
that proves unsloth-zoo 2026.10.9 doomed up front, where resolvelib used to find it out by
68 backjumps, one per unsloth release down to 2026.5.2 (the lock is the same).

The pruner also decides which metadata is read ahead while it and resolvelib walk version
lists (`_ahead`, `_next_unknown`, `_below`): a cold lock is a chain of round trips, and each
version a walk will reach that is already fetched is one the chain does not wait for.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import Version

from envspec.model import Artifact
from envspec.resolve.lazy import Lazy
from envspec.resolve.values import PSEUDO, PYTHON, UNUSABLE, Candidate, Req

T = TypeVar("T")
DEPTH = 3
WINDOW = 4  # candidates whose metadata is fetched ahead while a list is walked
AHEAD = 1  # versions per dependency whose metadata is fetched ahead of the look-ahead
SURE = DEPTH + 1  # a verdict that no deeper look can change


@dataclass(kw_only=True, slots=True)
class Pruner:
    """Memoized doom checks for one target's resolution."""

    python: Version
    dependencies: Callable[[Candidate], Iterable[Req]]
    versions: Callable[[NormalizedName, Sequence[SpecifierSet]], Iterable[tuple[Version, Artifact]]]
    make: Callable[[NormalizedName, Version, Artifact], Candidate]
    fixed: Mapping[NormalizedName, Sequence[Req]] = field(default_factory=dict)
    direct: Collection[NormalizedName] = ()  # names the spec requires by URL: never on an index
    # starts fetching metadata; None when nothing is fetched (offline): then what would
    # be read ahead is not even worked out (it means walking version lists further)
    prefetch: Callable[[Iterable[Artifact]], None] | None = None
    # (identifier, version) → the dependency at the bottom of its dead end (None: viable),
    # and how many levels below it a verdict of viable holds (`SURE`: at any depth)
    _memo: dict[tuple[str, Version], tuple[Req | None, int]] = field(default_factory=dict)
    # (identifier, version) → its own dependency that leads there
    _via: dict[tuple[str, Version], Req] = field(default_factory=dict)
    _versions_memo: dict[tuple[str, str], Lazy[tuple[Version, Artifact]]] = field(
        default_factory=dict
    )
    _walked: dict[str, set[Version]] = field(default_factory=dict)  # identifier → walked

    def alive(self, candidates: Iterable[Candidate]) -> Callable[[], Iterator[Candidate]]:
        """A re-iterable view of `candidates` without the doomed ones (checked lazily, as
        resolvelib walks the list)."""
        walked = _lazy(candidates)
        return lambda: self._walk(walked)

    def _walk(self, candidates: Lazy[Candidate]) -> Iterator[Candidate]:
        for i, candidate in enumerate(candidates):
            # Backtracking walks down a name's versions: fetch what comes next, ahead by as
            # many as `_ahead` says for the versions walked. Counted per name, distinct
            # versions over every list of it: after a backjump resolvelib asks again and
            # walks a new list, from the next version down.
            walked = self._walked.get(candidate.key)
            if walked is None:
                walked = self._walked[candidate.key] = set()
            if candidate.version not in walked:
                walked.add(candidate.version)
                if self.prefetch is not None:
                    self._read_ahead(candidates, i, len(walked) - 1, self.prefetch)
            if not self.doomed(candidate):
                yield candidate

    def _read_ahead(
        self,
        candidates: Lazy[Candidate],
        i: int,
        walked: int,
        prefetch: Callable[[Iterable[Artifact]], None],
    ) -> None:
        """Fetch what a walk down `candidates`, at its `i`-th after `walked` versions of its
        name, reaches next."""
        candidate = candidates.span(i, i + 1)[0]  # already computed: the walk is at it
        if ahead := _ahead(walked):
            prefetch(_wheels(c.artifact for c in candidates.span(i, i + ahead)))
        if i and candidates.is_last(i):  # a widening requirement: see `_below`
            count = _ahead(walked) or walked
            prefetch(_wheels(self._below(candidate.name, candidate.version, count)))

    def doomed(self, candidate: Candidate) -> bool:
        return self._culprit(candidate) is not None

    def culprit(self, requirement: Req) -> Req | None:
        """When every version `requirement` admits is doomed: the dependency at the bottom of
        the newest one's dead end, to explain the conflict with. Else None."""
        found = self._matching(requirement).head(1)
        if not found:
            return None
        return self._culprit(self.make(requirement.name, *found[0]))

    def dooming(self, requirement: Req) -> list[Req] | None:
        """Why every version `requirement` admits is doomed: each one's own dependency that
        leads to its dead end, newest first; [] when it admits no version at all; None when
        one of them is viable (or `requirement` is not an index requirement)."""
        if requirement.key in PSEUDO or requirement.url is not None or requirement.constraint:
            return None
        out = []
        for version, artifact in self._matching(requirement):
            candidate = self.make(requirement.name, version, artifact)
            if self._culprit(candidate) is None:
                return None
            out.append(self._via[(candidate.key, candidate.version)])
        return out

    def _matching(self, dep: Req) -> Lazy[tuple[Version, Artifact]]:
        # keyed by its specifier's text, without rendering it again
        return self._versions_of(dep.name, dep.text, [dep.specifier])

    def _versions_of(
        self, name: NormalizedName, text: str, specifiers: Sequence[SpecifierSet]
    ) -> Lazy[tuple[Version, Artifact]]:
        """The versions of `name` that `specifiers` (whose text is `text`) and the spec's own
        pins admit, memoized by `text`."""
        key = (name, text)
        if key not in self._versions_memo:
            fixed = [r.specifier for r in self.fixed.get(name, ())]
            self._versions_memo[key] = _lazy(self.versions(name, [*specifiers, *fixed]))
        return self._versions_memo[key]

    def _culprit(self, candidate: Candidate) -> Req | None:
        """The bottom of `candidate`'s dead end within the look-ahead's depth; None: viable."""
        return self._verdict(candidate, DEPTH)[0]

    def _verdict(self, candidate: Candidate, budget: int) -> tuple[Req | None, int]:
        """The bottom of `candidate`'s dead end (None: viable), looking at most `budget`
        levels below it; and how many levels a verdict of viable holds for (`SURE`: all). A
        viable found by a shallower look (this version first met below another) is looked at
        again with the deeper one: unsloth-zoo 2026.10.9, met below an unsloth release, is
        viable as far as that look goes, and its own look finds the dead end three levels
        down (mlx-vlm, opencv-python, numpy>=2 under the spec's numpy<2)."""
        key = (candidate.key, candidate.version)
        known = self._memo.get(key)
        if known is not None and (known[0] is not None or known[1] >= budget):
            return known
        if budget <= 0:
            return None, 0
        if candidate.url is not None:
            return None, SURE
        self._memo[key] = (None, SURE)  # a cycle counts as viable
        deps = list(self.dependencies(candidate))
        if budget > 1 and self.prefetch is not None:
            self._prefetch(deps, self.prefetch)
        sure = SURE
        for dep in deps:
            found, holds = self._dead_end(dep, budget - 1)
            if found is not None:
                self._memo[key], self._via[key] = (found, SURE), dep
                return found, SURE
            if holds < SURE:  # viable only as far as the look went
                sure = budget
        self._memo[key] = (None, sure)
        return None, sure

    def _prefetch(
        self, deps: Iterable[Req], prefetch: Callable[[Iterable[Artifact]], None]
    ) -> None:
        """Start fetching the metadata the look-ahead is about to read, all at once rather
        than one round trip at a time."""
        wanted = []
        for dep in deps:
            if dep.key not in PSEUDO and dep.url is None and dep.name not in self.direct:
                wanted += self._next_unknown(dep)
        prefetch(_wheels(wanted))

    def _next_unknown(self, dep: Req) -> list[Artifact]:
        """The files of the first AHEAD versions `dep` admits that the look-ahead will read:
        past the ones already known doomed (a backtrack widens a requirement one version at
        a time, so the newest are known and the one it needs is the lowest)."""
        found: list[Artifact] = []
        matching = self._matching(dep)
        for i, (version, artifact) in enumerate(matching):
            verdict = self._memo.get((dep.name, version))
            if verdict is not None and verdict[0] is None:  # viable: the look-ahead stops here
                break
            if verdict is None:
                found.append(artifact)
                if i and matching.is_last(i):
                    found += self._below(dep.name, version, _ahead(i) or i)
                if len(found) >= AHEAD:
                    break
        return found

    def _below(self, name: NormalizedName, version: Version, count: int) -> list[Artifact]:
        """The files of the `count` versions of `name` right below `version`. When all but
        the last version a requirement admits are doomed, a backtrack is widening it one
        version at a time (unsloth's `unsloth_zoo>=` as unsloth goes down): the next ones
        it will admit are read ahead rather than one round trip each."""
        every = self._versions_of(name, "", [])  # every version: no requirement's text is ""
        at = next((i for i, (v, _) in enumerate(every) if v == version), None)
        return [] if at is None else [a for _, a in every.span(at + 1, at + 1 + count)]

    def _dead_end(self, dep: Req, budget: int) -> tuple[Req | None, int]:
        """(None, how far that holds) when `dep` can be met, looking `budget` levels below
        it; else the requirement at the bottom of its dead end."""
        if dep.key == PYTHON:
            return (None if dep.specifier.contains(self.python, prereleases=True) else dep), SURE
        if dep.key == UNUSABLE:
            return dep, SURE
        if dep.url is not None or dep.name in self.direct or dep.constraint:
            return None, SURE  # a rule's constraint is met by the name's absence
        bottom: Req | None = dep
        found = self._matching(dep)
        for i, (version, artifact) in enumerate(found):
            # the first was read ahead by `_prefetch`
            if i and self.prefetch is not None and (ahead := _ahead(i)):
                self.prefetch(_wheels(a for _, a in found.span(i, i + ahead)))
            culprit, holds = self._verdict(self.make(dep.name, version, artifact), budget)
            if culprit is None:
                return None, holds
            bottom = culprit if bottom is dep else bottom
        return bottom, SURE


def _ahead(walked: int) -> int:
    """How many versions to read ahead from the next one, when `walked` versions of a list
    have been walked already: most walks stop at the first, long ones go far, so the window
    grows with the walk (1 + `walked`, at most 2 * WINDOW + 1), read at walks of 0, 1 and 3
    and then every WINDOW versions; 0 between."""
    if (walked < WINDOW and not walked & (walked + 1)) or walked % WINDOW == 0:
        return 1 + min(walked, 2 * WINDOW)
    return 0


def _lazy(items: Iterable[T]) -> Lazy[T]:
    return items if isinstance(items, Lazy) else Lazy(items)


def _wheels(artifacts: Iterable[Artifact | None]) -> list[Artifact]:
    """Only wheels are read ahead: an sdist's metadata costs the whole sdist."""
    return [a for a in artifacts if a is not None and a.kind == "wheel"]
