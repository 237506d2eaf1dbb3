"""`envspec lock` as a plan and an act: which targets are fresh, stale or missing, then
resolve the ones that need it (concurrently, sharing one finder) and write their locks.

A lock is fresh when its recorded inputs equal the spec's inputs for its target; a fresh
lock is kept without touching the network.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.utils import canonicalize_name

from envspec.lockfile import load_lock, lock_path, write_lock
from envspec.model import Lock, Spec
from envspec.resolve.resolve import LockSource, lock_inputs, resolve_target
from envspec.targets import make_target

State = Literal["fresh", "stale", "missing"]
log = logging.getLogger("envspec")


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetStatus:
    """Where one target's lock stands against the spec."""

    target: str
    path: Path
    state: State
    previous: Lock | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Locked:
    """The outcome for one target."""

    target: str
    path: Path
    lock: Lock
    written: bool


def lock_status(spec: Spec, project: Path, targets: Sequence[str]) -> list[TargetStatus]:
    """Compare each target's lock on disk with the spec (reads locks, no network)."""
    out = []
    for name in targets:
        path = lock_path(project, name)
        target = make_target(name, spec.python, spec.settings_for(name))
        if not path.exists():
            out.append(TargetStatus(target=name, path=path, state="missing", previous=None))
            continue
        previous = load_lock(path)
        fresh = previous.inputs == lock_inputs(spec, target)
        state: State = "fresh" if fresh else "stale"
        out.append(TargetStatus(target=name, path=path, state=state, previous=previous))
    return out


def locked_files(statuses: Sequence[TargetStatus]) -> dict[str, tuple[str, int | None]]:
    """Every file the existing locks record: canonical URL → (sha256, size). A mirror must
    serve these files with these hashes (see `envspec.index.mirror`)."""
    known: dict[str, tuple[str, int | None]] = {}
    for status in statuses:
        for package in status.previous.packages if status.previous else ():
            artifact = package.artifact
            if artifact is not None and artifact.sha256:
                known[artifact.url] = (artifact.sha256, artifact.size)
    return known


def lock_targets(
    spec: Spec,
    statuses: Sequence[TargetStatus],
    source: LockSource,
    *,
    upgrade: bool = False,
    upgrade_packages: Collection[str] = (),
) -> list[Locked]:
    """Resolve the given targets concurrently and write each lock whose bytes changed."""

    def one(status: TargetStatus) -> Lock:
        target = make_target(status.target, spec.python, spec.settings_for(status.target))
        return resolve_target(
            spec,
            target,
            source,
            previous=status.previous,
            upgrade=upgrade,
            upgrade_packages=upgrade_packages,
        )

    if len(statuses) == 1:
        locks = [one(statuses[0])]
    else:
        with ThreadPoolExecutor(max_workers=len(statuses)) as pool:
            locks = list(pool.map(one, statuses))
    _warn_unused_overrides(spec, locks)
    # Every target resolved before any lock is written: a failure leaves all locks as they were.
    return [
        Locked(target=s.target, path=s.path, lock=lock, written=write_lock(s.path, lock))
        for s, lock in zip(statuses, locks, strict=True)
    ]


def _warn_unused_overrides(spec: Spec, locks: Sequence[Lock]) -> None:
    """An override of a name no lock holds replaced nothing: most likely a misspelt name."""
    locked = {p.name for lock in locks for p in lock.packages}
    for i, override in enumerate(spec.resolution.overrides):
        name = canonicalize_name(override.name)
        if name not in locked:
            log.warning(
                "resolution.overrides[%d]: override '%s' names %s, which nothing requires",
                i,
                override,
                name,
            )
