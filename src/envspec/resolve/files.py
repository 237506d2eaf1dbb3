"""Which file stands for each version of a name on one target.

Per version the best file for the target: a wheel by the rank of its best tag, else an
sdist; filtered by requires-python, exclude-newer, no-build/no-binary, yanked status (only
the spec's own exact pin takes a yanked file, PEP 592) and the prerelease policy (PEP 440,
per specifier, unless the spec itself names a pre-release).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from envspec.errors import EnvspecError
from envspec.index.simple import parse_filename
from envspec.model import Artifact, Index, Resolution, Target, Yank


class Listing(Protocol):
    """Where files come from (the index finder)."""

    def route(self, name: NormalizedName, routed: str | None) -> Index | None: ...
    def files(self, name: NormalizedName, index: Index) -> list[Artifact]: ...
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
    _tag_rank: dict[Tag, int] = field(default_factory=dict)
    _fast_rank: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _best: dict[NormalizedName, dict[Version, Artifact]] = field(default_factory=dict)
    _python_ok: dict[str, bool] = field(default_factory=dict)
    _suffix_rank: dict[str, int | None] = field(default_factory=dict)
    _match_memo: dict[tuple[NormalizedName, str], frozenset[Version]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._tag_rank = {tag: i for i, tag in enumerate(self.target.tags)}
        self._fast_rank = {
            (t.interpreter, t.abi, t.platform): i for i, t in enumerate(self.target.tags)
        }

    def versions(
        self,
        name: NormalizedName,
        specifiers: Sequence[SpecifierSet],
        bad: set[Version],
        user: Sequence[SpecifierSet] = (),
    ) -> list[tuple[Version, Artifact]]:
        """Every acceptable version of `name` with the best file for the target. `user` are
        the specifiers the spec itself sets (phase requirements, constraints): only they opt
        into a yanked release or into pre-releases a dependency's bounds would exclude."""
        best = self.best_files(name)
        exact = {
            Version(s.version)
            for spec in user
            for s in spec
            if s.operator in ("==", "===") and "*" not in s.version and _is_version(s.version)
        }
        allowed = set(best)
        for spec in specifiers:
            allowed &= self._matching(name, spec)
        pool = {
            v: best[v]
            for v in allowed - bad
            if best[v].yanked is Yank.LIVE or _matches_exact(v, exact)
        }
        if any(spec.prereleases for spec in user):
            return list(pool.items())
        return list(self._apply_prereleases(name, pool, specifiers).items())

    def _matching(self, name: NormalizedName, spec: SpecifierSet) -> frozenset[Version]:
        """The versions of `name` a specifier admits (memoized: resolvelib asks again and
        again while it backtracks)."""
        key = (name, str(spec))
        if key not in self._match_memo:
            self._match_memo[key] = frozenset(
                v for v in self.best_files(name) if spec.contains(v, prereleases=True)
            )
        return self._match_memo[key]

    def _apply_prereleases(
        self,
        name: NormalizedName,
        pool: dict[Version, Artifact],
        specifiers: Sequence[SpecifierSet],
    ) -> dict[Version, Artifact]:
        policy = self.settings.prereleases
        if policy == "allow":
            return pool
        finals = {v: a for v, a in pool.items() if not v.is_prerelease}
        if policy == "disallow":
            return finals
        # PEP 440, per specifier: each requirement that bounds the version must admit
        # pre-releases, so a dependency's `c==2.0b1` does not override another's `c>=1,<=3`.
        bounded = [spec for spec in specifiers if len(spec)]
        if not bounded:
            return finals or pool
        admitted = all(self._admits_prereleases(name, spec) for spec in bounded)
        return pool if admitted else finals

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
        best = self.best_files(name)
        return not any(
            not v.is_prerelease and best[v].yanked is Yank.LIVE for v in self._matching(name, spec)
        )

    def best_files(self, name: NormalizedName) -> dict[Version, Artifact]:
        """Per version, the file that fits the target best: a wheel by tag rank, else an sdist."""
        if name not in self._best:
            self._best[name] = self._rank_files(name)
        return self._best[name]

    def _rank_files(self, name: NormalizedName) -> dict[Version, Artifact]:
        if name not in self.used_indexes:
            self.used_indexes[name] = self.listing.route(name, self.routes.get(name))
        index = self.used_indexes[name]
        if index is None:
            return {}
        python = Version(self.target.python_full_version)
        no_build = _listed(name, self.settings.no_build)
        no_binary = _listed(name, self.settings.no_binary)
        sdist_rank = None if no_build else len(self._tag_rank)
        ranked: dict[Version, tuple[int, Artifact]] = {}
        for artifact in self.listing.files(name, index):
            if artifact.kind == "wheel":
                rank = None if no_binary else self._wheel_rank(artifact.filename)
            else:
                rank = sdist_rank
            if rank is None:
                continue
            parsed = parse_filename(artifact.filename)
            if parsed is None or parsed[0] != name or not self._allowed(artifact, python):
                continue
            version = parsed[1]
            if version not in ranked or rank < ranked[version][0]:
                ranked[version] = (rank, artifact)
        return {v: a for v, (_, a) in ranked.items()}

    def _allowed(self, artifact: Artifact, python: Version) -> bool:
        if self.settings.exclude_newer is not None and self.settings.too_new(artifact):
            return False
        hint = artifact.requires_python
        if hint and hint not in self._python_ok:
            try:
                self._python_ok[hint] = SpecifierSet(hint).contains(python, prereleases=True)
            except InvalidSpecifier:
                self._python_ok[hint] = True  # unreadable: the metadata's Requires-Python decides
        return not hint or self._python_ok[hint]

    def _wheel_rank(self, filename: str) -> int | None:
        """The best rank of a wheel's tags on the target, read from the filename's last three
        fields without a full parse (most files on a big page fit no target); memoized by
        those fields, which a few hundred combinations cover for a whole resolution."""
        parts = filename[:-4].rsplit("-", 3)
        if len(parts) < 4 or "-" not in parts[0]:
            return None
        tags = "-".join(parts[1:]).lower()
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
        return [
            artifact
            for artifact in (self.listing.files(name, index) if index else ())
            if artifact.kind == "wheel"
            and (parsed := parse_filename(artifact.filename)) is not None
            and parsed[:2] == (name, version)
        ]


def _listed(name: NormalizedName, names: Sequence[str]) -> bool:
    return ":all:" in names or name in {canonicalize_name(n) for n in names if n != ":all:"}


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def _matches_exact(version: Version, exact: set[Version]) -> bool:
    """A yanked file is taken only for an exact pin (PEP 592), local labels aside."""
    return version in exact or Version(version.public) in exact
