"""Which file stands for each version of a name on one target.

Per version the best file for the target: a wheel by the rank of its best tag, else an
sdist; filtered by requires-python, exclude-newer, no-build/no-binary, yanked status (only
the spec's own exact pin takes a yanked file, PEP 592) and the prerelease policy (PEP 440,
per specifier, unless the spec itself names a pre-release).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version

from envspec.errors import EnvspecError
from envspec.index.releases import Releases
from envspec.index.simple import parse_filename
from envspec.model import Artifact, Index, Resolution, Target, Yank
from envspec.resolve.lazy import Lazy


class Listing(Protocol):
    """Where files come from (the index finder)."""

    def route(self, name: NormalizedName, routed: str | None) -> Index | None: ...
    def files(self, name: NormalizedName, index: Index) -> list[Artifact]: ...
    def releases(self, name: NormalizedName, index: Index) -> Releases: ...
    def every_file(
        self, name: NormalizedName, index: Index, version: Version | None = None
    ) -> list[Artifact]: ...


@dataclass(kw_only=True, slots=True)
class FileChoice:
    """The candidate files of every name for one target (memoized per name)."""

    target: Target
    listing: Listing
    settings: Resolution
    routes: Mapping[NormalizedName, str] = field(default_factory=dict)
    used_indexes: dict[NormalizedName, Index | None] = field(default_factory=dict)
    _fast_rank: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # per name, the file that fits best of each release asked about (None: none fits)
    _best: dict[NormalizedName, dict[Version, Artifact | None]] = field(default_factory=dict)
    _releases: dict[NormalizedName, Releases | None] = field(default_factory=dict)
    # per name: the rank of an sdist (None: not built, no-build) and whether no-binary
    _builds: dict[NormalizedName, tuple[int | None, bool]] = field(default_factory=dict)
    _python: Version = field(init=False)
    _python_ok: dict[str, bool] = field(default_factory=dict)
    _suffix_rank: dict[str, int | None] = field(default_factory=dict)
    _takes_pre: dict[tuple[NormalizedName, str], bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._python = Version(self.target.python_full_version)
        self._fast_rank = {
            (t.interpreter, t.abi, t.platform): i for i, t in enumerate(self.target.tags)
        }

    def versions(
        self,
        name: NormalizedName,
        specifiers: Sequence[SpecifierSet],
        bad: set[Version],
        user: Sequence[SpecifierSet] = (),
        first: Version | None = None,
    ) -> Lazy[tuple[Version, Artifact]]:
        """Every acceptable version of `name` with the best file for the target, newest
        first (`first`, a previous lock's pin, ahead of all when acceptable), computed as far
        as it is read (see `lazy`). `user` are the specifiers the spec itself sets (phase
        requirements, constraints): only they opt into a yanked release or into pre-releases
        a dependency's bounds would exclude."""
        found = self._acceptable(name, specifiers, bad, user)
        if (
            first is not None
            and self.best_file(name, first) is not None
            and first not in bad
            and all(spec.contains(first, prereleases=True) for spec in specifiers)
        ):
            found = _first(found, first)
        return Lazy(found)

    def _acceptable(
        self,
        name: NormalizedName,
        specifiers: Sequence[SpecifierSet],
        bad: set[Version],
        user: Sequence[SpecifierSet],
    ) -> Iterator[tuple[Version, Artifact]]:
        exact = {
            Version(s.version)
            for spec in user
            for s in spec
            if s.operator in ("==", "===") and "*" not in s.version and _is_version(s.version)
        }
        texts = [str(spec) for spec in specifiers]
        checks = [
            (spec, _ADMITS.setdefault(text, {}))
            for spec, text in zip(specifiers, texts, strict=True)
        ]
        best = self.best_file

        def ok(version: Version) -> Artifact | None:
            if version in bad:
                return None
            for spec, known in checks:
                verdict = known.get(version)
                if verdict is None:
                    verdict = known[version] = spec.contains(version, prereleases=True)
                if not verdict:
                    return None
            artifact = best(name, version)
            if artifact is None or not (
                artifact.yanked is Yank.LIVE or _matches_exact(version, exact)
            ):
                return None
            return artifact

        rule = self._prerelease_rule(name, specifiers, user)
        bounds = _bounds(specifiers, texts)
        any_final = False
        for version in self._walk(name, bounds):
            if (rule == "all" or not version.is_prerelease) and (artifact := ok(version)):
                any_final = any_final or not version.is_prerelease
                yield version, artifact
        if rule == "finals, else all" and not any_final:  # PEP 440: pre-releases if necessary
            for version in self._walk(name, bounds):
                if version.is_prerelease and (artifact := ok(version)):
                    yield version, artifact

    def _walk(self, name: NormalizedName, bounds: Bounds) -> Iterator[Version]:
        """The releases of `name` that can meet specifiers with these `bounds`, newest first:
        with an `==` pin only its public version's, and none below a `>=` floor. Else a pin
        walks past every release (unsloth's 260) to its own, and unsloth's `unsloth_zoo>=X`
        past every release older than X, each one failing."""
        pinned, floor = bounds
        if pinned is None:
            versions = self._order(name)
        else:
            releases = self._listed_releases(name)
            versions = iter(releases.same_public(pinned)) if releases is not None else iter(())
        # newest first: once below the floor, every older release is below it too
        return versions if floor is None else itertools.takewhile(floor.__le__, versions)

    def _order(self, name: NormalizedName) -> Iterator[Version]:
        """The releases of `name` on its index, newest first, whether or not a file fits."""
        releases = self._listed_releases(name)
        return releases.versions() if releases is not None else iter(())

    def _prerelease_rule(
        self, name: NormalizedName, specifiers: Sequence[SpecifierSet], user: Sequence[SpecifierSet]
    ) -> str:
        """Which versions the prerelease policy lets through: "all", "finals", or "finals,
        else all" (pre-releases only when no final release is acceptable)."""
        policy = self.settings.prereleases
        if policy == "disallow":  # as uv's: none, even where a requirement names one
            return "finals"
        if policy == "allow" or any(spec.prereleases for spec in user):
            return "all"
        # PEP 440, per specifier: each requirement that bounds the version must admit
        # pre-releases, so a dependency's `c==2.0b1` does not override another's `c>=1,<=3`.
        bounded = [spec for spec in specifiers if len(spec)]
        if not bounded:
            return "finals, else all"
        return "all" if all(self._admits_prereleases(name, s) for s in bounded) else "finals"

    def takes_prereleases(self, name: NormalizedName, specifiers: Sequence[SpecifierSet]) -> bool:
        """Whether the prerelease policy lets pre-releases through these specifiers."""
        policy = self.settings.prereleases
        if policy != "if-necessary":
            return policy == "allow"
        return all(self._admits_prereleases(name, spec) for spec in specifiers if len(spec))

    def _admits_prereleases(self, name: NormalizedName, spec: SpecifierSet) -> bool:
        """A specifier takes pre-releases when it names one, or when no final release on
        offer satisfies it (PEP 440)."""
        if spec.prereleases:
            return True
        text = str(spec)
        key = (name, text)
        if key not in self._takes_pre:
            self._takes_pre[key] = not any(
                not v.is_prerelease
                and _admits(spec, text, v)
                and (a := self.best_file(name, v)) is not None
                and a.yanked is Yank.LIVE
                for v in self._walk(name, _bounds([spec], [text]))
            )
        return self._takes_pre[key]

    def best_files(self, name: NormalizedName) -> dict[Version, Artifact]:
        """Per version, newest first, the file that fits the target best (an error path's
        question: resolution asks `best_file` of the releases it reads)."""
        return {v: a for v in self._order(name) if (a := self.best_file(name, v)) is not None}

    def best_file(self, name: NormalizedName, version: Version) -> Artifact | None:
        """The file of `name` `version` that fits the target best: a wheel by tag rank, else
        an sdist; None when none fits (or the index lists no such release)."""
        known = self._best.get(name)
        if known is None:
            known = self._best[name] = {}
        elif version in known:
            return known[version]
        releases = self._listed_releases(name)
        found = None if releases is None else self._pick(name, releases.files(version))
        known[version] = found
        return found

    def _listed_releases(self, name: NormalizedName) -> Releases | None:
        if name not in self._releases:
            if name not in self.used_indexes:
                self.used_indexes[name] = self.listing.route(name, self.routes.get(name))
            index = self.used_indexes[name]
            self._releases[name] = None if index is None else self.listing.releases(name, index)
        return self._releases[name]

    def wheels_barred(self, name: NormalizedName) -> bool:
        """Whether `[resolution] no-binary` keeps `name`'s wheels out."""
        return not self.settings.takes_wheels(name)

    def _pick(self, name: NormalizedName, files: Sequence[Artifact]) -> Artifact | None:
        if name not in self._builds:
            self._builds[name] = (
                len(self.target.tags) if self.settings.builds(name) else None,
                not self.settings.takes_wheels(name),
            )
        sdist_rank, no_binary = self._builds[name]
        best: tuple[int, Artifact] | None = None
        for artifact in files:
            if artifact.kind != "wheel":
                rank = sdist_rank
            elif no_binary or (tags := _wheel_tags(artifact.filename)) is None:
                continue
            else:
                rank = self._wheel_rank(tags)
            if rank is None or not self._allowed(artifact):
                continue
            if best is None or rank < best[0]:
                best = (rank, artifact)
        return None if best is None else best[1]

    def _allowed(self, artifact: Artifact) -> bool:
        if self.settings.exclude_newer is not None and self.settings.too_new(artifact):
            return False
        hint = artifact.requires_python
        if hint and hint not in self._python_ok:
            try:
                self._python_ok[hint] = SpecifierSet(hint).contains(self._python, prereleases=True)
            except InvalidSpecifier:
                self._python_ok[hint] = True  # unreadable: the metadata's Requires-Python decides
        return not hint or self._python_ok[hint]

    def _wheel_rank(self, tags: str) -> int | None:
        """The best rank on the target of a wheel's tags (its filename's last three fields,
        see `_wheel_tags`), memoized: a few hundred combinations cover a whole resolution."""
        if tags not in self._suffix_rank:
            ranks = [
                self._fast_rank[key]
                for key in itertools.product(*(p.split(".") for p in tags.split("-")))
                if key in self._fast_rank
            ]
            self._suffix_rank[tags] = min(ranks) if ranks else None
        return self._suffix_rank[tags]

    def listed(self, name: NormalizedName) -> dict[Version, list[Artifact]]:
        """Every version the routed index lists for `name`, with all its files, whether or
        not they fit the target: what an explanation of "no file fits" looks at."""
        index = self.used_indexes.get(name)
        out: dict[Version, list[Artifact]] = {}
        try:
            every = self.listing.every_file(name, index) if index else []
        except EnvspecError:  # offline, or the index failed since: explain with what fits
            every = list(self.listing.files(name, index)) if index else []
        for artifact in every:
            parsed = parse_filename(artifact.filename)
            if parsed is not None and parsed[0] == name:
                out.setdefault(parsed[1], []).append(artifact)
        return out

    def sibling_wheels(self, name: NormalizedName, version: Version) -> list[Artifact]:
        """Wheels of a version for any platform (metadata stand-ins for an sdist)."""
        index = self.used_indexes.get(name)
        every = self.listing.every_file(name, index, version) if index else []
        return [artifact for artifact in every if artifact.kind == "wheel"]


# a specifier's text → its verdict on each version it was asked about, for every target
_ADMITS: dict[str, dict[Version, bool]] = {}
# What bounds the versions a set of specifiers admits: a version pinned with `==` (only
# releases of that public version can match) and the highest `>=` floor (no release below it
# can), each None when there is none. Neither has a wildcard or a local label.
Bounds = tuple[Version | None, Version | None]
_BOUNDS: dict[str, Bounds] = {}  # a specifier's text → its bounds


def _bounds(specifiers: Sequence[SpecifierSet], texts: Sequence[str]) -> Bounds:
    """The bounds of `specifiers` together (`texts`: their texts)."""
    pinned = floor = None
    for spec, text in zip(specifiers, texts, strict=True):
        known = _BOUNDS.get(text)
        if known is None:
            known = _BOUNDS[text] = _bounds_of(spec)
        pinned = pinned or known[0]
        if known[1] is not None and (floor is None or known[1] > floor):
            floor = known[1]
    return pinned, floor


def _bounds_of(spec: SpecifierSet) -> Bounds:
    def plain(version: str) -> bool:
        return "*" not in version and "+" not in version and _is_version(version)

    pins = [Version(s.version) for s in spec if s.operator == "==" and plain(s.version)]
    floors = [Version(s.version) for s in spec if s.operator == ">=" and plain(s.version)]
    return (pins[0] if pins else None), max(floors, default=None)


def _admits(spec: SpecifierSet, text: str, version: Version) -> bool:
    """`spec` (whose text is `text`) on `version`, pre-releases included, asked once."""
    known = _ADMITS.setdefault(text, {})
    verdict = known.get(version)
    if verdict is None:
        verdict = known[version] = spec.contains(version, prereleases=True)
    return verdict


# a wheel's filename → its last three fields, lower-cased (None: not a wheel's name): read
# without a full parse (most files on a big page fit no target), once for every target
_TAGS: dict[str, str | None] = {}


def _wheel_tags(filename: str) -> str | None:
    found = _TAGS.get(filename, "")
    if found == "":
        parts = filename[:-4].rsplit("-", 3)
        found = None if len(parts) < 4 or "-" not in parts[0] else "-".join(parts[1:]).lower()
        _TAGS[filename] = found
    return found


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def _first(
    found: Iterator[tuple[Version, Artifact]], first: Version
) -> Iterator[tuple[Version, Artifact]]:
    """`found` with the item of version `first` moved ahead of all, when it has one."""
    held = []
    for item in found:
        if item[0] == first:
            yield item
            break
        held.append(item)
    yield from held
    yield from found


def _matches_exact(version: Version, exact: set[Version]) -> bool:
    """A yanked file is taken only for an exact pin (PEP 592), local labels aside."""
    return version in exact or Version(version.public) in exact
