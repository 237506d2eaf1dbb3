"""Transactions on an environment: its file locks and the journal of the change in progress.

The environment lock (`<env>/.envspec/lock`, an OS lock the kernel drops when its last holder
dies, however it dies: see `envlock`) lets one envspec command change an environment at a
time; a second waits, then fails saying so. Every process envspec starts while it holds the
lock holds it too, so the lock outlives envspec for as long as an installer it started runs.

The creation lock guards a project's `.venv` before it exists, when the environment lock has
nowhere to live yet: a sync that finds no `.venv` takes it, creates the environment and holds
it until its sync is done, so a second first sync waits, then finds nothing to do. It lives
in the envspec cache (`locks/<digest of the environment's path>.lock`) rather than in the
project: the cache is envspec's own and always writable, where the project is the user's
work tree (a lock file there would be one more thing to ignore or commit, and a read-only
checkout could not hold it). Two first syncs that use different `--cache-dir` folders do not
see each other's creation lock; everything after creation is under the environment lock.

The journal (`<env>/.envspec/journal.json`) is written before a sync or rollback changes
anything and removed when it ends: one found while nobody holds the lock is a command that
was killed, and names where it stopped and the snapshot to go back to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from envspec.apply import envlock
from envspec.apply.environment import JOURNAL_FILE
from envspec.apply.snapshot import write_json
from envspec.errors import ApplyError

_LOCK = "lock"


@dataclass(frozen=True, kw_only=True, slots=True)
class Journal:
    """A sync in progress (its pre-sync snapshot and which phases are done), or a rollback
    in progress (`command` ``rollback N``, `snapshot` the one it restores)."""

    command: str
    snapshot: int | None  # None when the journal itself was found damaged
    phases: tuple[str, ...]
    done: tuple[str, ...] = ()
    current: str | None = None

    def begin(self, phase: str) -> Journal:
        return replace(self, current=phase)

    def finish(self, phase: str) -> Journal:
        return replace(self, done=(*self.done, phase), current=None)

    @property
    def stopped_in(self) -> str | None:
        """The phase that was running, else the first not done."""
        if self.current:
            return self.current
        return next((p for p in self.phases if p not in self.done), None)

    @property
    def is_rollback(self) -> bool:
        return self.command.startswith("rollback")


def interrupted_message(journal: Journal) -> tuple[str, str]:
    """(message, hint) telling a user a sync or rollback was killed and what to do."""
    return _stopped(f"a previous '{journal.command}' was interrupted", journal)


def stopped_message(journal: Journal | None, command: str, signal: str) -> tuple[str, str]:
    """(message, hint) for this `command`, stopped by `signal` (with the journal it left)."""
    if journal is None:
        return f"{command} interrupted by {signal}; nothing was changed", ""
    return _stopped(f"{command} interrupted by {signal}", journal)


def _stopped(what: str, journal: Journal) -> tuple[str, str]:
    if journal.is_rollback:
        return (
            f"{what}; the environment may be only partly restored",
            f"run 'envspec rollback' to finish restoring snapshot {journal.snapshot}",
        )
    where = f" in phase '{journal.stopped_in}'" if journal.stopped_in else ""
    if journal.snapshot is None:
        return (
            f"{what}{where}",
            "see 'envspec history' and roll back with 'envspec rollback ID'",
        )
    return (
        f"{what}{where}; snapshot {journal.snapshot} holds the environment from before it",
        "run 'envspec rollback' to restore it, or 'envspec sync' to finish the sync",
    )


def load_journal(state_dir: Path) -> Journal | None:
    """The journal left in `state_dir`, if any (a damaged one still counts)."""
    path = state_dir / JOURNAL_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return Journal(command="sync", snapshot=None, phases=())
    try:
        data = json.loads(text)
        return Journal(
            command=str(data["command"]),
            snapshot=int(data["snapshot"]),
            phases=tuple(map(str, data["phases"])),
            done=tuple(map(str, data["done"])),
            current=str(data["current"]) if data.get("current") else None,
        )
    except (ValueError, KeyError, TypeError):
        return Journal(command="sync", snapshot=None, phases=())


def write_journal(state_dir: Path, journal: Journal) -> None:
    write_json(state_dir / JOURNAL_FILE, asdict(journal))


def remove_journal(state_dir: Path) -> None:
    """Remove the journal; one that cannot be removed (a read-only state folder, a folder in
    its place) is an error naming it: it was a PermissionError traceback."""
    path = state_dir / JOURNAL_FILE
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise ApplyError(
            f"cannot remove {JOURNAL_FILE}: {exc.strerror}",
            context=str(path),
            hint="make the environment's .envspec folder writable, then run the command again",
        ) from exc


def interrupted(state_dir: Path, *, held: bool = False) -> Journal | None:
    """A journal left by a sync that is no longer running (`held`: the caller holds the
    environment's lock, so none is; else one holding it is still at work)."""
    journal = load_journal(state_dir)
    if journal is None or (not held and busy(state_dir)):
        return None
    return journal


def busy(state_dir: Path) -> bool:
    """Whether a process (another envspec command, or an installer it left running) holds
    the environment's lock right now."""
    return envlock.is_held(state_dir / _LOCK)


@contextmanager
def environment_lock(state_dir: Path, timeout: float) -> Iterator[None]:
    """Hold the environment's lock, waiting up to `timeout` seconds for it."""
    with _lock_or_fail(
        state_dir / _LOCK,
        timeout,
        context=str(state_dir.parent),
        busy=f"another envspec command is changing this environment; gave up after {timeout:g}s",
    ):
        yield


@contextmanager
def edit_lock(project: Path, cache: Path, timeout: float) -> Iterator[None]:
    """Hold the lock on editing the spec of the project at `project` (`add`, `remove`): two
    at once each read the spec, and the second write lost the first one's requirement."""
    with _lock_or_fail(
        _under_cache(cache, project, ".edit.lock"),
        timeout,
        context=str(project / "envspec.toml"),
        busy=f"another envspec command is editing this spec; gave up after {timeout:g}s",
        hint="wait for it to finish, then run the command again",
    ):
        yield


@contextmanager
def bundle_lock(dest: Path, cache: Path, timeout: float) -> Iterator[None]:
    """Hold the lock on writing the bundle at `dest`: two runs at once (two CI jobs
    publishing one folder) mixed one's manifest with the other's files."""
    with _lock_or_fail(
        _under_cache(cache, dest, ".bundle.lock"),
        timeout,
        context=str(dest),
        busy=f"another envspec command is writing this bundle; gave up after {timeout:g}s",
    ):
        yield


@contextmanager
def creation_lock(root: Path, cache: Path, timeout: float) -> Iterator[None]:
    """Hold the lock on creating the environment at `root` (see the module docstring)."""
    with _lock_or_fail(
        _under_cache(cache, root, ".lock"),
        timeout,
        context=str(root),
        busy=f"another envspec command is creating this environment; gave up after {timeout:g}s",
    ):
        yield


def _under_cache(cache: Path, folder: Path, suffix: str) -> Path:
    """The lock file of `folder` in the cache (a folder that may not exist yet, or must not
    get a file of ours: a project, a bundle being served), by its real path."""
    digest = hashlib.sha256(os.path.realpath(folder).encode()).hexdigest()[:24]
    return cache / "locks" / f"{digest}{suffix}"


@contextmanager
def _lock_or_fail(
    path: Path,
    timeout: float,
    *,
    context: str,
    busy: str,
    hint: str = "wait for it to finish, or wait longer with --lock-timeout SECONDS",
) -> Iterator[None]:
    try:
        fd = envlock.acquire(path, timeout)
    except envlock.Busy as exc:
        raise ApplyError(busy, context=context, hint=hint) from exc
    except OSError as exc:
        raise ApplyError(f"cannot lock the environment: {exc.strerror}", context=context) from exc
    with envlock.holding(fd):
        yield
