"""Human rendering of the environment commands' events: one line per event on stderr, and a
rich spinner for the running phase on a terminal (rich is imported only then: it costs a
no-op sync more than the sync itself). Used by `cli_env`; JSON output needs no rendering.
"""

from __future__ import annotations

import sys
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

    def render(self, kind: str, data: Mapping[str, Any]) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None
        handler = getattr(self, f"on_{kind}", None)
        if handler is not None:
            handler(data)

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

            text = f"phase {data['phase']}: installing {len(data['packages'])} packages"
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
    return f"{count} package" if count == 1 else f"{count} packages"


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
