"""`envspec lock`'s act: resolve the targets whose locks are stale or missing (see
`lockfile.status`), concurrently and sharing one finder, and write their locks. It is the
command layer's because it writes files and reads the host (which platform this machine is,
for metadata built here); the resolver below it does neither.

Before writing, a target that ends up with a much older version of a name than the other
targets (another minor release or more), or an older one because the newer has no file for
it, is found with the reason, in `fit`'s words, as a
`Divergence` the CLI shows in its summary:
``macos-arm64 locks bitsandbytes 0.42.0, much older than 0.50.2 on linux-x86_64: bitsandbytes
0.50.2 has wheels for macOS 15.0+ only (…): set [targets.macos-arm64] macos = "15.0"``.

A `LockProgress` hears each target start, advance (packages pinned so far, requests made by
the shared finder) and finish; each `Locked` says how many pins changed and how long it took.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from packaging.utils import canonicalize_name
from packaging.version import Version

from envspec import forked
from envspec.errors import EnvspecError
from envspec.index import FinderSettings, FinderStats, open_finder
from envspec.lockfile import remove_legacy_locks, write_locks
from envspec.lockfile.status import TargetStatus
from envspec.model import Lock, LockedPackage, Spec, Target
from envspec.resolve.fit import no_fit_reason
from envspec.resolve.resolve import LockSource, resolve_target
from envspec.secret import redact
from envspec.targets import host_target, make_target, wheel_filter

log = logging.getLogger("envspec")


class LockProgress(Protocol):
    """Hears how each target's resolution goes (from the resolving threads)."""

    def counting(self, requests: Callable[[], int]) -> None: ...  # the finder's, to poll
    def started(self, target: str) -> None: ...
    def advanced(self, target: str, packages: int, requests: int) -> None: ...
    def finished(self, target: str, packages: int, requests: int, seconds: float) -> None: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Changes:
    """How a target's pins moved against its previous lock (`new`: there was none)."""

    added: int = 0
    removed: int = 0
    changed: int = 0  # another version or source of the same name
    new: bool = False

    @property
    def total(self) -> int:
        return self.added + self.removed + self.changed


@dataclass(frozen=True, kw_only=True, slots=True)
class Locked:
    """The outcome for one target."""

    target: str
    path: Path
    lock: Lock
    written: bool
    changes: Changes = Changes()
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Divergence:
    """A target that locks a much older version of a name than another target does."""

    target: str
    name: str
    version: Version
    newest: Version
    ahead: tuple[str, ...]  # the targets at `newest`
    reason: str
    much: bool = True  # another minor release or more

    def text(self) -> str:
        older = "much older" if self.much else "older"
        return (
            f"{self.target} locks {self.name} {self.version}, {older} than {self.newest} "
            f"on {', '.join(self.ahead)}: {self.reason}"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class LockRun:
    """What `run_lock` did: each target's outcome, the divergences across targets, and what
    its fetching cost."""

    results: tuple[Locked, ...]
    stats: FinderStats
    divergences: tuple[Divergence, ...] = ()


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
    before_write: Callable[[], None] | None = None,
    progress: LockProgress | None = None,
) -> LockRun:
    """Lock the targets `todo` names, with one finder over the spec's indexes; `statuses`
    (every target's) lend their locks' files to mirrors (see `locked_files`). Without
    `write` (`sync --dry-run`) the locks are made and returned, not written. `before_write`
    runs once every target has resolved and before any lock is written (`add` writes the
    spec there: nothing is written unless the relock succeeds)."""
    finder = open_finder(
        spec.indexes,
        environ,
        settings,
        known_files=locked_files(statuses),
        # the spec's targets, not only those locked now: the cache keeps pages parsed per
        # filter, so `--target` and a relock of one target read what a full lock parsed
        keep_file=wheel_filter(
            [make_target(name, spec.python, spec.settings_for(name)) for name in spec.targets]
        ),
    )
    if progress is not None:
        progress.counting(lambda: finder.stats.requests)
    with finder:  # closed on the way out; an interrupt does not wait for a stalled read
        results, divergences = lock_targets(
            spec,
            todo,
            finder,
            upgrade=upgrade,
            upgrade_packages=upgrade_packages,
            concurrent=not settings.offline,
            write=write,
            before_write=before_write,
            progress=progress,
            requests=lambda: finder.stats.requests,
        )
        stats = finder.stats
    return LockRun(results=tuple(results), stats=stats, divergences=tuple(divergences))


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
    before_write: Callable[[], None] | None = None,
    progress: LockProgress | None = None,
    requests: Callable[[], int] = lambda: 0,
) -> tuple[list[Locked], list[Divergence]]:
    """Resolve the given targets (in threads, so one target's waits on the network overlap
    another's work; when nothing is waited for, `--offline`, threads competing for the GIL
    only cost, and spare CPUs take parts of the targets instead: `_side_by_side`) and write
    each lock whose bytes changed (none without `write`: `sync --dry-run`)."""
    host = host_target()

    def one(status: TargetStatus, progress: LockProgress | None) -> tuple[Lock, float]:
        name = status.target
        target = make_target(name, spec.python, spec.settings_for(name))
        variant = spec.variant(status.variant) if status.variant else None
        start = time.monotonic()
        if progress is not None:
            progress.started(status.label)
        lock = resolve_target(
            spec.for_variant(variant),
            target,
            source,
            host=host,
            previous=status.previous,
            upgrade=upgrade,
            upgrade_packages=upgrade_packages,
            on_round=(
                (lambda n: progress.advanced(status.label, n, requests())) if progress else None
            ),
        )
        if variant is not None:
            lock = dataclasses.replace(
                lock, variant=variant.name, needs=variant.needs_for(status.target)
            )
        seconds = time.monotonic() - start
        if progress is not None:
            progress.finished(status.label, len(lock.packages), requests(), seconds)
        return lock, seconds

    if concurrent and len(statuses) > 1:
        pool = ThreadPoolExecutor(max_workers=len(statuses))
        try:
            done = list(pool.map(lambda status: one(status, progress), statuses))
        except BaseException as exc:  # an interrupt does not wait for a target's stalled read
            pool.shutdown(wait=not isinstance(exc, KeyboardInterrupt), cancel_futures=True)
            raise
        pool.shutdown()
    else:
        done = _side_by_side(one, statuses, progress)
    locks = [lock for lock, _ in done]
    _warn_unused_overrides(spec, locks)
    divergences = [  # across the targets of one build
        found
        for variant in dict.fromkeys(lock.variant for lock in locks)
        for found in diverging(spec, [lock for lock in locks if lock.variant == variant], source)
    ]
    # Every target resolved before any lock is written: a failure leaves all locks as they were.
    if before_write is not None and write:
        before_write()
    written = [False] * len(locks)
    if write:
        written = write_locks([(s.path, lock) for s, lock in zip(statuses, locks, strict=True)])
        remove_legacy_locks([s.legacy for s in statuses if s.legacy is not None])
    results = [
        Locked(
            target=s.target,
            path=s.path,
            lock=lock,
            written=wrote,
            changes=changes(s.previous, lock),
            seconds=seconds,
        )
        for s, (lock, seconds), wrote in zip(statuses, done, written, strict=True)
    ]
    return results, divergences


_Resolved = tuple[Lock, float]


def _side_by_side(
    one: Callable[[TargetStatus, LockProgress | None], _Resolved],
    statuses: Sequence[TargetStatus],
    progress: LockProgress | None,
) -> list[_Resolved]:
    """The targets resolved one after another, in as many parts (each a run of targets in
    order) as there are CPUs to spare and targets: the first part here and each other in a
    forked copy of this process (`forked.Forked`), at the same time. What each copy said and
    told the progress comes out when its result is taken, in target order, so the output is
    the same as one after another; a part whose copy failed is resolved again here, so its
    error, or its output, is this process's own."""
    count = min(len(statuses), forked.spare_cpus() + 1)
    size = -(-len(statuses) // count)
    parts = [statuses[start : start + size] for start in range(0, len(statuses), size)]
    forks = []
    try:
        for part in parts[1:]:
            forks.append(forked.Forked(functools.partial(_part, one, part)))
            log.debug("resolving %s in a forked copy (%d)", _labels(part), forks[-1].pid)
        done = [one(status, progress) for status in parts[0]]
        for part, copy in zip(parts[1:], forks, strict=True):
            try:
                done += copy.result(lambda told: _hear(progress, told))
            except forked.ForkFailed as exc:
                log.debug("resolving %s again here: %s", _labels(part), exc)
                done += [one(status, progress) for status in part]
    finally:
        for copy in forks:
            copy.close()
    return done


def _labels(part: Sequence[TargetStatus]) -> str:
    return ", ".join(status.label for status in part)


def _part(
    one: Callable[[TargetStatus, LockProgress | None], _Resolved],
    part: Sequence[TargetStatus],
    tell: Callable[[object], None],
) -> list[_Resolved]:
    """A forked copy's work: its part of the targets, its progress told to the parent."""
    return [one(status, _Told(tell=tell)) for status in part]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Told:
    """A forked part's `LockProgress`: each call sent to the parent, which makes it there."""

    tell: Callable[[object], None]

    def counting(self, requests: Callable[[], int]) -> None:
        pass

    def started(self, target: str) -> None:
        self.tell(("started", target))

    def advanced(self, target: str, packages: int, requests: int) -> None:
        self.tell(("advanced", target, packages, requests))

    def finished(self, target: str, packages: int, requests: int, seconds: float) -> None:
        self.tell(("finished", target, packages, requests, seconds))


def _hear(progress: LockProgress | None, told: tuple[str, ...]) -> None:
    if progress is not None:
        name, *args = told
        getattr(progress, name)(*args)


def changes(previous: Lock | None, lock: Lock) -> Changes:
    """How `lock`'s pins differ from `previous`'s, by name."""
    if previous is None:
        return Changes(added=len(lock.packages), new=True)
    old = {p.name: p for p in previous.packages}
    new = {p.name: p for p in lock.packages}
    moved = sum(1 for name in old.keys() & new.keys() if _pin(old[name]) != _pin(new[name]))
    return Changes(added=len(new.keys() - old), removed=len(old.keys() - new), changed=moved)


def _much_older(old: Version, new: Version) -> bool:
    """Older by a minor release or more: (0.42, 0.50), (2024.8, 2026.8), not (2.4.0, 2.4.1)."""
    return old < new and (*old.release, 0)[:2] != (*new.release, 0)[:2]


def _pin(package: LockedPackage) -> tuple[object, ...]:
    """What a lock pins for a name: its version and where its bytes come from."""
    artifact, vcs = package.artifact, package.vcs
    return (
        package.version,
        artifact.url if artifact else None,
        artifact.sha256 if artifact else None,
        vcs.commit_id if vcs else None,
    )


def diverging(spec: Spec, locks: Sequence[Lock], source: LockSource) -> list[Divergence]:
    """The notable divergences across targets, each with its cause: a target holding a much
    older version of a name than another (another minor release or more) did not choose it,
    and the reason is said in the words `fit` uses for a version that fits no file, or as the
    rest of the target's requirements; a target holding an older version at all because the
    newer one has no file for it is said too (a wheel missing on one platform)."""
    if len(locks) < 2:
        return []
    seen: dict[str, dict[str, LockedPackage]] = {}
    for lock in locks:
        for package in lock.packages:
            seen.setdefault(package.name, {})[lock.target] = package
    found = []
    for name, by_target in sorted(seen.items()):
        newest = max(p.version for p in by_target.values())
        ahead = tuple(sorted(t for t, p in by_target.items() if p.version == newest))
        for target_name, package in sorted(by_target.items()):
            if package.version >= newest:
                continue
            target = make_target(target_name, spec.python, spec.settings_for(target_name))
            much = _much_older(package.version, newest)
            reason = _fit_reason(spec, package, newest, target, source)
            if much and not reason:
                reason = (
                    f"{name} {newest} has a file for {target_name}, but the rest of that "
                    f"target's requirements hold it back: see 'envspec why {name} "
                    f"--target {target_name}'"
                )
            if reason:
                found.append(
                    Divergence(
                        target=target_name,
                        name=name,
                        version=package.version,
                        newest=newest,
                        ahead=ahead,
                        reason=reason,
                        much=much,
                    )
                )
    return found


def _fit_reason(
    spec: Spec, package: LockedPackage, newest: Version, target: Target, source: LockSource
) -> str:
    """Why no file of `newest` fits `target` on the index `package` came from ("": one does)."""
    index = next(
        (i for i in spec.indexes if package.index and _same(i.location.public, package.index)),
        None,
    )
    if index is None:
        return ""
    name = canonicalize_name(package.name)
    try:
        # The listing resolution read holds every file some target can install: when one of
        # `newest` fits, that is the answer, without reading the whole page again.
        kept = list(source.releases(name, index).files(newest))
        if kept and not no_fit_reason(name, newest, kept, target, spec.resolution):
            return ""
        files = source.every_file(name, index, newest)
    except EnvspecError as exc:
        log.debug("cannot list %s: %s", package.name, exc)
        return ""
    return no_fit_reason(name, newest, files, target, spec.resolution) if files else ""


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
