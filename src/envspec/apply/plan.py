"""The sync plan: what an environment lacks against a lock, phase by phase (pure).

A locked package is satisfied when a distribution of that name is installed, sound (see
`Installed.problem`), at exactly the locked version (and, for a git source, at the locked
commit). Everything else in a phase is installed by that phase, a broken one as a `repair`
(installed afresh); a broken distribution the lock does not name is removed (`Plan.repair`);
with `exact` (the default of `envspec sync`, as of `uv sync` and pip-sync), whatever else the
lock does not name is removed too, but for the names in `keep` (the seed packages of an
environment uv did not make, as uv keeps them: see `environment`).

What uv is given (`install_calls`), so that nothing is resolved at install time, every byte is
checked against the lock, and an index package is installed as a registry install (PEP 610
keeps `direct_url.json` for direct references; `pip freeze` then says `name==version`):
- the phase's index packages as a PEP 751 file (`pylock.toml`, uv's `-r pylock.toml`) whose
  entries name the canonical index and the verified file in the artifact store by `path`,
  with its sha256, under `--require-hashes`;
- its URL packages as `name @ url --hash=sha256:…` lines, also under `--require-hashes`;
- its git packages as `name @ git+url@commit` lines (git has no file hash to require).

Why a PEP 751 file and not a find-links folder (`--no-index --find-links DIR` with
`name==version --hash=…` lines, the other way to registry installs). Measured on the bench set
(63 wheels in 3 phases into a new environment, uv's cache warm, 10 runs each, busy 2-core
machine): as fast within the noise (best 0.68 s against 0.82 s, median 1.67 s against 1.66 s;
another run 0.46/0.51 s best, 1.22/1.40 s median); the same dist-info (`name==version`, no
`direct_url.json`, uv's `uv_cache.json`, REQUESTED everywhere); the same use of uv's cache (one
unpacked copy per stored file, shared by every environment; a per-sync find-links folder would
unpack again each time, so it must be one stable folder per file). What decides: with
`--no-index` an index sdist cannot get its build requirements, and without it uv asks the
index for every name and installs the index's copy rather than the stored one (measured); a
PEP 751 file resolves nothing, contacts no index for the files it names, and still lets a
build reach the indexes. It cannot be mixed with other requirements in one uv call, hence up
to three calls for a phase that has URL or git packages too.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
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
    keep: Collection[str] = (),
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
    remove = tuple(d for d in unnamed if not d.problem and d.name not in keep) if exact else ()
    discard = tuple(path for d in (*repair, *repaired) for path in d.discard)
    return Plan(phases=tuple(phases), remove=remove, repair=repair, discard=discard)


def _step(package: LockedPackage, dist: Installed | None) -> Step | None:
    if dist is None:
        return Step(package=package, action="install", installed=None)
    if dist.problem:
        return Step(package=package, action="repair", installed=dist.version, problem=dist.problem)
    if _version(dist.version) == package.version and same_source(package, dist):
        return None
    action: Action = "reinstall"
    now = _version(dist.version)
    if now is not None and now != package.version:
        action = "upgrade" if now < package.version else "downgrade"
    return Step(package=package, action=action, installed=dist.version)


def same_source(package: LockedPackage, dist: Installed) -> bool:
    """Whether `dist` came from where the lock takes `package`: its git commit; for an index
    package, an index (no PEP 610 URL: earlier envspec syncs, a hand-installed build or an
    editable install have one); for a URL package, a URL (a hand install from an index has
    none, as `uv pip sync` puts the URL's build back)."""
    if package.vcs is not None:
        return dist.commit == package.vcs.commit_id
    return not dist.url if package.index else dist.url is not None


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


@dataclass(frozen=True, kw_only=True, slots=True)
class InstallCall:
    """One `uv pip install` of a phase: a PEP 751 file or a requirements file."""

    pylock: bool
    text: str
    require_hashes: bool
    reinstall: tuple[str, ...]  # names already installed at the locked version, to replace
    # A repair unpacks afresh: uv hardlinks installed files from its cache, so the damage of a
    # file changed in place is in uv's cache entry too, and `--reinstall-package` reuses the
    # entry of a local file (measured).
    fresh: bool = False


def install_calls(
    steps: Sequence[Step], stored: Mapping[str, Path], *, local: bool = False
) -> tuple[InstallCall, ...]:
    """The uv calls that install `steps` (see the module docstring); `stored` gives each
    index artifact's file in the store by sha256. `local` (a sync from a bundle): URL
    packages too are installed from their stored files, so uv fetches nothing."""
    index = [s for s in steps if _kind(s.package) == "index"]
    url = [s for s in steps if _kind(s.package) == "url"]
    git = [s for s in steps if _kind(s.package) == "git"]
    calls = []
    if index:
        calls.append(_call(index, pylock_text([s.package for s in index], stored), pylock=True))
    if url:
        text = _stored_lines(url, stored) if local else requirements_text(url)
        calls.append(_call(url, text, pylock=False))
    if git:
        calls.append(_call(git, requirements_text(git), pylock=False, hashed=False))
    return tuple(calls)


def _stored_lines(steps: Sequence[Step], stored: Mapping[str, Path]) -> str:
    lines = []
    for step in steps:
        artifact = step.package.artifact
        assert artifact is not None and artifact.sha256  # a URL package has a hashed file
        path = stored[artifact.sha256].as_uri()
        lines.append(f"{step.package.name} @ {path} --hash=sha256:{artifact.sha256}\n")
    return "".join(lines)


def _kind(package: LockedPackage) -> Literal["index", "url", "git"]:
    if package.vcs is not None:
        return "git"
    return "index" if package.index else "url"


def _call(steps: Sequence[Step], text: str, *, pylock: bool, hashed: bool = True) -> InstallCall:
    again = tuple(s.package.name for s in steps if s.action in ("reinstall", "repair"))
    fresh = any(s.action == "repair" for s in steps)
    return InstallCall(
        pylock=pylock, text=text, require_hashes=hashed, reinstall=again, fresh=fresh
    )


def pylock_text(packages: Sequence[LockedPackage], stored: Mapping[str, Path]) -> str:
    """A PEP 751 file installing exactly `packages` (index packages) from their stored files."""
    out = ['lock-version = "1.0"', 'created-by = "envspec"']
    for package in packages:
        artifact = package.artifact
        if artifact is None or not artifact.sha256 or not package.index:
            raise UsageError(f"package '{package.name}' of the lock has no index artifact")
        entry = (
            f"{{name = {_toml(artifact.filename)}, path = {_toml(str(stored[artifact.sha256]))}, "
            f"hashes = {{sha256 = {_toml(artifact.sha256)}}}}}"
        )
        out += [
            "",
            "[[packages]]",
            f"name = {_toml(package.name)}",
            f"version = {_toml(str(package.version))}",
            f"index = {_toml(package.index)}",
            f"wheels = [{entry}]" if artifact.kind == "wheel" else f"sdist = {entry}",
        ]
    return "\n".join(out) + "\n"


def _toml(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's (non-ASCII is left as UTF-8, since
    JSON would write astral characters as surrogate pairs, which TOML refuses)."""
    return json.dumps(text, ensure_ascii=False)


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
