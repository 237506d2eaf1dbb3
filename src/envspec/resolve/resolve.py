"""Spec × Target → Lock: one resolution over every phase that applies to the target.

All phases land in one environment, so their requirements are resolved together; a
package's phase is the earliest phase whose requirements reach it. An optional phase that
takes part in a conflict, or is alone in needing a source that fails (a git repository that
cannot be read, an sdist whose build fails), is dropped and recorded as skipped with the
reason, and resolution runs again with rules made for the phases left (`rules.rules_for`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep, Result

from envspec.errors import OfflineError, ResolutionError
from envspec.inputs import applied_rules, lock_inputs
from envspec.model import SPEC_ROOT, Artifact, Lock, LockedPackage, LockedPhase, Phase, Spec, Target
from envspec.resolve.collect import fewer_collections
from envspec.resolve.direct import HostBuilds
from envspec.resolve.explain import explain, phases_in_conflict
from envspec.resolve.held import held_messages
from envspec.resolve.metadata import Source, SourceFailed
from envspec.resolve.provider import Provider
from envspec.resolve.reach import Reach
from envspec.resolve.rules import rules_for
from envspec.resolve.search import Search
from envspec.resolve.values import PYTHON, Candidate, Req
from envspec.secret import redact

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
    host: str | None,
    previous: Lock | None = None,
    upgrade: bool = False,
    upgrade_packages: Collection[str] = (),
    on_round: Callable[[int], None] | None = None,
) -> Lock:
    """Resolve every phase applying to `target` into a `Lock`; raise `ResolutionError`.
    `host` is the known target this machine is (`targets.host_target()`), or None: metadata
    built here is trusted for another target with a warning. `on_round` hears, after each
    resolver round, how many packages are pinned."""
    with fewer_collections():  # see `collect`
        phases = [p for p in spec.phases if p.applies_to(target.name)]
        builds = HostBuilds(target=target, host=host)
        skipped: dict[str, str] = {}
        while True:
            active = [p for p in phases if p.name not in skipped]
            rules = rules_for(
                spec, target, active, previous, upgrade=upgrade, upgrade_packages=upgrade_packages
            )
            provider = Provider(rules=rules, source=source, builds=builds)
            # With a previous lock, nearly every name it will need is known: all their pages
            # at once rather than as the resolution comes to them.
            provider.prefetch([*(r.name for r in rules.roots), *rules.preferred])
            reach = Reach(on_round)
            try:
                result = Search(provider, reach).resolve(rules.roots, max_rounds=MAX_ROUNDS)
            except ResolutionImpossible as exc:
                skipped.update(_conflict(exc, provider, target, active))
                continue
            except ResolutionTooDeep as exc:
                raise ResolutionError(
                    f"resolution gave up after {exc.round_count} rounds",
                    context=f"target {target.name}",
                    hint="add constraints to narrow the search",
                ) from None
            except SourceFailed as failure:
                skipped.update(_source_failure(failure, reach, target, active))
                continue
            for message in held_messages(provider, result, upgrade_packages, previous, target):
                log.warning("%s", message)
            return _lock(
                spec=spec,
                target=target,
                source=source,
                phases=phases,
                skipped=skipped,
                roots=rules.roots,
                result=result,
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
        provider.rules.constraints,
        target,
        _missing(provider),
        culprit=provider.pruner.culprit,
        fixed=provider.rules.fixed,
        files=provider.files,
        dooming=provider.pruner.dooming,
    )
    involved = phases_in_conflict(exc.causes) & {p.name for p in active if p.optional}
    if not involved:
        raise ResolutionError(reason, context=f"target {target.name}") from None
    return _skip(involved, reason, target)


def _source_failure(
    failure: SourceFailed, reach: Reach, target: Target, active: Sequence[Phase]
) -> dict[str, str]:
    """The optional phases to skip when a source failed (a git repository, an sdist build, a
    direct reference) for a name only they reach; raise its error when a required phase
    reaches it too, when nothing says who does, or when `--offline` is the cause (a lock must
    not record a phase as skipped for what the cache happened to hold)."""
    reaching = reach.phases(failure.identifier)
    optional = {p.name for p in active if p.optional}
    if not reaching or not reaching <= optional or isinstance(failure.error, OfflineError):
        raise failure.error
    return _skip(reaching, str(failure.error), target)


def _skip(names: Collection[str], reason: str, target: Target) -> dict[str, str]:
    for name in sorted(names):
        log.warning("optional phase '%s' skipped on %s: %s", name, target.name, reason)
    return dict.fromkeys(names, reason)


def _lock(
    *,
    spec: Spec,
    target: Target,
    source: LockSource,
    phases: list[Phase],
    skipped: Mapping[str, str],
    roots: Sequence[Req],
    result: Result[Req, Candidate, str],
) -> Lock:
    phase_of = _phase_membership(roots, result)
    parents = _parents(result)
    required_as = _required_as(result)
    packages = []
    for key, candidate in sorted(result.mapping.items()):
        if key == PYTHON or candidate.extras or candidate.absent:
            continue
        artifact = candidate.artifact
        if artifact is not None and (artifact.sha256 is None or artifact.size is None):
            artifact = source.ensure_hash(artifact)
        index = candidate.index
        packages.append(
            LockedPackage(
                name=candidate.name,
                version=candidate.version,
                index=index.location.public if index else None,
                artifact=artifact.with_(url=redact(artifact.url)) if artifact else None,
                vcs=candidate.vcs,
                phase=phase_of.get(candidate.name, ""),
                required_by=tuple(sorted(parents.get(candidate.name, ()))),
                required_as=tuple(sorted(required_as.get(candidate.name, {}).items())),
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
        requires_python=target.lock_requires_python(),
        environments=(target.environment_marker(),),
        packages=tuple(packages),
        phases=locked_phases,
        inputs=lock_inputs(spec, target),
        rules=applied_rules(spec.rules, target, packages),
        rules_version=spec.rules.version,
    )


def _base(key: str) -> str:
    return key.split("[", 1)[0]


def _phase_membership(roots: Sequence[Req], result: Result[Req, Candidate, str]) -> dict[str, str]:
    """Each package's phase: the earliest phase whose requirements reach it."""
    children: dict[str, set[str]] = {}
    for key, parents in _requirers(result).items():
        for parent in parents:
            if parent is not None:
                children.setdefault(parent, set()).add(key)
    phase_of: dict[str, str] = {}
    visited: set[str] = set()
    for root in roots:  # in phase order, so the first phase to reach a name keeps it
        assert root.origin.phase is not None
        stack = [root.key]
        while stack:
            key = stack.pop()
            if key in visited or key not in result.mapping or result.mapping[key].absent:
                continue
            visited.add(key)
            phase_of.setdefault(_base(key), root.origin.phase)
            stack.extend(sorted(children.get(key, ())))
    return phase_of


def _parents(result: Result[Req, Candidate, str]) -> dict[str, set[str]]:
    parents: dict[str, set[str]] = {}
    for key, requirers in _requirers(result).items():
        name = _base(key)
        for parent in requirers:
            label = SPEC_ROOT if parent is None else _base(parent)
            if label not in (name, PYTHON):
                parents.setdefault(name, set()).add(label)
    return parents


def _required_as(result: Result[Req, Candidate, str]) -> dict[str, dict[str, str]]:
    """For each pin, what each package requiring it declares on it, one requirement per
    parent (a parent's several requirements on it, under markers or extras, combined; its own,
    not the override that replaced it):
    `why` shows it on each edge (``transformers 5.5.0 requires huggingface-hub<1.0,>=0.34``)."""
    keys = {id(candidate): key for key, candidate in result.mapping.items()}
    found: dict[str, dict[str, list[Req]]] = {}
    for key, candidate in result.mapping.items():
        if candidate.absent:
            continue
        for info in result.criteria[key].information:
            parent = keys.get(id(info.parent)) if info.parent is not None else None
            if parent is None or info.requirement.constraint:
                continue
            name, label = _base(key), _base(parent)
            if label not in (name, PYTHON):
                found.setdefault(name, {}).setdefault(label, []).append(info.requirement)
    return {
        name: {label: _declared(reqs) for label, reqs in by_parent.items()}
        for name, by_parent in found.items()
    }


def _declared(reqs: Sequence[Req]) -> str:
    """What a parent declares on a name: its own requirement where an override stands for it
    (the override is the spec's, and `why` says it replaced this one)."""
    return next((r.origin.replaces for r in reqs if r.origin.replaces), "") or _combined(reqs)


def _combined(reqs: Sequence[Req]) -> str:
    """One requirement text for a parent's requirements on one name, without markers."""
    url = next((r.url for r in reqs if r.url), None)
    extras = sorted({e for r in reqs for e in r.extras})
    text = reqs[0].name + (f"[{','.join(extras)}]" if extras else "")
    if url:
        return f"{text} @ {redact(url)}"
    specifier = reqs[0].specifier
    for req in reqs[1:]:
        specifier &= req.specifier
    return text + str(specifier)


def _requirers(result: Result[Req, Candidate, str]) -> dict[str, set[str | None]]:
    """Who requires each installed pin (None: the spec), as resolvelib's graph has it but
    without a rule's constraints: a constraint bounds a name, it does not require it."""
    keys = {id(candidate): key for key, candidate in result.mapping.items()}
    out: dict[str, set[str | None]] = {}
    for key, candidate in result.mapping.items():
        if candidate.absent:
            continue
        for info in result.criteria[key].information:
            if info.requirement.constraint:
                continue
            parent = None if info.parent is None else keys.get(id(info.parent))
            if info.parent is None or parent is not None:
                out.setdefault(key, set()).add(parent)
    return out


def _missing(provider: Provider) -> set[str]:
    return {name for name, index in provider.files.used_indexes.items() if index is None}
