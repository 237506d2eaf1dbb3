"""Which lock applies to an environment: the target whose platform markers the interpreter
has, then a check that the lock's `environments` and `requires-python` hold for it.

Only the one matching lock file is read, so a sync with nothing to do parses one file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from packaging.markers import InvalidMarker, Marker
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from envspec.apply.environment import Environment
from envspec.errors import StaleLockError, UsageError
from envspec.lockfile import load_lock, lock_path
from envspec.model import Lock
from envspec.targets import KNOWN


def target_of(env: Environment) -> str | None:
    """The known target name of the environment's platform, if any."""
    markers = env.marker_environment()
    for name, (sys_platform, _system, _os, machine) in KNOWN.items():
        if markers["sys_platform"] == sys_platform and markers["platform_machine"] == machine:
            return name
    return None


def select_lock(
    project: Path, env: Environment, targets: Sequence[str]
) -> tuple[Path, Lock]:
    """The lock for `env` in `project`'s `locks/` (`targets`: the spec's, for the hint when
    it is missing); see the module docstring."""
    target = target_of(env)
    markers = env.marker_environment()
    what = target or (
        f"sys_platform '{markers['sys_platform']}', "
        f"platform_machine '{markers['platform_machine']}'"
    )
    path = require_lock(project, target, targets, what=what)
    lock = load_lock(path)
    _check_fits(lock, path, env)
    return path, lock


def require_lock(
    project: Path, target: str | None, targets: Sequence[str], *, what: str = ""
) -> Path:
    """The path of `target`'s lock, which must exist: else an error naming the locks that
    do, and what to do (add the target to the spec, or lock it)."""
    if target is not None and lock_path(project, target).exists():
        return lock_path(project, target)
    found = sorted(p.name for p in (project / "locks").glob("pylock.*.toml"))
    todo = "run 'envspec lock'"
    if target is not None and target not in targets:
        todo = f"add '{target}' to [environment] targets, then {todo}"
    elif target is not None:
        todo = f"{todo} to write it"
    hint = f"locks that exist: {', '.join(found)}; {todo}" if found else (
        f"no locks exist yet; {todo}"
    )
    raise StaleLockError(
        f"no lock for this environment's platform ({what or target or 'not a known target'})",
        context=str(project / "locks"),
        hint=hint,
    )


def _check_fits(lock: Lock, path: Path, env: Environment) -> None:
    markers = env.marker_environment()
    for text in lock.environments:
        try:
            fits = Marker(text).evaluate(markers)
        except InvalidMarker:  # the lock parser has checked; a hand-built lock may not be
            fits = False
        if not fits:
            raise StaleLockError(
                f"the lock is for environments '{text}', which this environment is not",
                context=str(path),
                hint="run 'envspec lock' to rewrite it for its target",
            )
    if lock.requires_python:
        try:
            fits = SpecifierSet(lock.requires_python).contains(env.python_version, prereleases=True)
        except InvalidSpecifier:
            fits = False
        if not fits:
            raise UsageError(
                f"the lock is for Python {lock.requires_python}, "
                f"the environment has Python {env.python_version}",
                context=str(path),
                hint="pass --python with a matching interpreter, "
                "or change [environment] python and run 'envspec lock'",
            )
