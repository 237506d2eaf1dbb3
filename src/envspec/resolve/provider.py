"""The resolvelib provider: requirements, candidates and preferences for one target.

The provider does no I/O of its own: files and metadata come through a `Source` (the
index finder in production), so the provider is the pure rules of resolution — routing,
wheel-tag fit, requires-python, yanked files, prereleases, exclude-newer, constraints,
overrides and kept pins.

Identifiers are a canonical name, `name[extra,...]` for a name with extras (whose candidate
depends on the plain name pinned to the same version, as pip does), and `<python>` for the
target interpreter, so a wheel's `Requires-Python` takes part in backtracking like any
other requirement.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version
from resolvelib import AbstractProvider
from resolvelib.structs import RequirementInformation

from envspec.errors import BuildNeeded
from envspec.model import Artifact, DependencyMetadata, DistMetadata, Index, Resolution, Target

log = logging.getLogger("envspec")
PYTHON = "<python>"
# How many of a name's best candidates get their metadata fetched ahead of need.
PREFETCH_AHEAD = 3


class Source(Protocol):
    """Where candidates and their metadata come from (the index finder)."""

    def route(self, name: NormalizedName, routed: str | None) -> Index | None: ...
    def files(self, name: NormalizedName, index: Index) -> list[Artifact]: ...
    def metadata(self, artifact: Artifact) -> DistMetadata: ...
    def prefetch_metadata(self, artifacts: Iterable[Artifact]) -> None: ...
    def prefetch_files(self, names: Iterable[tuple[NormalizedName, str | None]]) -> None: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Origin:
    """Who asked for a requirement: a phase of the spec, a constraint, or a package."""

    phase: str | None
    parent: str | None = None  # "name version" of the requiring package; None from the spec

    def describe(self) -> str:
        where = f"phase {self.phase}" if self.phase else "the spec"
        return f"required by {self.parent} ({where})" if self.parent else f"({where})"


@dataclass(frozen=True, kw_only=True, slots=True)
class Req:
    """A requirement as the resolver sees it."""

    key: str
    name: NormalizedName
    extras: frozenset[NormalizedName]
    specifier: SpecifierSet
    origin: Origin
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Candidate:
    """One version of a name (with the extras of its identifier) and the file chosen for it."""

    key: str
    name: NormalizedName
    version: Version
    extras: frozenset[NormalizedName] = frozenset()
    artifact: Artifact | None = None
    index: Index | None = None

    def __repr__(self) -> str:
        return f"{self.key} {self.version}"


def make_key(name: NormalizedName, extras: Iterable[str]) -> str:
    extras = sorted(set(extras))
    return f"{name}[{','.join(extras)}]" if extras else name


def to_req(requirement: Requirement, origin: Origin) -> Req:
    name = canonicalize_name(requirement.name)
    extras = frozenset(canonicalize_name(e) for e in requirement.extras)
    text = str(requirement).split(";", 1)[0].strip()
    return Req(
        key=make_key(name, extras),
        name=name,
        extras=extras,
        specifier=requirement.specifier,
        origin=origin,
        text=text,
    )


@dataclass(kw_only=True, slots=True)
class Provider(AbstractProvider[Req, Candidate, str]):
    """Resolution rules for one target; `routes` maps a name to its phase's explicit index."""

    target: Target
    source: Source
    settings: Resolution
    routes: Mapping[NormalizedName, str] = field(default_factory=dict)
    preferred: Mapping[NormalizedName, Version] = field(default_factory=dict)
    direct: frozenset[NormalizedName] = frozenset()
    constraints: Mapping[NormalizedName, Sequence[Req]] = field(default_factory=dict)
    overrides: Mapping[NormalizedName, Requirement] = field(default_factory=dict)
    declared: Mapping[NormalizedName, DependencyMetadata] = field(default_factory=dict)
    phase_of: dict[str, str] = field(default_factory=dict)
    used_indexes: dict[NormalizedName, Index | None] = field(default_factory=dict)
    _tag_rank: dict[Tag, int] = field(default_factory=dict)
    _best: dict[NormalizedName, dict[Version, Artifact]] = field(default_factory=dict)
    _fast_rank: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _python_ok: dict[str, bool] = field(default_factory=dict)
    _match_memo: dict[tuple[NormalizedName, str], frozenset[Version]] = field(default_factory=dict)
    _deps_memo: dict[tuple[str, Version], list[Req]] = field(default_factory=dict)
    _candidates: dict[tuple[str, Version], Candidate] = field(default_factory=dict)
    _wanted_memo: dict[tuple[int, frozenset[NormalizedName]], tuple[Requirement, bool]] = field(
        default_factory=dict
    )
    _matches_memo: dict[tuple[str, frozenset[str], frozenset[Version]], list[Candidate]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        self._tag_rank = {tag: i for i, tag in enumerate(self.target.tags)}
        self._fast_rank = {
            (t.interpreter, t.abi, t.platform): i for i, t in enumerate(self.target.tags)
        }

    # -- identity ------------------------------------------------------------------------
    def identify(self, requirement_or_candidate: Req | Candidate) -> str:
        return requirement_or_candidate.key

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[RequirementInformation[Req, Candidate]]],
        backtrack_causes: Sequence[RequirementInformation[Req, Candidate]],
    ) -> Any:
        infos = list(information[identifier])
        pinned = any(
            s.operator in ("==", "===") and "*" not in s.version
            for info in infos
            for s in info.requirement.specifier
        )
        direct = any(info.parent is None for info in infos)
        causes = {c.requirement.name for c in backtrack_causes}
        name = identifier.split("[", 1)[0]
        return (
            identifier != PYTHON,
            not pinned,
            name not in causes,
            not direct,
            "[" not in identifier,  # a name with extras before the plain name it pins
            identifier,
        )

    def narrow_requirement_selection(
        self,
        identifiers: Iterable[str],
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[RequirementInformation[Req, Candidate]]],
        backtrack_causes: Sequence[RequirementInformation[Req, Candidate]],
    ) -> Iterable[str]:
        identifiers = list(identifiers)
        if PYTHON in identifiers:
            return [PYTHON]
        causes = {c.requirement.key for c in backtrack_causes} | {
            c.parent.key for c in backtrack_causes if c.parent is not None
        }
        narrowed = [i for i in identifiers if i in causes]
        return narrowed or identifiers

    # -- candidates ----------------------------------------------------------------------
    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Req]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> Iterable[Candidate]:
        reqs = list(requirements[identifier])
        self._note_phase(identifier, reqs)
        if identifier == PYTHON:
            version = Version(self.target.python_full_version)
            ok = all(r.specifier.contains(version, prereleases=True) for r in reqs)
            python = Candidate(key=PYTHON, name=NormalizedName(PYTHON), version=version)
            return [python] if ok else []
        name, extras = reqs[0].name, reqs[0].extras
        bad = {c.version for c in incompatibilities[identifier]}
        specifiers = [r.specifier for r in reqs]
        if extras:  # the plain name's requirements bound its extras too
            specifiers += [r.specifier for r in requirements.get(name, ())]
            bad |= {c.version for c in incompatibilities.get(name, ())}
        specifiers += [c.specifier for c in self.constraints.get(name, ())]
        memo_key = (identifier, frozenset(map(str, specifiers)), frozenset(bad))
        if memo_key not in self._matches_memo:
            found = self._order(name, self._versions(name, specifiers, bad))
            result = [self._candidate(identifier, name, extras, v, a) for v, a in found]
            self._matches_memo[memo_key] = result
            self.source.prefetch_metadata(
                c.artifact for c in result[:PREFETCH_AHEAD] if c.artifact
            )
        return self._matches_memo[memo_key]

    def _candidate(
        self,
        key: str,
        name: NormalizedName,
        extras: frozenset[NormalizedName],
        version: Version,
        artifact: Artifact,
    ) -> Candidate:
        """One object per (identifier, version): resolvelib compares candidates often."""
        memo_key = (key, version)
        if memo_key not in self._candidates:
            self._candidates[memo_key] = Candidate(
                key=key,
                name=name,
                version=version,
                extras=extras,
                artifact=artifact,
                index=self.used_indexes.get(name),
            )
        return self._candidates[memo_key]

    def _order(
        self, name: NormalizedName, found: list[tuple[Version, Artifact]]
    ) -> list[tuple[Version, Artifact]]:
        """Highest version first, with a kept pin from the previous lock ahead of all."""
        found.sort(key=lambda item: item[0], reverse=True)
        keep = self.preferred.get(name)
        if keep is not None:
            found.sort(key=lambda item: item[0] != keep)
        return found

    def _note_phase(self, identifier: str, reqs: Sequence[Req]) -> None:
        for req in reqs:
            if req.origin.phase and identifier not in self.phase_of:
                self.phase_of[identifier] = req.origin.phase

    def _versions(
        self, name: NormalizedName, specifiers: Sequence[SpecifierSet], bad: set[Version]
    ) -> list[tuple[Version, Artifact]]:
        """Every acceptable version of `name` with the best file for the target."""
        best = self._best_files(name)
        exact = {
            Version(s.version)
            for spec in specifiers
            for s in spec
            if s.operator in ("==", "===") and "*" not in s.version and _is_version(s.version)
        }
        allowed = set(best)
        for spec in specifiers:
            allowed &= self._matching(name, spec)
        pool = {
            v: best[v]
            for v in allowed - bad
            if best[v].yanked is None or _matches_exact(v, exact)
        }
        return list(self._apply_prereleases(pool, specifiers).items())

    def _matching(self, name: NormalizedName, spec: SpecifierSet) -> frozenset[Version]:
        """The versions of `name` a specifier admits (memoized: resolvelib asks again and
        again while it backtracks)."""
        key = (name, str(spec))
        if key not in self._match_memo:
            self._match_memo[key] = frozenset(
                v for v in self._best_files(name) if spec.contains(v, prereleases=True)
            )
        return self._match_memo[key]

    def _apply_prereleases(
        self, pool: dict[Version, Artifact], specifiers: Sequence[SpecifierSet]
    ) -> dict[Version, Artifact]:
        policy = self.settings.prereleases
        if policy == "allow":
            return pool
        finals = {v: a for v, a in pool.items() if not v.is_prerelease}
        if policy == "disallow":
            return finals
        explicit = any(spec.prereleases for spec in specifiers)
        return pool if explicit or not finals else finals

    def _best_files(self, name: NormalizedName) -> dict[Version, Artifact]:
        """Per version, the file that fits the target best: a wheel by tag rank, else an sdist."""
        if name not in self._best:
            self._best[name] = self._rank_files(name)
        return self._best[name]

    def _rank_files(self, name: NormalizedName) -> dict[Version, Artifact]:
        if name not in self.used_indexes:
            self.used_indexes[name] = self.source.route(name, self.routes.get(name))
        index = self.used_indexes[name]
        if index is None:
            return {}
        python = Version(self.target.python_full_version)
        no_build = _listed(name, self.settings.no_build)
        no_binary = _listed(name, self.settings.no_binary)
        ranked: dict[Version, tuple[int, Artifact]] = {}
        for artifact in self.source.files(name, index):
            rank_version = self._rank(artifact, name, no_build=no_build, no_binary=no_binary)
            if rank_version is None or not self._allowed(artifact, python):
                continue
            if rank_version is None:
                continue
            version, rank = rank_version
            if version not in ranked or rank < ranked[version][0]:
                ranked[version] = (rank, artifact)
        return {v: a for v, (_, a) in ranked.items()}

    def _allowed(self, artifact: Artifact, python: Version) -> bool:
        cutoff = self.settings.exclude_newer
        if cutoff and artifact.upload_time and artifact.upload_time > cutoff:
            return False
        hint = artifact.requires_python
        if hint and hint not in self._python_ok:
            try:
                self._python_ok[hint] = SpecifierSet(hint).contains(python, prereleases=True)
            except InvalidSpecifier:
                self._python_ok[hint] = True  # unreadable: the metadata's Requires-Python decides
        return not hint or self._python_ok[hint]

    def _rank(
        self, artifact: Artifact, name: NormalizedName, *, no_build: bool, no_binary: bool
    ) -> tuple[Version, int] | None:
        try:
            if artifact.kind == "wheel":
                rank = None if no_binary else self._wheel_rank(artifact.filename)
                if rank is None:
                    return None
                wname, version, _, _ = _parse_wheel(artifact.filename)
                return (version, rank) if wname == name else None
            if no_build:
                return None
            sname, version = parse_sdist_filename(artifact.filename)
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            return None
        return (version, len(self._tag_rank)) if sname == name else None

    def _wheel_rank(self, filename: str) -> int | None:
        """The best rank of a wheel's tags on the target, read from the filename's last three
        fields without a full parse (most files on a big page fit no target)."""
        parts = filename[:-4].lower().split("-")
        if len(parts) < 5:
            return None
        ranks = [
            self._fast_rank[key]
            for key in itertools.product(*(p.split(".") for p in parts[-3:]))
            if key in self._fast_rank
        ]
        return min(ranks) if ranks else None

    # -- dependencies --------------------------------------------------------------------
    def is_satisfied_by(self, requirement: Req, candidate: Candidate) -> bool:
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: Candidate) -> Iterable[Req]:
        if candidate.key == PYTHON:
            return []
        key = (candidate.key, candidate.version)
        if key not in self._deps_memo:
            deps = self._dependencies(candidate)
            self._deps_memo[key] = deps
            self.prefetch(d.name for d in deps)
        return self._deps_memo[key]

    def prefetch(self, names: Iterable[NormalizedName]) -> None:
        """Start fetching the pages of names resolution is about to need."""
        wanted = [(n, self.routes.get(n)) for n in names if n != PYTHON]
        self.source.prefetch_files(n for n in wanted if n[0] not in self.used_indexes)

    def _dependencies(self, candidate: Candidate) -> list[Req]:
        meta = self.metadata(candidate)
        phase = self.phase_of.get(candidate.key) or self.phase_of.get(candidate.name)
        origin = Origin(phase=phase, parent=f"{candidate.name} {candidate.version}")
        deps: list[Req] = []
        if candidate.extras:
            deps.append(_pin(candidate, origin))
        elif meta.requires_python:
            deps.append(_python_req(meta.requires_python, origin))
        for requirement in meta.requires_dist:
            if not self._wanted(requirement, candidate.extras):
                continue
            chosen = self.overrides.get(canonicalize_name(requirement.name), requirement)
            if chosen is requirement or self.target.evaluate(chosen.marker):
                deps.append(to_req(chosen, origin))
        return deps

    def _wanted(self, requirement: Requirement, extras: frozenset[NormalizedName]) -> bool:
        """A dependency of the plain name, or one only the requested extras bring."""
        # Keyed by identity: metadata parsing hands out one object per distinct line.
        key = (id(requirement), extras)
        if key not in self._wanted_memo:
            self._wanted_memo[key] = (requirement, self._evaluate_wanted(requirement, extras))
        return self._wanted_memo[key][1]

    def _evaluate_wanted(
        self, requirement: Requirement, extras: frozenset[NormalizedName]
    ) -> bool:
        if requirement.marker is None:
            return not extras
        plain = self.target.evaluate(requirement.marker)
        if not extras:
            return plain
        return not plain and self.target.evaluate(requirement.marker, frozenset(extras))

    def metadata(self, candidate: Candidate) -> DistMetadata:
        declared = self.declared.get(candidate.name)
        if declared is not None and declared.version in (None, candidate.version):
            return DistMetadata(
                name=candidate.name,
                version=candidate.version,
                requires_dist=declared.requires_dist,
                requires_python=declared.requires_python,
                provides_extra=declared.provides_extra,
            )
        assert candidate.artifact is not None
        try:
            return self.source.metadata(candidate.artifact)
        except BuildNeeded:
            siblings = self._sibling_wheels(candidate)
            if candidate.artifact.kind != "sdist" or not siblings:
                raise
        # As uv does: a version's wheels share their metadata, so another platform's wheel
        # stands in for a source build that cannot run while locking.
        wheel = sorted(siblings, key=lambda a: a.filename)[0]
        log.warning(
            "%s %s on %s: no wheel fits, dependencies read from %s",
            candidate.name,
            candidate.version,
            self.target.name,
            wheel.filename,
        )
        return self.source.metadata(wheel)

    def _sibling_wheels(self, candidate: Candidate) -> list[Artifact]:
        """Wheels of the candidate's version for any platform."""
        index = self.used_indexes.get(candidate.name)
        found = []
        for artifact in self.source.files(candidate.name, index) if index else ():
            if artifact.kind != "wheel":
                continue
            try:
                name, version, _, _ = _parse_wheel(artifact.filename)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            if name == candidate.name and version == candidate.version:
                found.append(artifact)
        return found


@functools.cache  # the same filenames are ranked for every target
def _parse_wheel(filename: str) -> tuple[NormalizedName, Version, Any, frozenset[Tag]]:
    return parse_wheel_filename(filename)


def _pin(candidate: Candidate, origin: Origin) -> Req:
    return Req(
        key=candidate.name,
        name=candidate.name,
        extras=frozenset(),
        specifier=SpecifierSet(f"=={candidate.version}"),
        origin=origin,
        text=f"{candidate.name}=={candidate.version}",
    )


def _python_req(requires_python: str, origin: Origin) -> Req:
    try:
        specifier = SpecifierSet(requires_python)
    except InvalidSpecifier:
        specifier = SpecifierSet()
    return Req(
        key=PYTHON,
        name=NormalizedName(PYTHON),
        extras=frozenset(),
        specifier=specifier,
        origin=origin,
        text=f"Python{specifier}",
    )


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
