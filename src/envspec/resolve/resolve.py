"""Spec × Target → Lock: one resolution over every phase that applies to the target.

All phases land in one environment, so their requirements are resolved together; a
package's phase is the earliest phase whose requirements reach it. An optional phase that
takes part in a conflict, or is alone in needing a source that fails (a git repository that
cannot be read, an sdist whose build fails), is dropped and recorded as skipped with the reason, and
resolution runs again.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version
from resolvelib import Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep, Result

from envspec.errors import EnvspecError, OfflineError, ResolutionError
from envspec.inputs import lock_inputs
from envspec.model import (
    SPEC_ROOT,
    Artifact,
    Lock,
    LockedPackage,
    LockedPhase,
    Phase,
    Spec,
    Target,
    strip_credentials,
)
from envspec.resolve.direct import HostBuilds, kept_commits, spec_refs
from envspec.resolve.explain import explain, phases_in_conflict
from envspec.resolve.files import FileChoice
from envspec.resolve.provider import Provider, Source
from envspec.resolve.reach import Reach
from envspec.resolve.values import CONSTRAINT, PYTHON, Candidate, Origin, Req, to_req
from envspec.targets import host_target

log = logging.getLogger("envspec")
MAX_ROUNDS = 20_000


class LockSource(Source, Protocol):
    """A `Source` that can also complete an artifact's hash and size."""

    def ensure_hash(self, artifact: Artifact) -> Artifact: ...


def resolve_target(
    spec: Spec,
    target: Target,
    source: LockSource,
    *,
    previous: Lock | None = None,
    upgrade: bool = False,
    upgrade_packages: Collection[str] = (),
) -> Lock:
    """Resolve every phase applying to `target` into a `Lock`; raise `ResolutionError`."""
    phases = [p for p in spec.phases if p.applies_to(target.name)]
    preferred = {} if upgrade or previous is None else _kept_pins(previous, upgrade_packages)
    kept = kept_commits(previous, upgrade=upgrade, upgrade_packages=upgrade_packages)
    builds = HostBuilds(target=target, host=host_target())
    skipped: dict[str, str] = {}
    while True:
        active = [p for p in phases if p.name not in skipped]
        provider = _provider(spec, target, source, active, preferred)
        names = {p.name for p in active}
        provider.refs = spec_refs(spec, names, target, source, kept=kept, builds=builds)
        provider.builds = builds
        roots = _roots(active, target, provider)
        provider.prefetch(r.name for r in roots)
        reach = Reach()
        try:
            result = Resolver(provider, reach).resolve(roots, max_rounds=MAX_ROUNDS)
        except ResolutionImpossible as exc:
            skipped.update(_conflict(exc, provider, target, active))
            continue
        except ResolutionTooDeep as exc:
            raise ResolutionError(
                f"resolution gave up after {exc.round_count} rounds",
                context=f"target {target.name}",
                hint="add constraints to narrow the search",
            ) from None
        except EnvspecError as exc:
            skipped.update(_source_failure(exc, provider, reach, target, active))
            continue
        return _lock(
            spec=spec,
            target=target,
            source=source,
            phases=phases,
            skipped=skipped,
            roots=roots,
            result=result,
            provider=provider,
        )


def _conflict(
    exc: ResolutionImpossible[Req, Candidate],
    provider: Provider,
    target: Target,
    active: Sequence[Phase],
) -> dict[str, str]:
    """The optional phases to skip for a conflict; raise when no optional phase is in it."""
    reason = explain(
        exc.causes,
        provider.constraints,
        target,
        _missing(provider),
        culprit=provider.pruner.culprit,
        fixed=provider.fixed,
        files=provider.files,
    )
    involved = phases_in_conflict(exc.causes) & {p.name for p in active if p.optional}
    if not involved:
        raise ResolutionError(reason, context=f"target {target.name}") from None
    return _skip(involved, reason, target)


def _source_failure(
    exc: EnvspecError, provider: Provider, reach: Reach, target: Target, active: Sequence[Phase]
) -> dict[str, str]:
    """The optional phases to skip when a source failed (a git repository, an sdist build, a
    direct reference) for a name only they reach; re-raise `exc` when a required phase
    reaches it too, when nothing says who does, or when `--offline` is the cause (a lock must
    not record a phase as skipped for what the cache happened to hold)."""
    reaching = reach.phases(provider.failed_at) if provider.failed_at else set()
    optional = {p.name for p in active if p.optional}
    if not reaching or not reaching <= optional or isinstance(exc, OfflineError):
        raise exc
    return _skip(reaching, str(exc), target)


def _skip(names: Collection[str], reason: str, target: Target) -> dict[str, str]:
    for name in sorted(names):
        log.warning("optional phase '%s' skipped on %s: %s", name, target.name, reason)
    return dict.fromkeys(names, reason)


def _kept_pins(previous: Lock, upgrade_packages: Collection[str]) -> dict[NormalizedName, Version]:
    lifted = {canonicalize_name(n) for n in upgrade_packages}
    return {p.name: p.version for p in previous.packages if p.name not in lifted}


def _provider(
    spec: Spec,
    target: Target,
    source: Source,
    phases: Iterable[Phase],
    preferred: Mapping[NormalizedName, Version],
) -> Provider:
    routes: dict[NormalizedName, str] = {}
    for phase in phases:
        index = phase.index_for(target.name)
        for requirement in phase.requirements:
            if index:
                routes.setdefault(canonicalize_name(requirement.name), index)
    constraints: dict[NormalizedName, list[Req]] = {}
    for requirement in spec.resolution.constraints:
        if target.evaluate(requirement.marker):
            req = to_req(requirement, Origin(phase=None, parent=CONSTRAINT))
            constraints.setdefault(req.name, []).append(req)
    overrides = {canonicalize_name(r.name): r for r in spec.resolution.overrides}
    declared = {d.name: d for d in spec.resolution.dependency_metadata}
    fixed: dict[NormalizedName, list[Req]] = {}
    for phase in phases:
        for requirement in phase.requirements:
            chosen = overrides.get(canonicalize_name(requirement.name), requirement)
            if not chosen.url and target.evaluate(chosen.marker):
                req = to_req(chosen, Origin(phase=phase.name))
                fixed.setdefault(req.name, []).append(req)
    for name, reqs in constraints.items():
        fixed.setdefault(name, []).extend(reqs)
    files = FileChoice(target=target, listing=source, settings=spec.resolution, routes=routes)
    return Provider(
        files=files,
        source=source,
        preferred=preferred,
        constraints=constraints,
        overrides=overrides,
        declared=declared,
        fixed=fixed,
    )


def _roots(phases: Iterable[Phase], target: Target, provider: Provider) -> list[Req]:
    roots: list[Req] = []
    for phase in phases:
        for requirement in phase.requirements:
            if not target.evaluate(requirement.marker):
                continue
            chosen: Requirement = provider.overrides.get(
                canonicalize_name(requirement.name), requirement
            )
            roots.append(to_req(chosen, Origin(phase=phase.name)))
    return roots


def _lock(
    *,
    spec: Spec,
    target: Target,
    source: LockSource,
    phases: list[Phase],
    skipped: Mapping[str, str],
    roots: list[Req],
    result: Result[Req, Candidate, str],
    provider: Provider,
) -> Lock:
    phase_of = _phase_membership(roots, result)
    parents = _parents(result)
    packages = []
    for key, candidate in sorted(result.mapping.items()):
        if key == PYTHON or candidate.extras:
            continue
        artifact = candidate.artifact
        if artifact is not None and (artifact.sha256 is None or artifact.size is None):
            artifact = source.ensure_hash(artifact)
        index = provider.files.used_indexes.get(candidate.name)
        packages.append(
            LockedPackage(
                name=candidate.name,
                version=candidate.version,
                index=strip_credentials(index.url) if index else None,
                artifact=artifact.with_(url=strip_credentials(artifact.url)) if artifact else None,
                vcs=candidate.vcs,
                phase=phase_of.get(candidate.name, ""),
                required_by=tuple(sorted(parents.get(candidate.name, ()))),
            )
        )
    locked_phases = tuple(
        LockedPhase(
            name=p.name,
            index=p.index_for(target.name),
            optional=p.optional,
            skipped=skipped.get(p.name),
        )
        for p in phases
    )
    return Lock(
        target=target.name,
        requires_python=f"=={target.python_version}.*",
        environments=(target.environment_marker(),),
        packages=tuple(packages),
        phases=locked_phases,
        inputs=lock_inputs(spec, target),
    )


def _base(key: str) -> str:
    return key.split("[", 1)[0]


def _phase_membership(roots: list[Req], result: Result[Req, Candidate, str]) -> dict[str, str]:
    """Each package's phase: the earliest phase whose requirements reach it."""
    phase_of: dict[str, str] = {}
    visited: set[str] = set()
    for root in roots:  # in phase order, so the first phase to reach a name keeps it
        assert root.origin.phase is not None
        stack = [root.key]
        while stack:
            key = stack.pop()
            if key in visited or key not in result.mapping:
                continue
            visited.add(key)
            phase_of.setdefault(_base(key), root.origin.phase)
            stack.extend(k for k in result.graph.iter_children(key) if k is not None)
    return phase_of


def _parents(result: Result[Req, Candidate, str]) -> dict[str, set[str]]:
    parents: dict[str, set[str]] = {}
    for key in result.mapping:
        name = _base(key)
        for parent in result.graph.iter_parents(key):
            label = SPEC_ROOT if parent is None else _base(parent)
            if label not in (name, PYTHON):
                parents.setdefault(name, set()).add(label)
    return parents


def _missing(provider: Provider) -> set[str]:
    return {name for name, index in provider.files.used_indexes.items() if index is None}
