"""`envspec lock`'s act: resolve the targets whose locks are stale or missing (see
`lockfile.status`), concurrently and sharing one finder, and write their locks. It is the
command layer's because it writes files and reads the host (which platform this machine is,
for metadata built here); the resolver below it does neither.

Before writing, a target that ends up with a much older version of a name than the other
targets (another minor release or more) is reported with the reason, in `fit`'s words:
``macos-arm64 locks bitsandbytes 0.42.0, much older than 0.50.2 on linux-x86_64: bitsandbytes
0.50.2 has wheels for macOS 15.0+ only (…): set [targets.macos-arm64] macos = "15.0"``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from envspec.errors import EnvspecError
from envspec.index import FinderSettings, FinderStats, open_finder
from envspec.lockfile import write_lock
from envspec.lockfile.status import TargetStatus
from envspec.model import Artifact, Lock, LockedPackage, Spec, Target
from envspec.resolve.fit import no_fit_reason
from envspec.resolve.resolve import LockSource, resolve_target
from envspec.secret import redact
from envspec.targets import host_target, make_target, wheel_filter

log = logging.getLogger("envspec")


@dataclass(frozen=True, kw_only=True, slots=True)
class Locked:
    """The outcome for one target."""

    target: str
    path: Path
    lock: Lock
    written: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class LockRun:
    """What `run_lock` did: each target's outcome, and what its fetching cost."""

    results: tuple[Locked, ...]
    stats: FinderStats


def run_lock(
    spec: Spec,
    statuses: Sequence[TargetStatus],
    todo: Sequence[TargetStatus],
    *,
    environ: Mapping[str, str],
    settings: FinderSettings,
    upgrade: bool = False,
    upgrade_packages: Collection[str] = (),
    write: bool = True,
) -> LockRun:
    """Lock the targets `todo` names, with one finder over the spec's indexes; `statuses`
    (every target's) lend their locks' files to mirrors (see `locked_files`). Without
    `write` (`sync --dry-run`) the locks are made and returned, not written."""
    finder = open_finder(
        spec.indexes,
        environ,
        settings,
        known_files=locked_files(statuses),
        keep_file=wheel_filter(
            [make_target(s.target, spec.python, spec.settings_for(s.target)) for s in todo]
        ),
    )
    try:
        results = lock_targets(
            spec,
            todo,
            finder,
            upgrade=upgrade,
            upgrade_packages=upgrade_packages,
            concurrent=not settings.offline,
            write=write,
        )
    finally:
        stats = finder.stats
        finder.close()
    return LockRun(results=tuple(results), stats=stats)


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
    concurrent: bool = True,
    write: bool = True,
) -> list[Locked]:
    """Resolve the given targets (concurrently, so one target's waits on the network overlap
    another's work; one after another when nothing is waited for, `--offline`: threads
    competing for the GIL only cost) and write each lock whose bytes changed (none without
    `write`: `sync --dry-run`)."""
    host = host_target()

    def one(status: TargetStatus) -> Lock:
        target = make_target(status.target, spec.python, spec.settings_for(status.target))
        variant = spec.variant(status.variant) if status.variant else None
        lock = resolve_target(
            spec.for_variant(variant),
            target,
            source,
            host=host,
            previous=status.previous,
            upgrade=upgrade,
            upgrade_packages=upgrade_packages,
        )
        if variant is None:
            return lock
        return dataclasses.replace(
            lock, variant=variant.name, needs=variant.needs_for(status.target)
        )

    if len(statuses) == 1 or not concurrent:
        locks = [one(status) for status in statuses]
    else:
        with ThreadPoolExecutor(max_workers=len(statuses)) as pool:
            locks = list(pool.map(one, statuses))
    _warn_unused_overrides(spec, locks)
    for variant in dict.fromkeys(lock.variant for lock in locks):  # targets of one build
        _warn_diverging(spec, [lock for lock in locks if lock.variant == variant], source)
    # Every target resolved before any lock is written: a failure leaves all locks as they were.
    return [
        Locked(target=s.target, path=s.path, lock=lock, written=write and write_lock(s.path, lock))
        for s, lock in zip(statuses, locks, strict=True)
    ]


def _much_older(old: Version, new: Version) -> bool:
    """Older by a minor release or more: (0.42, 0.50), (2024.8, 2026.8), not (2.4.0, 2.4.1)."""
    return old < new and (*old.release, 0)[:2] != (*new.release, 0)[:2]


def _warn_diverging(spec: Spec, locks: Sequence[Lock], source: LockSource) -> None:
    """A target holding a much older version of a name than the others did not choose it:
    say which, and why, in the words `fit` uses for a version that fits no file."""
    if len(locks) < 2:
        return
    seen: dict[str, dict[str, LockedPackage]] = {}
    for lock in locks:
        for package in lock.packages:
            seen.setdefault(package.name, {})[lock.target] = package
    for name, by_target in sorted(seen.items()):
        newest = max(p.version for p in by_target.values())
        ahead = sorted(t for t, p in by_target.items() if p.version == newest)
        for target_name, package in sorted(by_target.items()):
            if _much_older(package.version, newest):
                target = make_target(target_name, spec.python, spec.settings_for(target_name))
                reason = _why_older(spec, package, newest, target, source)
                log.warning(
                    "%s locks %s %s, much older than %s on %s: %s",
                    target_name,
                    name,
                    package.version,
                    newest,
                    ", ".join(ahead),
                    reason,
                )


def _why_older(
    spec: Spec, package: LockedPackage, newest: Version, target: Target, source: LockSource
) -> str:
    index = next(
        (i for i in spec.indexes if package.index and _same(i.location.public, package.index)),
        None,
    )
    files: list[Artifact] = []
    if index is not None:
        try:
            files = source.every_file(package.name, index, newest)
        except EnvspecError as exc:
            log.debug("cannot list %s: %s", package.name, exc)
    reason = no_fit_reason(package.name, newest, files, target, spec.resolution) if files else ""
    return reason or (
        f"{package.name} {newest} has a file for {target.name}, but the rest of that "
        f"target's requirements hold it back: see 'envspec why {package.name} "
        f"--target {target.name}'"
    )


def _same(a: str, b: str) -> bool:
    return redact(a).rstrip("/") == redact(b).rstrip("/")


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
