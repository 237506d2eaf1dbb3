"""The resolvelib provider: candidates, dependencies and preferences for one target.

The provider does no I/O of its own: files and metadata come through a `Source` (the
index finder in production), and every rule of resolution — routing, constraints, overrides,
declared metadata, compatibility rules, extras, kept pins, direct references — through one
immutable `Rules` value. What it holds besides are the memos that keep resolvelib's repeated
questions cheap while it backtracks. (A little over 400 lines: resolvelib's provider API is one
class, and its answers are kept together rather than spread over helpers that share its memos.)

A source that fails while resolvelib asks about an identifier (a git repository that cannot
be read, an sdist whose build fails, an index that does not answer) is raised as
`SourceFailed` (see `metadata`), carrying that identifier, so `resolve_target` can tell which
phases reach it.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version
from resolvelib import AbstractProvider
from resolvelib.structs import Matches, RequirementInformation

from envspec.errors import EnvspecError, UnreadableMetadata
from envspec.model import Artifact
from envspec.resolve.direct import DirectRefs, HostBuilds
from envspec.resolve.files import FileChoice
from envspec.resolve.lazy import Lazy
from envspec.resolve.lines import LineIndex
from envspec.resolve.metadata import CandidateMetadata, Source, SourceFailed
from envspec.resolve.prune import Pruner
from envspec.resolve.rules import Patch, Rules, replaced
from envspec.resolve.values import (
    PSEUDO,
    PYTHON,
    UNUSABLE,
    Candidate,
    Origin,
    Req,
    absent,
    pin,
    python_req,
    to_req,
    unusable_req,
)

log = logging.getLogger("envspec")
# of a name's requirements: one pins it, the spec asks for it, the keys of those that ask
Facts = tuple[bool, bool, tuple[str, ...]]
_INFINITY = itertools.repeat(math.inf)  # a parent not decided yet is infinitely deep
# How many of a name's best candidates get their metadata fetched ahead of need: the first,
# for every name at once; the pruner's walk fetches further down a list it walks.
PREFETCH_AHEAD = 1
_PLAIN: frozenset[NormalizedName] = frozenset()  # no extras: the plain name's


# Roles, as pip's provider notes them for its own: resolvelib drives the search and asks the
# provider questions; the provider answers them from `rules` (what the spec allows on this
# target), `files` (which file stands for each version of a name, through the `Source`), `refs`
# (the direct references' one candidate each), `metadata` (where each candidate's metadata
# comes from) and `pruner` (candidates that can never be part of a solution, skipped before
# resolvelib tries them). Requirements and candidates are plain values (`values.Req`,
# `values.Candidate`) with no behaviour of their own, so the provider is the one place a
# question is answered; resolvelib sees only identifiers, requirements and candidates.
@dataclass(kw_only=True, slots=True)
class Provider(AbstractProvider[Req, Candidate, str]):
    """The answers to resolvelib's questions for one target, complete once constructed."""

    rules: Rules
    source: Source
    builds: HostBuilds  # warns when metadata built here serves another target
    files: FileChoice = field(init=False)
    refs: DirectRefs = field(init=False)
    metadata: CandidateMetadata = field(init=False)
    pruner: Pruner = field(init=False)
    phase_of: dict[str, str] = field(default_factory=dict, init=False)
    rejected: set[tuple[NormalizedName, Version]] = field(default_factory=set, init=False)
    _deps_memo: dict[tuple[str, Version], list[Req]] = field(default_factory=dict, init=False)
    _candidates: dict[tuple[str, Version], Candidate] = field(default_factory=dict, init=False)
    _depths: dict[str, float] = field(default_factory=dict, init=False)
    _satisfied: dict[tuple[int, Version], tuple[SpecifierSet, bool]] = field(
        default_factory=dict, init=False
    )
    lines: LineIndex = field(init=False)  # which Requires-Dist lines a candidate wants
    # a marker (one object per distinct text, see `index.requires`) → whether it holds here
    _holds_memo: dict[tuple[int, frozenset[NormalizedName]], tuple[Marker, bool]] = field(
        default_factory=dict, init=False
    )
    _matches_memo: dict[tuple[object, ...], Lazy[Candidate]] = field(
        default_factory=dict, init=False
    )
    _absent: dict[NormalizedName, Candidate] = field(default_factory=dict, init=False)
    _python: Candidate = field(init=False)  # the target's interpreter, `<python>`'s one
    # a specifier (by identity; the entry holds it) → whether it pins one version
    _pinning: dict[int, tuple[SpecifierSet, bool]] = field(default_factory=dict, init=False)
    # a criterion's information list (by identity; the entry holds it) → its `_facts`
    _facts_memo: dict[int, tuple[object, Facts]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        rules = self.rules
        self._python = Candidate(
            key=PYTHON,
            name=NormalizedName(PYTHON),
            version=Version(rules.target.python_full_version),
        )
        self.files = FileChoice(
            target=rules.target, listing=self.source, settings=rules.settings, routes=rules.routes
        )
        self.refs = DirectRefs(rules=rules, source=self.source, builds=self.builds)
        self.metadata = CandidateMetadata(
            rules=rules, source=self.source, refs=self.refs, files=self.files, builds=self.builds
        )
        self.lines = LineIndex(decide=self._wants)
        self.pruner = Pruner(
            python=Version(rules.target.python_full_version),
            dependencies=self._memo_dependencies,
            versions=self._fixed_versions,
            make=lambda name, version, artifact: self._candidate(
                name, name, frozenset(), version, artifact
            ),
            fixed=rules.fixed,
            direct=frozenset(rules.urls),
            prefetch=self.source.prefetch_metadata if self.source.reads_ahead else None,
        )

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
        """The sort key of `identifier`: resolvelib decides the identifier with the lowest key
        next. Its parts, in order (False sorts before True):

        - `not pseudo`: `<python>` and `<unusable>` first; they have one answer and nothing
          depends on them, so deciding them costs nothing and fails early;
        - `not pinned`: a name some requirement pins with `==` (no wildcard) has at most one
          candidate: deciding it early cannot close off other choices;
        - `not cause`: a name in the conflict resolvelib is backtracking from, so the search
          stays near the conflict rather than re-deciding unrelated names;
        - `not direct`: a name the spec itself requires, before names only dependencies bring;
        - `depth`: how far from the spec the name was first asked for (see `_depth`): a
          conflict deep down then backjumps to the choice that brought it in;
        - `not extras`: a name with extras (`x[y]`) before the plain name it pins, so the
          extras' dependencies join the search with the version they belong to;
        - `identifier`: a tie-break, so the order (and the lock) is the same on every run.
        """
        facts = self._facts(list(information[identifier]))
        return self._preference(identifier, facts, backtrack_causes)

    def preference(
        self,
        identifier: str,
        information: Collection[RequirementInformation[Req, Candidate]],
        backtrack_causes: Collection[RequirementInformation[Req, Candidate]],
    ) -> Any:
        """`get_preference` from a criterion's own `information` list (`search`'s way in):
        what the list says is worked out once per list, since a criterion is never changed."""
        known = self._facts_memo.get(id(information))
        if known is None:
            known = self._facts_memo[id(information)] = (information, self._facts(information))
        return self._preference(identifier, known[1], backtrack_causes)

    def _facts(self, infos: Collection[RequirementInformation[Req, Candidate]]) -> Facts:
        """Whether a requirement pins the name, whether the spec asks for it, and the keys
        of the candidates that ask for it."""
        pinned = any(self._pins(info.requirement.specifier) for info in infos)
        direct = any(info.parent is None for info in infos)
        return pinned, direct, tuple(info.parent.key for info in infos if info.parent)

    def _preference(
        self,
        identifier: str,
        facts: Facts,
        backtrack_causes: Iterable[RequirementInformation[Req, Candidate]],
    ) -> Any:
        pinned, direct, parents = facts
        name = identifier.split("[", 1)[0]
        cause = any(c.requirement.name == name for c in backtrack_causes)
        return (
            identifier not in PSEUDO,
            not pinned,
            not cause,
            not direct,
            self._depth(identifier, parents, direct),
            "[" not in identifier,
            identifier,
        )

    def _pins(self, specifier: SpecifierSet) -> bool:
        """Whether `specifier` pins one version (`==` without a wildcard), once per object."""
        known = self._pinning.get(id(specifier))
        if known is None:
            pins = any(s.operator in ("==", "===") and "*" not in s.version for s in specifier)
            known = self._pinning[id(specifier)] = (specifier, pins)
        return known[1]

    def _depth(self, identifier: str, parents: Sequence[str], direct: bool) -> float:
        """How far from the spec a name was first asked for (1 when the spec asks for it,
        `direct`; else one more than its nearest parent's): names near the root are decided
        first, so a conflict deep down backjumps to the choice that brought it in."""
        if direct:
            depth = 1.0
        else:
            depth = min(map(self._depths.get, parents, _INFINITY), default=math.inf) + 1
        self._depths[identifier] = min(depth, self._depths.get(identifier, math.inf))
        return self._depths[identifier]

    def narrow_requirement_selection(
        self,
        identifiers: Iterable[str],
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[RequirementInformation[Req, Candidate]]],
        backtrack_causes: Sequence[RequirementInformation[Req, Candidate]],
    ) -> Iterable[str]:
        identifiers = list(identifiers)
        for pseudo in (UNUSABLE, PYTHON):  # decided at once: nothing else depends on them
            if pseudo in identifiers:
                return [pseudo]
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
    ) -> Matches[Candidate]:
        # A source failing here fails `identifier`, the one resolvelib asked about, even when
        # it failed for another name the pruner looked ahead at: only resolvelib's own calls
        # wrap, the pruner's go through `_memo_dependencies`. Plain try blocks: these run
        # for every candidate.
        try:
            found = self._find_matches(identifier, requirements, incompatibilities)
        except EnvspecError as exc:
            raise SourceFailed(identifier, exc) from exc
        if not callable(found):
            return found
        # The pruner's view is walked later, by resolvelib: metadata read (or built) while it
        # is walked still belongs to this identifier.
        return lambda: self._walk(identifier, found)

    def _walk(
        self, identifier: str, view: Callable[[], Iterable[Candidate]]
    ) -> Iterator[Candidate]:
        candidates = iter(view())
        while True:
            try:
                candidate = next(candidates)
            except StopIteration:
                return
            except EnvspecError as exc:
                raise SourceFailed(identifier, exc) from exc
            yield candidate

    def _find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Req]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> Matches[Candidate]:
        reqs = list(requirements[identifier])
        self._note_phase(identifier, reqs)
        if identifier == UNUSABLE:
            return []
        if identifier == PYTHON:  # every pin's Requires-Python, asked again each time
            python = self._python
            return [python] if all(self._admits(r.specifier, python.version) for r in reqs) else []
        name, extras = reqs[0].name, reqs[0].extras
        if all(r.constraint for r in reqs):  # only rules' constraints: see `resolve.rules`
            gone = any(c.absent for c in incompatibilities[identifier])
            return [] if gone else [self._absent.setdefault(name, absent(name))]
        bad = {c.version for c in incompatibilities[identifier]}
        if extras:  # the plain name's requirements bound its extras too
            reqs += requirements.get(name, ())
            bad |= {c.version for c in incompatibilities.get(name, ())}
        constraints = [c.specifier for c in self.rules.constraints.get(name, ())]
        specifiers = [r.specifier for r in reqs] + constraints
        user = [r.specifier for r in reqs if r.origin.parent is None] + constraints
        url = self.refs.url_for(name, reqs)
        if url:
            return self.refs.matches(reqs[0], url, specifiers, bad)
        memo_key = (identifier, frozenset(specifiers), frozenset(user), frozenset(bad))
        if memo_key not in self._matches_memo:
            keep = self.rules.preferred.get(name)
            found = self.files.versions(name, specifiers, bad, user, first=keep)
            result = Lazy(self._candidate(identifier, name, extras, v, a) for v, a in found)
            self._matches_memo[memo_key] = result
            ahead = result.head(PREFETCH_AHEAD)
            self.source.prefetch_metadata(c.artifact for c in ahead if c.artifact)
        return self.pruner.alive(self._matches_memo[memo_key])

    def _fixed_versions(
        self, name: NormalizedName, specifiers: Sequence[SpecifierSet]
    ) -> Lazy[tuple[Version, Artifact]]:
        user = [r.specifier for r in self.rules.fixed.get(name, ())]  # the spec's pins opt in
        keep = self.rules.preferred.get(name)
        return self.files.versions(name, specifiers, set(), user, first=keep)

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
                index=self.files.used_indexes.get(name),
            )
        return self._candidates[memo_key]

    def _note_phase(self, identifier: str, reqs: Sequence[Req]) -> None:
        for req in reqs:  # a rule's constraint brings nothing into its parent's phase
            if req.origin.phase and not req.constraint and identifier not in self.phase_of:
                self.phase_of[identifier] = req.origin.phase

    # -- dependencies --------------------------------------------------------------------
    def is_satisfied_by(self, requirement: Req, candidate: Candidate) -> bool:
        if candidate.absent:  # not installed meets a constraint, and nothing else
            return requirement.constraint
        if requirement.url and candidate.url is None and candidate.key != PYTHON:
            return False  # an index file never stands for a direct reference
        # resolvelib asks the same question for every pin it re-checks while backtracking.
        return self._admits(requirement.specifier, candidate.version)

    def _admits(self, specifier: SpecifierSet, version: Version) -> bool:
        # Keyed by identity; the entry holds the specifier, so its id is never reused.
        key = (id(specifier), version)
        found = self._satisfied.get(key)
        if found is None:
            verdict = specifier.contains(version, prereleases=True)
            found = self._satisfied[key] = (specifier, verdict)
        return found[1]

    def get_dependencies(self, candidate: Candidate) -> Iterable[Req]:
        try:
            return self._memo_dependencies(candidate)
        except EnvspecError as exc:
            raise SourceFailed(candidate.key, exc) from exc

    def _memo_dependencies(self, candidate: Candidate) -> list[Req]:
        """`get_dependencies` for the pruner and the explanation, whose failures belong to
        whoever asked them (see `find_matches`)."""
        if candidate.key == PYTHON or candidate.absent:
            return []
        key = (candidate.key, candidate.version)
        if key not in self._deps_memo:
            deps = self._dependencies(candidate)
            self._deps_memo[key] = deps
            self.prefetch(d.name for d in deps if not d.constraint)
        return self._deps_memo[key]

    def prefetch(self, names: Iterable[NormalizedName]) -> None:
        """Start fetching the pages of names resolution is about to need."""
        urls = self.rules.urls
        wanted = [(n, self.rules.routes.get(n)) for n in names if n not in PSEUDO and n not in urls]
        self.source.prefetch_files(n for n in wanted if n[0] not in self.files.used_indexes)

    def _dependencies(self, candidate: Candidate) -> list[Req]:
        phase = self.phase_of.get(candidate.key) or self.phase_of.get(candidate.name)
        origin = Origin(phase=phase, parent=f"{candidate.name} {candidate.version}")
        try:
            patched = self.metadata(candidate)
        except UnreadableMetadata as exc:
            if candidate.url:  # a source the spec names itself: its failure is the user's to see
                raise
            return [self._rejected(candidate, exc, origin)]
        meta = patched.dist
        deps: list[Req] = []
        if candidate.extras:
            deps.append(pin(candidate, origin))
        elif meta.requires_python:
            deps.append(python_req(meta.requires_python, origin))
        requires = meta.requires_dist
        for i in self.lines.wanted(requires, candidate.extras):
            deps += self._chosen(requires[i], origin)
        if not candidate.extras:  # the plain name's: its extras pin it
            for patch in patched.patches:
                deps += self._patch(patch, origin)
        return deps

    def _chosen(
        self, requirement: Requirement, origin: Origin, constraint: bool = False
    ) -> list[Req]:
        """A wanted requirement as the resolver takes it: an override replaces it."""
        overrides = self.rules.overrides
        chosen = (
            overrides.get(canonicalize_name(requirement.name), requirement)
            if overrides
            else requirement
        )
        if chosen is requirement:
            return [to_req(chosen, origin, constraint=constraint)]
        if self.rules.target.evaluate(chosen.marker):
            by_override = dataclasses.replace(origin, replaces=replaced(requirement, chosen))
            return [to_req(chosen, by_override, constraint=constraint)]
        return []

    def _patch(self, patch: Patch, origin: Origin) -> list[Req]:
        """What a compatibility rule adds, as if the candidate's metadata had declared it."""
        if not self._wants(patch.requirement.marker, _PLAIN):
            return []
        by_rule = dataclasses.replace(origin, rule=patch.rule, cite=patch.cite)
        return self._chosen(patch.requirement, by_rule, patch.constraint)

    def _rejected(self, candidate: Candidate, exc: UnreadableMetadata, origin: Origin) -> Req:
        if (candidate.name, candidate.version) not in self.rejected:
            log.warning(
                "%s %s rejected on %s: %s",
                candidate.name,
                candidate.version,
                self.rules.target.name,
                exc.message,
            )
            self.rejected.add((candidate.name, candidate.version))
        return unusable_req(f"its metadata cannot be read ({exc.message})", origin)

    def _wants(self, marker: Marker | None, extras: frozenset[NormalizedName]) -> bool:
        """Whether a line under `marker` is a dependency of the plain name (no `extras`), or
        one only the requested `extras` bring."""
        if marker is None:
            return not extras
        plain = self._holds(marker, _PLAIN)
        if not extras:
            return plain
        return not plain and self._holds(marker, extras)

    def _holds(self, marker: Marker, extras: frozenset[NormalizedName]) -> bool:
        """`target.evaluate`, once per marker: thousands of lines share a few hundred."""
        key = (id(marker), extras)
        known = self._holds_memo.get(key)
        if known is None:
            known = self._holds_memo[key] = (marker, self.rules.target.evaluate(marker, extras))
        return known[1]
