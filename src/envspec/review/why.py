"""Why a package is in the environment (``envspec why NAME``): on each target, the chains of
requirements from the spec down to it, the phase it lands in, and its pinned version, source
and index.

Pure: it reads the locks' own records (each package's ``required-by`` and the spec inputs the
lock was made from), so it explains the lock as it is, even when the spec has changed since.
Chains are walked upward from the package through ``required-by`` to the spec, shortest first,
at most `MAX_CHAINS` per target (dependency graphs can hold exponentially many paths); each
edge shows what the package above declares on the one below (``required-as``:
``transformers 5.5.0 requires huggingface-hub<1.0,>=0.34``), and the `[resolution] override`
taken in its place, if any (``requests 2.32.3 requires idna<4,>=2.5 (overridden: idna==3.4)``).

Errors (`UsageError`, exit 2): ``package 'nump' is not in any lock`` (or ``... is not in the
lock for linux-x86_64`` when one target was asked), with a "did you mean".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envspec.errors import UsageError, did_you_mean
from envspec.model import SPEC_ROOT, Lock, LockedPackage

MAX_CHAINS = 10
_MAX_STEPS = 10_000  # partial paths explored per target before giving up on more chains


@dataclass(frozen=True, kw_only=True, slots=True)
class Chain:
    """A spec requirement and the packages it leads through, ending at the asked package."""

    phase: str
    requirement: str
    path: tuple[tuple[str, str], ...]  # (name, version), from the spec's package to the asked one
    # what each package on the path declares on the next (`huggingface-hub<1.0,>=0.34`); ""
    # where the lock does not record it (locks made before `required-as`)
    requires: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetWhy:
    target: str
    package: LockedPackage | None  # None: not locked on this target
    chains: tuple[Chain, ...] = ()
    more: int = 0  # chains found beyond MAX_CHAINS (a lower bound when the search was cut)
    constraints: tuple[str, ...] = ()  # the `[resolution] constraints` on it, as written


@dataclass(frozen=True, kw_only=True, slots=True)
class WhyReport:
    name: str
    targets: tuple[TargetWhy, ...]


def why(locks: Mapping[str, Lock], name: str, *, where: str = "locks") -> WhyReport:
    """Explain `name` on every target of `locks`; `where` names the locks in errors."""
    wanted = canonicalize_name(name)
    if not any(lock.package(wanted) for lock in locks.values()):
        names = sorted({p.name for lock in locks.values() for p in lock.packages})
        hint = did_you_mean(wanted, names) or "see the locks' [[packages]] for the locked names"
        scope = f"the lock for {next(iter(locks))}" if len(locks) == 1 else "any lock"
        raise UsageError(f"package '{name}' is not in {scope}", context=where, hint=hint)
    return WhyReport(
        name=wanted, targets=tuple(_target_why(locks[t], wanted) for t in sorted(locks))
    )


def _target_why(lock: Lock, name: str) -> TargetWhy:
    package = lock.package(name)
    if package is None:
        return TargetWhy(target=lock.label, package=None)
    paths = _upward_paths(lock, name)
    roots = _spec_requirements(lock.inputs)
    versions: dict[str, str] = {p.name: str(p.version) for p in lock.packages}
    overrides = _overrides(lock.inputs)
    declared: dict[tuple[str, str], str] = {
        (p.name, parent): _overridden(text, overrides.get(p.name))
        for p in lock.packages
        for parent, text in p.required_as
    }
    chains = []
    for path in paths:
        top = path[-1]
        names = tuple(reversed(path))
        steps = tuple((n, versions.get(n, "?")) for n in names)
        requires = tuple(declared.get((child, parent), "") for parent, child in pairwise(names))
        fallback = [((lock.package(top) or package).phase, top)]
        for phase, requirement in roots.get(top, fallback):
            said = _overridden(requirement, overrides.get(top))
            chains.append(Chain(phase=phase, requirement=said, path=steps, requires=requires))
    return TargetWhy(
        target=lock.label,
        package=package,
        chains=tuple(chains[:MAX_CHAINS]),
        more=max(0, len(chains) - MAX_CHAINS),
        constraints=tuple(_named(lock.inputs, "constraints").get(name, [])),
    )


def _upward_paths(lock: Lock, name: str) -> list[tuple[str, ...]]:
    """Paths from `name` up to a package the spec asks for, shortest first (breadth-first)."""
    parents: dict[str, tuple[str, ...]] = {p.name: p.required_by for p in lock.packages}
    found: list[tuple[str, ...]] = []
    queue: deque[tuple[str, ...]] = deque([(name,)])
    steps = 0
    while queue and len(found) <= MAX_CHAINS and steps < _MAX_STEPS:
        path = queue.popleft()
        steps += 1
        for parent in parents.get(path[-1], ()):
            if parent == SPEC_ROOT:
                found.append(path)
            elif parent not in path:
                queue.append((*path, parent))
    return found


def _overrides(inputs: Mapping[str, Any]) -> dict[str, str]:
    """The `[resolution] overrides` the lock was made with, by name (one per name)."""
    return {name: texts[0] for name, texts in _named(inputs, "overrides").items()}


def _named(inputs: Mapping[str, Any], key: str) -> dict[str, list[str]]:
    """The `[resolution]` requirement list `key` the lock was made with, by name."""
    resolution = inputs.get("resolution")
    out: dict[str, list[str]] = {}
    for text in resolution.get(key, []) if isinstance(resolution, Mapping) else []:
        try:
            out.setdefault(canonicalize_name(Requirement(str(text)).name), []).append(str(text))
        except InvalidRequirement:
            continue
    return out


def _overridden(declared: str, override: str | None) -> str:
    """A requirement as declared, and the override the lock took in its place."""
    if override is None or not declared or declared == override:
        return declared
    return f"{declared} (overridden: {override})"


def _spec_requirements(inputs: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """(phase, requirement text) for each name the lock's recorded spec phases ask for."""
    out: dict[str, list[tuple[str, str]]] = {}
    for phase in inputs.get("phases", []):
        if not isinstance(phase, Mapping):
            continue
        for text in phase.get("requirements", []):
            try:
                requirement = Requirement(str(text))
            except InvalidRequirement:
                continue
            key = canonicalize_name(requirement.name)
            out.setdefault(key, []).append((str(phase.get("name", "")), str(text)))
    return out


def source_text(package: LockedPackage) -> str:
    """Where a pin comes from, in one phrase."""
    if package.vcs is not None:
        return f"git {package.vcs.url} at {package.vcs.commit_id}"
    artifact = package.artifact
    if package.index:
        return f"index {package.index}" + (f", file {artifact.filename}" if artifact else "")
    return f"URL {artifact.url}" if artifact else "unknown source"


def render_text(report: WhyReport) -> str:
    """The report for a terminal: per target, the pin and its chains."""
    lines: list[str] = []
    for entry in report.targets:
        package = entry.package
        if package is None:
            lines.append(f"{entry.target}: {report.name} is not locked on this target")
            continue
        lines.append(f"{entry.target}: {package.name} {package.version}, phase {package.phase}")
        lines.append(f"  from {source_text(package)}")
        lines += [f"  {chain_text(chain)}" for chain in entry.chains]
        if entry.more:
            lines.append(f"  … and {entry.more} more chain{'s' if entry.more != 1 else ''}")
        lines += [f"  bounded by [resolution] constraints: {c}" for c in entry.constraints]
    return "\n".join(lines) + "\n"


def chain_text(chain: Chain) -> str:
    """``phase app: app>=1 → app 1.0 requires numpy>=1.20 → numpy 1.26.4``"""
    steps = []
    for i, (name, version) in enumerate(chain.path):
        declared = chain.requires[i] if i < len(chain.requires) else ""
        steps.append(f"{name} {version}" + (f" requires {declared}" if declared else ""))
    return f"phase {chain.phase}: {chain.requirement} → {' → '.join(steps)}"


def to_json(report: WhyReport) -> dict[str, Any]:
    """The report as plain data (``--json``)."""
    return {
        "name": report.name,
        "targets": [
            {
                "target": e.target,
                "locked": e.package is not None,
                "version": str(e.package.version) if e.package else None,
                "phase": e.package.phase if e.package else None,
                "index": e.package.index if e.package else None,
                "source": source_text(e.package) if e.package else None,
                "chains": [
                    {
                        "phase": c.phase,
                        "requirement": c.requirement,
                        "path": [list(s) for s in c.path],
                        "requires": [r or None for r in c.requires],
                    }
                    for c in e.chains
                ],
                "more-chains": e.more,
                "constraints": list(e.constraints),
            }
            for e in report.targets
        ],
    }
