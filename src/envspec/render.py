"""The environment commands' reporter: each apply event (`apply.events`) as one JSON object on
stdout (`--json`, the CLI's `Out.event`) or as human lines on stderr, with a rich spinner for
the running phase and rich progress bars for downloads (bytes, rate and time left per file,
and for all of them) on a terminal. rich is imported only on a terminal: it costs a no-op
sync more than the sync itself. Off a terminal, downloads are one line before and one after.
Used by `cli_env`, which also reports the command's end (`Done`) here.
"""

from __future__ import annotations

import atexit
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from envspec.apply.events import (
    Checked,
    DownloadFinished,
    DownloadProgressed,
    Event,
    Fetching,
    PhaseFailed,
    PhaseFinished,
    PhaseStarted,
    Planned,
    Removed,
    Reporter,
    RollbackFailed,
    RolledBack,
    SnapshotTaken,
)
from envspec.output import Out, plural, size_text


@dataclass(frozen=True, kw_only=True, slots=True)
class Done(Event):
    """`sync`, `check` or `rollback` finished (`failed_optional` and `dry_run`: sync only)."""

    kind: ClassVar[str] = "done"
    command: str
    exit_code: int
    changed: bool
    failed_optional: tuple[str, ...] | None = None
    dry_run: bool | None = None

    def data(self) -> dict[str, Any]:
        found = {"command": self.command, "exit_code": self.exit_code, "changed": self.changed}
        if self.failed_optional is not None:
            found["failed_optional"] = self.failed_optional
        if self.dry_run is not None:
            found["dry_run"] = self.dry_run
        return found


class CliReporter(Reporter):
    """Every event as JSON (with --json) or as lines on stderr, with a spinner for the running
    phase on a terminal."""

    def __init__(self, out: Out, *, rollback_is_the_command: bool = False) -> None:
        self.out = out
        # `envspec rollback`: a failed restore is the command's own error, printed once by
        # the CLI; after a failed phase it is news beside that phase's error
        self.rollback_is_the_command = rollback_is_the_command
        self.human = not out.json_mode and not out.quiet
        self.status: Any = None
        self.tty = sys.stderr.isatty()
        self.downloads: _Downloads | None = None

    def _show(self, event: Event, *, download: bool = False) -> bool:
        """Write `event` as JSON; True when it is to be shown as lines (the spinner, and the
        bars unless it is a download's, stopped first)."""
        if self.out.json_mode:
            self.out.event(event.kind, **event.data())
        if not self.human:
            return False
        if self.status is not None:
            self.status.stop()
            self.status = None
        if self.downloads is not None and not download:
            self.downloads.stop()
            self.downloads = None
        return True

    def fetching(self, event: Fetching) -> None:
        if self._show(event) and event.files:
            self.downloads = _Downloads(self.out, event.files, event.bytes, self.tty)

    def download_progressed(self, event: DownloadProgressed) -> None:
        if self._show(event, download=True) and self.downloads is not None:
            self.downloads.update(event.name, event.bytes, event.total)

    def download_finished(self, event: DownloadFinished) -> None:
        if not self._show(event, download=True) or self.downloads is None:
            return
        if self.downloads.finished(event.name, event.bytes):
            self.downloads = None

    def planned(self, event: Planned) -> None:
        if not self._show(event):
            return
        data = event.data()
        width = self.out.width
        lines = [f"  repair: remove {r['name']} ({r['problem']})" for r in data["repair"]]
        for phase in data["phases"]:
            lines += _plan_lines(phase, width)
        if data["remove"]:
            removed = [f"{r['name']} {r['version']}" for r in data["remove"]]
            lines += wrap_items("  remove: ", removed, width)
        if event.plan.empty:
            self.out.say("Nothing to do: the environment matches the lock.")
            return
        # a dry run's plan is its result: stdout; a sync's is progress
        show = self.out.result if event.dry_run else self.out.say
        show("Plan (dry run):" if event.dry_run else "Plan:")
        for line in lines:
            show(line)

    def snapshot_taken(self, event: SnapshotTaken) -> None:
        if self._show(event):
            self.out.say(f"Snapshot {event.id} taken ({_packages(event.packages)})")

    def phase_started(self, event: PhaseStarted) -> None:
        if self._show(event) and self.tty:
            from rich.console import Console  # rich costs an import only on a terminal

            text = f"phase {event.phase}: installing {_packages(len(event.packages))}"
            self.status = Console(stderr=True).status(text)
            self.status.start()

    def phase_finished(self, event: PhaseFinished) -> None:
        if self._show(event):
            count = _packages(event.installed)
            self.out.say(f"  phase {event.phase}: installed {count} in {event.seconds:.2f}s")

    def phase_failed(self, event: PhaseFailed) -> None:
        if not self._show(event):
            return
        label = "optional phase" if event.optional else "phase"
        self.out.say(f"{'warning: ' if event.optional else ''}{label} {event.phase} failed:")
        for line in event.error.splitlines():
            self.out.say(f"    {line}")

    def removed(self, event: Removed) -> None:
        if self._show(event):
            self.out.say(f"  removed {_packages(len(event.packages))}")

    def rolled_back(self, event: RolledBack) -> None:
        if self._show(event):
            done = ", ".join(event.changes) or "nothing to change"
            self.out.say(f"Restored snapshot {event.snapshot}: {done}")

    def rollback_failed(self, event: RollbackFailed) -> None:
        if not self._show(event):
            return
        if not self.rollback_is_the_command:
            self.out.say(f"Rollback to snapshot {event.snapshot} failed: {event.error}")
        for line in event.tail.splitlines():
            self.out.say(f"    {line}")

    def checked(self, event: Checked) -> None:
        if not self._show(event):
            if not event.ok:  # under -q: what failed is an error's line
                self.out.failed(f"  FAIL {event.check}: {event.message}")
            return
        mark = "ok  " if event.ok else "FAIL"
        self.out.say(f"  {mark} {event.check}: {event.message}")
        for warning in event.warnings:
            self.out.say(f"       warning: {warning}")

    def done(self, event: Done) -> None:
        if not self._show(event):
            if event.exit_code != 0 and event.command in ("check", "sync"):  # checks failed
                self.out.failed(
                    "Checks failed." if event.command == "check" else "Synced; checks failed."
                )
            return
        if event.command == "sync" and event.changed:
            failed = event.failed_optional
            tail = f" (optional phases failed: {', '.join(failed)})" if failed else ""
            self.out.say(f"Synced{tail}." if event.exit_code == 0 else "Synced; checks failed.")
        elif event.command == "check":
            self.out.say("All checks passed." if event.exit_code == 0 else "Checks failed.")


class _Downloads:
    """The downloads of one fetch: rich bars on a terminal, else a line before and after."""

    def __init__(self, out: Out, files: int, total: int, tty: bool) -> None:
        self.out, self.files, self.total = out, files, total
        self.start = time.monotonic()
        self.left = files
        self.done: dict[str, int] = {}
        self.tasks: dict[str, Any] = {}
        self.progress: Any = None
        if not tty:
            known = f" ({size_text(total)})" if total else ""  # a snapshot records no sizes
            self.out.say(f"Downloading {plural(files, 'file')}{known}")
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.overall = self.progress.add_task(f"{plural(files, 'file')}", total=total or None)
        self.progress.start()
        atexit.register(self.stop)  # a failed or interrupted fetch must give the cursor back

    def update(self, name: str, done: int, total: int | None) -> None:
        before = self.done.get(name, 0)
        self.done[name] = done
        if self.progress is None:
            return
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(f"  {name}", total=total)
        self.progress.update(self.tasks[name], completed=done, total=total)
        self.progress.advance(self.overall, done - before)

    def finished(self, name: str, size: int) -> bool:
        """Count one file done; True when it was the last."""
        self.update(name, size, size)
        if self.progress is not None:
            self.progress.remove_task(self.tasks.pop(name))
        self.left -= 1
        if self.left > 0:
            return False
        self.stop()
        seconds = time.monotonic() - self.start
        total = sum(self.done.values())
        self.out.say(
            f"  downloaded {plural(len(self.done), 'file')} ({size_text(total)}) in {seconds:.2f}s"
        )
        return True

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _plan_lines(phase: Mapping[str, Any], width: int | None) -> list[str]:
    if phase["skipped"]:
        return [f"  phase {phase['phase']}: skipped in the lock ({phase['skipped']})"]
    parts = []
    for step in phase["steps"]:
        if step.get("problem"):
            parts.append(f"repair {step['name']} {step['version']} ({step['problem']})")
        elif step["installed"]:
            parts.append(f"{step['action']} {step['name']} {step['installed']} → {step['version']}")
        else:
            parts.append(f"install {step['name']} {step['version']}")
    return wrap_items(f"  phase {phase['phase']}: ", parts, width) if parts else []


def wrap_items(head: str, items: list[str], width: int | None, indent: str = "    ") -> list[str]:
    """`head` and `items` joined by ", ", in lines of at most `width` characters (None: one
    line), broken only between items: a step is never cut in two."""
    lines = [head + items[0]]
    for item in items[1:]:
        if width is not None and len(lines[-1]) + len(f", {item},") > width:
            lines[-1] += ","
            lines.append(indent + item)
        else:
            lines[-1] += ", " + item
    return lines


def _packages(count: int) -> str:
    return plural(count, "package")


def history_line(entry: Mapping[str, Any]) -> str:
    if entry["damaged"]:
        return f"{entry['id']:>4}  damaged: {entry['error']}"
    changed = entry.get("changes")
    what = "unknown" if changed is None else (", ".join(changed[:6]) or "no change")
    if changed and len(changed) > 6:
        what += f", … {len(changed) - 6} more"
    return (
        f"{entry['id']:>4}  {entry['created']}  {entry['command']:<18} "
        f"{entry['packages']:>4} {'package ' if entry['packages'] == 1 else 'packages'}  "
        f"then: {what}"
    )
