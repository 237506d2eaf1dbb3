"""The sync plan: what an environment lacks against a lock, phase by phase (pure).

A locked package is satisfied when a distribution of that name is installed, sound (see
`Installed.problem`), at exactly the locked version (and, for a git source, at the locked
commit). Everything else in a phase is installed by that phase, a broken one as a `repair`
(installed afresh); a broken distribution the lock does not name is removed (`Plan.repair`);
with `exact`, whatever else the lock does not name is removed too.
Installs are given to uv as `name @ url --hash=sha256:…` lines, so nothing is resolved at
install time and every byte is checked against the lock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version

from envspec.errors import UsageError, did_you_mean
from envspec.model import Lock, LockedPackage, LockedPhase

Action = Literal["install", "upgrade", "downgrade", "reinstall", "repair"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Installed:
    """A distribution found in an environment's site-packages."""

    name: NormalizedName
    version: str
    requires: tuple[str, ...] = ()
    url: str | None = None  # PEP 610 direct_url.json "url", when installed from a URL
    commit: str | None = None  # PEP 610 vcs_info.commit_id
    problem: str | None = None  # why it is broken (unreadable, no RECORD, several copies)
    discard: tuple[str, ...] = ()  # what uv cannot handle: deleted before a repair


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    """One package a phase installs."""

    package: LockedPackage
    action: Action
    installed: str | None  # the version there now, if any
    problem: str | None = None  # what a repair repairs


@dataclass(frozen=True, kw_only=True, slots=True)
class PhasePlan:
    """What one phase of the lock does to the environment."""

    phase: LockedPhase
    steps: tuple[Step, ...]
    no_build_isolation: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """The whole sync: repairs, then (with `exact`) removals, then phases in lock order."""

    phases: tuple[PhasePlan, ...]
    remove: tuple[Installed, ...]
    repair: tuple[Installed, ...] = ()  # broken distributions the lock does not name
    discard: tuple[str, ...] = ()  # what uv cannot handle, of every distribution repaired

    @property
    def empty(self) -> bool:
        return not self.remove and not self.repair and not any(p.steps for p in self.phases)

    @property
    def install_count(self) -> int:
        return sum(len(p.steps) for p in self.phases)


def phases_upto(lock: Lock, phase: str | None) -> tuple[LockedPhase, ...]:
    """The lock's phases, cut after `phase` when one is named (`--phase`)."""
    if phase is None:
        return lock.phases
    names = [p.name for p in lock.phases]
    if phase not in names:
        hint = did_you_mean(phase, names) or "phases in the lock: " + ", ".join(names)
        raise UsageError(f"no phase '{phase}' in the lock for {lock.target}", hint=hint)
    return lock.phases[: names.index(phase) + 1]


def make_plan(
    lock: Lock,
    installed: Iterable[Installed],
    *,
    phase: str | None = None,
    exact: bool = False,
    no_build_isolation: Collection[str] = (),
) -> Plan:
    """Compare `installed` with `lock`; see the module docstring."""
    have = {dist.name: dist for dist in installed}
    by_phase: dict[str, list[LockedPackage]] = {}
    for package in lock.packages:
        by_phase.setdefault(package.phase, []).append(package)
    phases = []
    repaired: list[Installed] = []
    for locked_phase in phases_upto(lock, phase):
        packages = [] if locked_phase.skipped else by_phase.get(locked_phase.name, [])
        steps = [_step(p, have.get(p.name)) for p in sorted(packages, key=lambda p: p.name)]
        repaired += [have[s.package.name] for s in steps if s is not None and s.problem]
        phases.append(
            PhasePlan(
                phase=locked_phase,
                steps=tuple(s for s in steps if s is not None),
                no_build_isolation=locked_phase.name in no_build_isolation,
            )
        )
    named = {p.name for p in lock.packages}
    unnamed = [d for n, d in sorted(have.items()) if n not in named]
    repair = tuple(d for d in unnamed if d.problem)
    remove = tuple(d for d in unnamed if not d.problem) if exact else ()
    discard = tuple(path for d in (*repair, *repaired) for path in d.discard)
    return Plan(phases=tuple(phases), remove=remove, repair=repair, discard=discard)


def _step(package: LockedPackage, dist: Installed | None) -> Step | None:
    if dist is None:
        return Step(package=package, action="install", installed=None)
    if dist.problem:
        return Step(package=package, action="repair", installed=dist.version, problem=dist.problem)
    same_version = _version(dist.version) == package.version
    if same_version and (package.vcs is None or dist.commit == package.vcs.commit_id):
        return None
    action: Action = "reinstall"
    now = _version(dist.version)
    if now is not None and now != package.version:
        action = "upgrade" if now < package.version else "downgrade"
    return Step(package=package, action=action, installed=dist.version)


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def requirement_line(package: LockedPackage) -> str:
    """The requirements-file line that installs exactly this locked package."""
    if package.vcs is not None:
        url = package.vcs.url if package.vcs.url.startswith("git+") else f"git+{package.vcs.url}"
        return f"{package.name} @ {url}@{package.vcs.commit_id}"
    artifact = package.artifact
    if artifact is None:  # the lockfile parser refuses such a package; a hand-built Lock may not
        raise UsageError(f"package '{package.name}' of the lock has no artifact or git source")
    line = f"{package.name} @ {artifact.url}"
    return f"{line} --hash=sha256:{artifact.sha256}" if artifact.sha256 else line


def requirements_text(steps: Sequence[Step]) -> str:
    return "".join(requirement_line(step.package) + "\n" for step in steps)


def describe(plan: Plan) -> list[dict[str, object]]:
    """The plan as plain data, for `--dry-run` output and the JSON `plan` event."""
    out: list[dict[str, object]] = []
    for phase_plan in plan.phases:
        out.append(
            {
                "phase": phase_plan.phase.name,
                "optional": phase_plan.phase.optional,
                "skipped": phase_plan.phase.skipped,
                "steps": [
                    {
                        "name": s.package.name,
                        "version": str(s.package.version),
                        "action": s.action,
                        "installed": s.installed,
                        **({"problem": s.problem} if s.problem else {}),
                    }
                    for s in phase_plan.steps
                ],
            }
        )
    return out


def describe_repairs(plan: Plan) -> list[dict[str, str | None]]:
    """The broken distributions the lock does not name, which the sync removes."""
    return [{"name": d.name, "version": d.version, "problem": d.problem} for d in plan.repair]


def installed_versions(installed: Iterable[Installed]) -> Mapping[str, str]:
    return {dist.name: dist.version for dist in installed}
