"""The sync plan: what an environment lacks against a lock, phase by phase (pure).

A locked package is satisfied when a distribution of that name is installed at exactly the
locked version (and, for a git source, at the locked commit). Everything else in a phase is
installed by that phase; with `exact`, what the lock does not name at all is removed.
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

Action = Literal["install", "upgrade", "downgrade", "reinstall"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Installed:
    """A distribution found in an environment's site-packages."""

    name: NormalizedName
    version: str
    requires: tuple[str, ...] = ()
    url: str | None = None  # PEP 610 direct_url.json "url", when installed from a URL
    commit: str | None = None  # PEP 610 vcs_info.commit_id


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    """One package a phase installs."""

    package: LockedPackage
    action: Action
    installed: str | None  # the version there now, if any


@dataclass(frozen=True, kw_only=True, slots=True)
class PhasePlan:
    """What one phase of the lock does to the environment."""

    phase: LockedPhase
    steps: tuple[Step, ...]
    no_build_isolation: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """The whole sync: phases in lock order, then (with `exact`) removals."""

    phases: tuple[PhasePlan, ...]
    remove: tuple[Installed, ...]

    @property
    def empty(self) -> bool:
        return not self.remove and not any(p.steps for p in self.phases)

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
    for locked_phase in phases_upto(lock, phase):
        packages = [] if locked_phase.skipped else by_phase.get(locked_phase.name, [])
        steps = [_step(p, have.get(p.name)) for p in sorted(packages, key=lambda p: p.name)]
        phases.append(
            PhasePlan(
                phase=locked_phase,
                steps=tuple(s for s in steps if s is not None),
                no_build_isolation=locked_phase.name in no_build_isolation,
            )
        )
    named = {p.name for p in lock.packages}
    remove = tuple(d for n, d in sorted(have.items()) if n not in named) if exact else ()
    return Plan(phases=tuple(phases), remove=remove)


def _step(package: LockedPackage, dist: Installed | None) -> Step | None:
    if dist is None:
        return Step(package=package, action="install", installed=None)
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


def all_hashed(steps: Sequence[Step]) -> bool:
    """Whether uv can run in `--require-hashes` mode for these steps (git has no hash)."""
    return all(s.package.artifact is not None and s.package.artifact.sha256 for s in steps)


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
                    }
                    for s in phase_plan.steps
                ],
            }
        )
    return out


def installed_versions(installed: Iterable[Installed]) -> Mapping[str, str]:
    return {dist.name: dist.version for dist in installed}
