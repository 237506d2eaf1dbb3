"""Human rendering of the environment commands' events: one line per event on stderr, and on a
terminal a rich spinner for the running phase and rich progress bars for downloads (bytes,
rate and time left per file, and for all of them). rich is imported only on a terminal: it
costs a no-op sync more than the sync itself. Off a terminal, downloads are one line before
and one after. Used by `cli_env`; JSON output needs no rendering.
"""

from __future__ import annotations

import atexit
import sys
import time
from collections.abc import Mapping
from typing import Any, Protocol

from envspec.apply.events import Emit


class Out(Protocol):
    json_mode: bool
    quiet: bool

    def say(self, text: str) -> None: ...
    def event(self, kind: str, **data: Any) -> None: ...


def emitter(out: Out) -> Emit:
    """An `Emit` writing each event as JSON (with --json) or as a human line."""
    human = _Human(out)

    def emit(kind: str, /, **data: Any) -> None:
        out.event(kind, **data)
        if not out.json_mode and not out.quiet:
            human.render(kind, data)

    return emit


class _Human:
    """Apply events as lines on stderr, with a spinner for the running phase on a terminal."""

    def __init__(self, out: Out) -> None:
        self.out = out
        self.status: Any = None
        self.tty = sys.stderr.isatty()
        self.downloads: _Downloads | None = None

    def render(self, kind: str, data: Mapping[str, Any]) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None
        if self.downloads is not None and kind not in ("download", "download_finished"):
            self.downloads.stop()
            self.downloads = None
        handler = getattr(self, f"on_{kind}", None)
        if handler is not None:
            handler(data)

    def on_fetch(self, data: Mapping[str, Any]) -> None:
        if data["files"]:
            self.downloads = _Downloads(self.out, data["files"], data["bytes"], self.tty)

    def on_download(self, data: Mapping[str, Any]) -> None:
        if self.downloads is not None:
            self.downloads.update(data["name"], data["bytes"], data["total"])

    def on_download_finished(self, data: Mapping[str, Any]) -> None:
        if self.downloads is not None and self.downloads.finished(data["name"], data["bytes"]):
            self.downloads = None

    def on_plan(self, data: Mapping[str, Any]) -> None:
        lines = [f"  repair: remove {r['name']} ({r['problem']})" for r in data.get("repair", ())]
        lines += [_plan_line(phase) for phase in data["phases"]]
        lines = [line for line in lines if line]
        if data["remove"]:
            lines.append(
                "  remove: " + ", ".join(f"{r['name']} {r['version']}" for r in data["remove"])
            )
        steps = any(phase["steps"] for phase in data["phases"])
        if not data["remove"] and not data.get("repair") and not steps:
            self.out.say("Nothing to do: the environment matches the lock.")
            return
        self.out.say("Plan (dry run):" if data["dry_run"] else "Plan:")
        for line in lines:
            self.out.say(line)

    def on_snapshot(self, data: Mapping[str, Any]) -> None:
        self.out.say(f"Snapshot {data['id']} taken ({_packages(data['packages'])})")

    def on_phase_started(self, data: Mapping[str, Any]) -> None:
        if self.tty:
            from rich.console import Console  # rich costs an import only on a terminal

            text = f"phase {data['phase']}: installing {_packages(len(data['packages']))}"
            self.status = Console(stderr=True).status(text)
            self.status.start()

    def on_phase_finished(self, data: Mapping[str, Any]) -> None:
        count = _packages(data["installed"])
        self.out.say(f"  phase {data['phase']}: installed {count} in {data['seconds']:.2f}s")

    def on_phase_failed(self, data: Mapping[str, Any]) -> None:
        label = "optional phase" if data["optional"] else "phase"
        self.out.say(f"{'warning: ' if data['optional'] else ''}{label} {data['phase']} failed:")
        for line in str(data["error"]).splitlines():
            self.out.say(f"    {line}")

    def on_removed(self, data: Mapping[str, Any]) -> None:
        self.out.say(f"  removed {_packages(len(data['packages']))}")

    def on_rollback(self, data: Mapping[str, Any]) -> None:
        if not data["ok"]:
            self.out.say(f"Rollback to snapshot {data['snapshot']} failed: {data['error']}")
            for line in str(data.get("tail", "")).splitlines():
                self.out.say(f"    {line}")
            return
        done = ", ".join(data.get("changes") or []) or "nothing to change"
        self.out.say(f"Restored snapshot {data['snapshot']}: {done}")

    def on_check(self, data: Mapping[str, Any]) -> None:
        mark = "ok  " if data["ok"] else "FAIL"
        self.out.say(f"  {mark} {data['check']}: {data['message']}")
        for warning in data["warnings"]:
            self.out.say(f"       warning: {warning}")

    def on_done(self, data: Mapping[str, Any]) -> None:
        if data["command"] == "sync" and data["changed"]:
            failed = data["failed_optional"]
            tail = f" (optional phases failed: {', '.join(failed)})" if failed else ""
            self.out.say(f"Synced{tail}." if data["exit_code"] == 0 else "Synced; checks failed.")
        elif data["command"] == "check":
            self.out.say("All checks passed." if data["exit_code"] == 0 else "Checks failed.")


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
            f"  downloaded {plural(len(self.done), 'file')} ({size_text(total)}) in "
            f"{seconds:.2f}s"
        )
        return True

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def size_text(count: int) -> str:
    """A byte count for people: `512 B`, `14.2 kB`, `2.5 GB` (powers of 1000, as rich's)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _plan_line(phase: Mapping[str, Any]) -> str:
    if phase["skipped"]:
        return f"  phase {phase['phase']}: skipped in the lock ({phase['skipped']})"
    if not phase["steps"]:
        return ""
    parts = []
    for step in phase["steps"]:
        if step.get("problem"):
            parts.append(f"repair {step['name']} {step['version']} ({step['problem']})")
        elif step["installed"]:
            parts.append(f"{step['action']} {step['name']} {step['installed']} → {step['version']}")
        else:
            parts.append(f"install {step['name']} {step['version']}")
    return f"  phase {phase['phase']}: " + ", ".join(parts)


def _packages(count: int) -> str:
    return plural(count, "package")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def history_line(entry: Mapping[str, Any]) -> str:
    if entry["damaged"]:
        return f"{entry['id']:>4}  damaged: {entry['error']}"
    changed = entry.get("changes")
    what = "unknown" if changed is None else (", ".join(changed[:6]) or "no change")
    if changed and len(changed) > 6:
        what += f", … {len(changed) - 6} more"
    return (
        f"{entry['id']:>4}  {entry['created']}  {entry['command']:<18} "
        f"{entry['packages']:>4} packages  then: {what}"
    )
