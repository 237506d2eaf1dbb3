"""The rules of one resolution attempt on one target, as one immutable value.

`rules_for` reads the spec once per attempt — the phases still taking part, routing,
constraints, overrides, declared metadata, the previous lock's pins and git commits, the
direct references — and everything the provider, the file choice and the direct references
decide from then on, they decide from this value: nothing about the spec is looked up or
changed while resolvelib runs. The direct references are checked here, before anything is
fetched: each URL parses, and no name is required from two URLs.

Per-name rules are mappings by canonical name, read in one place each: `declared_for` for
metadata that stands in for a distribution's own (`[[resolution.dependency-metadata]]`), and
`patches_for` for what the compatibility rules in force on this target add to it, both read
by `metadata.CandidateMetadata`, so every candidate's dependencies are its metadata as if
upstream had declared the rules.

A rule adds two kinds of patch. A requirement (`torch>=2.6.0,<=2.8.0` for torchao 0.13.0)
is one like any other. A constraint (`numpy<2` for torch 2.4.0 on Windows) bounds a name
only when something else brings it in; resolvelib has no such notion, so a constraint joins
the candidate's dependencies as a requirement marked `constraint`, and a name that only such
requirements ask for gets one candidate, `values.absent(name)`: "not installed", which
satisfies constraints and nothing else (`Provider.is_satisfied_by`). Why that is sound:

- resolvelib ends only when every name's pin satisfies every requirement on it. A name pinned
  `absent` is asked for by constraints only (any real requirement rejects that pin, and
  resolvelib re-pins the name from the candidates meeting all its requirements, constraints
  included); a name pinned to a version meets its constraints like any bound. So in a
  result, every constraint of a chosen candidate holds for the name whenever it is installed.
- A constraint never brings a name in: while only constraints ask for it, `absent` is its
  only candidate, and an absent name is left out of the lock (`resolve._lock`).
- Nothing is given up: `absent` has no dependencies, so it takes part in backtracking like
  any one-candidate name (resolvelib may mark it incompatible in a state it backjumps past;
  that state is dropped with it), and the pruner counts a constraint as always viable.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from envspec.errors import EnvspecError, ResolutionError
from envspec.index.direct import parse_direct
from envspec.model import (
    DependencyMetadata,
    DistMetadata,
    Lock,
    Phase,
    Resolution,
    Rule,
    RuleCase,
    RuleSet,
    Spec,
    Target,
    VcsSource,
)
from envspec.resolve.values import CONSTRAINT, Origin, Req, to_req

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, kw_only=True, slots=True)
class Patch:
    """One requirement a compatibility rule adds to a candidate's metadata."""

    requirement: Requirement
    constraint: bool  # bounds the name only when something else requires it
    rule: str  # the rule's id
    cite: str  # its source, short


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Rules:
    """What one target's resolution obeys. Mappings are read-only."""

    target: Target
    settings: Resolution  # prereleases, exclude-newer, no-build, no-binary
    roots: tuple[Req, ...]  # the active phases' requirements (overrides applied), in order
    routes: Mapping[NormalizedName, str]  # name → the explicit index its phase routes it to
    constraints: Mapping[NormalizedName, tuple[Req, ...]]
    overrides: Mapping[NormalizedName, Requirement]
    declared: Mapping[NormalizedName, DependencyMetadata]
    # The spec's own bounds on each name: present on this target whatever else is chosen.
    fixed: Mapping[NormalizedName, tuple[Req, ...]]
    preferred: Mapping[NormalizedName, Version]  # the previous lock's pins, kept unless lifted
    urls: Mapping[NormalizedName, str]  # the spec's direct references, by name
    where: Mapping[str, str]  # where the spec gives each URL (`phases[i].requirements[j]`)
    kept: Mapping[NormalizedName, VcsSource]  # the previous lock's git commits
    # The compatibility rules in force, by package: each case that holds on this target.
    compat: Mapping[NormalizedName, tuple[tuple[Rule, RuleCase], ...]]

    def declared_for(self, name: NormalizedName, version: Version) -> DistMetadata | None:
        """The spec's metadata for `name` at `version`, when it declares some for it."""
        declared = self.declared.get(name)
        if declared is None or declared.version not in (None, version):
            return None
        return declared.as_metadata(version)

    def patches_for(self, name: NormalizedName, version: Version) -> tuple[Patch, ...]:
        """What the compatibility rules add to `name` `version`'s metadata on this target."""
        out: list[Patch] = []
        for rule, case in self.compat.get(name, ()):
            if case.covers(version):
                for requirement, constraint in (
                    *((r, False) for r in case.requires),
                    *((r, True) for r in case.constraints),
                ):
                    out.append(
                        Patch(
                            requirement=requirement,
                            constraint=constraint,
                            rule=rule.id,
                            cite=rule.cite,
                        )
                    )
        return tuple(out)

    def builds(self, name: NormalizedName) -> bool:
        """Whether `[resolution] no-build` lets `name`'s metadata come from a build (see
        `Resolution.builds`)."""
        return self.settings.builds(name)


def rules_for(
    spec: Spec,
    target: Target,
    phases: Sequence[Phase],
    previous: Lock | None,
    *,
    upgrade: bool,
    upgrade_packages: Collection[str],
) -> Rules:
    """The rules for resolving `phases` (those still taking part) on `target`."""
    res = spec.resolution
    lifted = {canonicalize_name(n) for n in upgrade_packages}
    kept_lock = None if upgrade else previous
    overrides = {canonicalize_name(r.name): r for r in res.overrides}
    constraints: dict[NormalizedName, list[Req]] = {}
    for requirement in res.constraints:
        if target.evaluate(requirement.marker):
            req = to_req(requirement, Origin(phase=None, parent=CONSTRAINT))
            constraints.setdefault(req.name, []).append(req)
    urls, where = _direct_references(spec.phases, {p.name for p in phases}, target)
    return Rules(
        target=target,
        settings=res,
        roots=tuple(_roots(phases, target, overrides)),
        routes=_frozen(_routes(phases, target)),
        constraints=_frozen({n: tuple(reqs) for n, reqs in constraints.items()}),
        overrides=_frozen(overrides),
        declared=_frozen({d.name: d for d in res.dependency_metadata}),
        fixed=_frozen(_fixed(phases, target, overrides, constraints)),
        preferred=_frozen(
            {p.name: p.version for p in kept_lock.packages if p.name not in lifted}
            if kept_lock
            else {}
        ),
        urls=_frozen(urls),
        where=_frozen(where),
        kept=_frozen(
            {p.name: p.vcs for p in kept_lock.packages if p.vcs and p.name not in lifted}
            if kept_lock
            else {}
        ),
        compat=_frozen(_compat(spec.rules, target)),
    )


def _compat(
    rules: RuleSet, target: Target
) -> dict[NormalizedName, tuple[tuple[Rule, RuleCase], ...]]:
    environment = target.environment()
    out: dict[NormalizedName, tuple[tuple[Rule, RuleCase], ...]] = {}
    for rule in rules.rules:
        cases = tuple((rule, c) for c in rule.cases if c.holds(environment, target.name))
        if cases:
            out[rule.package] = out.get(rule.package, ()) + cases
    return out


def replaced(declared: Requirement, chosen: Requirement) -> str:
    """The text of `declared` (without its marker) when an override, `chosen`, stands for it;
    "" when it stands for itself."""
    return "" if chosen is declared else str(declared).split(";", 1)[0].strip()


def _frozen(mapping: Mapping[K, V]) -> Mapping[K, V]:
    return MappingProxyType(dict(mapping))


def _roots(
    phases: Sequence[Phase], target: Target, overrides: Mapping[NormalizedName, Requirement]
) -> list[Req]:
    roots: list[Req] = []
    for phase in phases:
        for requirement in phase.requirements:
            if target.evaluate(requirement.marker):
                chosen = overrides.get(canonicalize_name(requirement.name), requirement)
                origin = Origin(phase=phase.name, replaces=replaced(requirement, chosen))
                roots.append(to_req(chosen, origin))
    return roots


def _routes(phases: Sequence[Phase], target: Target) -> dict[NormalizedName, str]:
    routes: dict[NormalizedName, str] = {}
    for phase in phases:
        index = phase.index_for(target.name)
        if index:
            for requirement in phase.requirements:
                routes.setdefault(canonicalize_name(requirement.name), index)
    return routes


def _fixed(
    phases: Sequence[Phase],
    target: Target,
    overrides: Mapping[NormalizedName, Requirement],
    constraints: Mapping[NormalizedName, list[Req]],
) -> dict[NormalizedName, tuple[Req, ...]]:
    fixed: dict[NormalizedName, list[Req]] = {}
    for phase in phases:
        for requirement in phase.requirements:
            chosen = overrides.get(canonicalize_name(requirement.name), requirement)
            if not chosen.url and target.evaluate(chosen.marker):
                req = to_req(
                    chosen, Origin(phase=phase.name, replaces=replaced(requirement, chosen))
                )
                fixed.setdefault(req.name, []).append(req)
    for name, reqs in constraints.items():
        fixed.setdefault(name, []).extend(reqs)
    return {name: tuple(reqs) for name, reqs in fixed.items()}


def _direct_references(
    phases: Sequence[Phase], active: Collection[str], target: Target
) -> tuple[dict[NormalizedName, str], dict[str, str]]:
    """The direct references of the `active` phases on `target` by name, and where the spec
    gives each URL; an unparsable URL or a name required from two URLs is an error naming
    its place."""
    urls: dict[NormalizedName, str] = {}
    where: dict[str, str] = {}
    for i, phase in enumerate(phases):
        if phase.name not in active:
            continue
        for j, requirement in enumerate(phase.requirements):
            if requirement.url and target.evaluate(requirement.marker):
                name = canonicalize_name(requirement.name)
                _add(urls, where, name, requirement.url, f"phases[{i}].requirements[{j}]")
    return urls, where


def _add(
    urls: dict[NormalizedName, str],
    where: dict[str, str],
    name: NormalizedName,
    url: str,
    path: str,
) -> None:
    try:
        shown = parse_direct(url).shown
    except EnvspecError as exc:
        raise exc.with_context(path) from exc
    if urls.get(name, url) != url:
        first = urls[name]
        raise ResolutionError(
            f"{name} is required from two URLs: {parse_direct(first).shown} ({where[first]}) "
            f"and {shown} ({path})",
            hint="require it from one URL in every phase",
        )
    urls.setdefault(name, url)
    where.setdefault(url, path)
