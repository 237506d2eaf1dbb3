"""`envspec lock`'s act: resolve the targets whose locks are stale or missing (see
`lockfile.status`), concurrently and sharing one finder, and write their locks.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from envspec.lockfile import write_lock
from envspec.lockfile.status import TargetStatus
from envspec.model import Lock, Spec
from envspec.resolve.resolve import LockSource, resolve_target
from envspec.targets import make_target

log = logging.getLogger("envspec")


@dataclass(frozen=True, kw_only=True, slots=True)
class Locked:
    """The outcome for one target."""

    target: str
    path: Path
    lock: Lock
    written: bool


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
