"""Transactions on an environment: its file lock and the journal of the sync in progress.

The lock (`<env>/.envspec/lock`, `filelock`: an OS lock the kernel drops when its process
dies, however it dies) lets one envspec command change an environment at a time; a second
waits, then fails saying so. The journal (`<env>/.envspec/journal.json`) is written before a
sync changes anything and removed when it ends: one found while nobody holds the lock is a
sync that was killed, and names the phase it stopped in and the snapshot from before it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from envspec.apply.snapshot import write_json
from envspec.errors import ApplyError

_JOURNAL = "journal.json"
_LOCK = "lock"


@dataclass(frozen=True, kw_only=True, slots=True)
class Journal:
    """A sync in progress: its pre-sync snapshot and which phases are done."""

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


def interrupted_message(journal: Journal) -> tuple[str, str]:
    """(message, hint) telling a user a sync was killed and what to do."""
    where = f" in phase '{journal.stopped_in}'" if journal.stopped_in else ""
    if journal.snapshot is None:
        return (
            f"a previous '{journal.command}' was interrupted{where}",
            "see 'envspec history' and roll back with 'envspec rollback ID'",
        )
    return (
        f"a previous '{journal.command}' was interrupted{where}; snapshot "
        f"{journal.snapshot} holds the environment from before it",
        "run 'envspec rollback' to restore it, or 'envspec sync' to finish the sync",
    )


def load_journal(state_dir: Path) -> Journal | None:
    """The journal left in `state_dir`, if any (a damaged one still counts)."""
    path = state_dir / _JOURNAL
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
    write_json(state_dir / _JOURNAL, asdict(journal))


def remove_journal(state_dir: Path) -> None:
    (state_dir / _JOURNAL).unlink(missing_ok=True)


def interrupted(state_dir: Path) -> Journal | None:
    """A journal left by a sync that is no longer running."""
    journal = load_journal(state_dir)
    if journal is None or busy(state_dir):
        return None
    return journal


def busy(state_dir: Path) -> bool:
    """Whether another process holds the environment's lock right now."""
    if not (state_dir / _LOCK).exists():
        return False
    import filelock  # imported when needed: a sync with nothing to do never is

    probe = filelock.FileLock(state_dir / _LOCK, timeout=0)
    try:
        probe.acquire()
    except filelock.Timeout:
        return True
    except OSError:
        return False
    probe.release()
    return False


@contextmanager
def environment_lock(state_dir: Path, timeout: float) -> Iterator[None]:
    """Hold the environment's lock, waiting up to `timeout` seconds for it."""
    import filelock

    lock = filelock.FileLock(state_dir / _LOCK, timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        raise ApplyError(
            f"another envspec command is changing this environment; gave up after {timeout:g}s",
            context=str(state_dir.parent),
            hint="wait for it to finish, or wait longer with --lock-timeout SECONDS",
        ) from exc
    except OSError as exc:
        raise ApplyError(
            f"cannot lock the environment: {exc.strerror}", context=str(state_dir.parent)
        ) from exc
    try:
        yield
    finally:
        lock.release()
