"""What apply tells the command that runs it: one frozen dataclass per event, handed to a
`Reporter`, which has one method per event (as resolvelib's `BaseReporter` has): the base
class does nothing with any of them, and a reporter overrides those it shows. Apply never
prints; the CLI's reporter (`envspec.render`) writes each event as a JSON object (`--json`)
or as human lines on stderr.

Each event's `kind` and `data()` are its JSON object (``{"event": kind, **data()}``), listed
in README.md ("JSON events"): the field names are the JSON keys, tuples are arrays, and the
plan is the plain data `plan.describe` gives. Events are reported from the thread that did
the work: downloads run in a pool, so a reporter that keeps state must not assume one thread
(the store reports them one at a time).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from envspec.apply.plan import Installed, Plan, describe, describe_repairs


class Event:
    """Base of the events: `kind` names it in JSON, `data()` is its JSON object's fields."""

    __slots__ = ()
    kind: ClassVar[str]

    def data(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


def _distributions(found: tuple[Installed, ...]) -> list[dict[str, str]]:
    return [{"name": d.name, "version": d.version} for d in found]


@dataclass(frozen=True, kw_only=True, slots=True)
class Planned(Event):
    """What a sync will do (an empty plan: nothing)."""

    kind: ClassVar[str] = "plan"
    plan: Plan
    dry_run: bool

    def data(self) -> dict[str, Any]:
        return {
            "phases": describe(self.plan),
            "remove": _distributions(self.plan.remove),
            "repair": describe_repairs(self.plan),
            "dry_run": self.dry_run,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Fetching(Event):
    """The files a sync or rollback lacks are about to be downloaded into the store."""

    kind: ClassVar[str] = "fetch"
    files: int  # to download
    bytes: int  # their sizes as the lock records them (a snapshot records none)
    stored: int  # already in the store


@dataclass(frozen=True, kw_only=True, slots=True)
class DownloadProgressed(Event):
    kind: ClassVar[str] = "download"
    name: str  # the file's name
    bytes: int  # so far
    total: int | None


@dataclass(frozen=True, kw_only=True, slots=True)
class DownloadFinished(Event):
    """A file is in the store, its sha256 checked."""

    kind: ClassVar[str] = "download_finished"
    name: str
    bytes: int
    seconds: float


@dataclass(frozen=True, kw_only=True, slots=True)
class SnapshotTaken(Event):
    kind: ClassVar[str] = "snapshot"
    id: int
    packages: int
    command: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Removed(Event):
    """An exact sync (the default) removed what the lock does not name."""

    kind: ClassVar[str] = "removed"
    packages: tuple[Installed, ...]
    seconds: float

    def data(self) -> dict[str, Any]:
        return {"packages": _distributions(self.packages), "seconds": self.seconds}


@dataclass(frozen=True, kw_only=True, slots=True)
class PhaseStarted(Event):
    kind: ClassVar[str] = "phase_started"
    phase: str
    packages: tuple[str, ...]  # name==version


@dataclass(frozen=True, kw_only=True, slots=True)
class PhaseFinished(Event):
    kind: ClassVar[str] = "phase_finished"
    phase: str
    installed: int
    seconds: float


@dataclass(frozen=True, kw_only=True, slots=True)
class PhaseFailed(Event):
    kind: ClassVar[str] = "phase_failed"
    phase: str
    optional: bool
    error: str  # uv's error tail


@dataclass(frozen=True, kw_only=True, slots=True)
class RolledBack(Event):
    """A snapshot was restored (by `rollback`, or after a failed phase)."""

    kind: ClassVar[str] = "rollback"
    snapshot: int
    changes: tuple[str, ...]  # `+name 1.0`, `-name 1.0`, `name 1.0→2.0`
    ok: bool = field(default=True, init=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class RollbackFailed(Event):
    kind: ClassVar[str] = "rollback"
    snapshot: int
    error: str
    tail: str  # what uv said
    ok: bool = field(default=False, init=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class Checked(Event):
    """One check's result."""

    kind: ClassVar[str] = "check"
    check: str  # drift, lock, installed, dependencies, version, rules or import
    subject: str
    ok: bool
    message: str
    warnings: tuple[str, ...]


class Reporter:
    """Receives apply's events, one method each; these do nothing (override what you show)."""

    def planned(self, event: Planned) -> None:
        """A sync made its plan (and again, empty, when another sync did the work meanwhile)."""

    def fetching(self, event: Fetching) -> None:
        """Before the downloads of a fetch, even when there are none."""

    def download_progressed(self, event: DownloadProgressed) -> None:
        """At most 4 a second per file."""

    def download_finished(self, event: DownloadFinished) -> None:
        """One file of a fetch is in the store."""

    def snapshot_taken(self, event: SnapshotTaken) -> None:
        """Before a sync changes anything, and when a rollback has restored."""

    def removed(self, event: Removed) -> None:
        """An exact sync removed packages."""

    def phase_started(self, event: PhaseStarted) -> None:
        """A phase begins installing."""

    def phase_finished(self, event: PhaseFinished) -> None:
        """A phase installed."""

    def phase_failed(self, event: PhaseFailed) -> None:
        """A phase (or a repair or removal) failed; a required one is rolled back next."""

    def rolled_back(self, event: RolledBack) -> None:
        """A snapshot was restored."""

    def rollback_failed(self, event: RollbackFailed) -> None:
        """Restoring a snapshot failed."""

    def checked(self, event: Checked) -> None:
        """One check's result."""
