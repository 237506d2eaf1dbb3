"""The commands that touch an environment: `sync`, `check`, `rollback`, `history`.

Arguments and rendering only; the work is in `envspec.apply`. Kept apart from `cli.py` so
that module stays about the lock and review commands; `cli.build_parser` calls
`add_parsers` and `cli.COMMANDS` includes `COMMANDS`. Every apply event goes to `--json` as
is and to stderr as a human line (`render`); a rich spinner shows the running phase on a
terminal. The JSON events are listed in README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from envspec.apply import uv
from envspec.apply.check import run_checks
from envspec.apply.environment import (
    Environment,
    Location,
    ensure_environment,
    load_installed,
    locate,
    open_environment,
)
from envspec.apply.events import Emit
from envspec.apply.journal import interrupted, interrupted_message
from envspec.apply.rollback import rollback
from envspec.apply.select import select_lock
from envspec.apply.snapshot import changes, load_snapshot, snapshot_ids
from envspec.apply.sync import SyncSettings, sync
from envspec.errors import EXIT_FAILED, EXIT_OK, EnvspecError, StaleLockError, UsageError
from envspec.model import Lock, Spec
from envspec.spec import load_spec


class Out(Protocol):
    json_mode: bool
    quiet: bool

    def say(self, text: str) -> None: ...
    def event(self, kind: str, **data: Any) -> None: ...


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the environment commands to the `envspec` subparsers."""
    env = argparse.ArgumentParser(add_help=False)
    env.add_argument(
        "--python",
        type=Path,
        default=None,
        metavar="PATH",
        help="target interpreter or environment folder",
    )
    waits = argparse.ArgumentParser(add_help=False)
    waits.add_argument(
        "--lock-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for another envspec command on the environment",
    )
    probes = argparse.ArgumentParser(add_help=False)
    probes.add_argument("--import-timeout", type=float, default=120.0, metavar="SECONDS")
    p = sub.add_parser(
        "sync",
        parents=[common, env, waits, probes],
        help="install the lock into the environment, phase by phase",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--locked", action="store_true", help="refuse a stale lock (exit 3)")
    p.add_argument("--exact", action="store_true", help="remove what the lock does not name")
    p.add_argument("--phase", default=None, metavar="NAME", help="sync up to this phase")
    p.add_argument("--no-checks", action="store_true", help="skip the checks afterwards")
    sub.add_parser(
        "check", parents=[common, env, probes], help="drift, dependency, version and import checks"
    )
    p = sub.add_parser(
        "rollback",
        parents=[common, env, waits],
        help="restore the snapshot taken before the last change",
    )
    p.add_argument("id", nargs="?", default=None, help="snapshot id (see 'envspec history')")
    sub.add_parser("history", parents=[common, env], help="list the environment's snapshots")


# -- commands ------------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace, out: Out) -> int:
    spec = load_spec(args.project / "envspec.toml")
    options = _uv_options(args, spec)
    location = locate(args.project, args.python, os.environ)
    if args.dry_run and not location.python.exists():
        raise UsageError(
            f"no environment at {location.root} yet",
            context=location.source,
            hint="'envspec sync' creates it",
        )
    if ensure_environment(location, spec.python, options):
        out.say(f"Created {location.root} (Python {spec.python})")
    env, path, lock = _open(args, out, location)
    if args.locked:
        _refuse_stale(spec, args.project, lock, path)
    settings = SyncSettings(
        phase=args.phase,
        exact=args.exact,
        dry_run=args.dry_run,
        no_build_isolation={p.name for p in spec.phases if p.no_build_isolation},
        lock_timeout=args.lock_timeout,
        command=_command_line(args),
    )
    emit = _emitter(out)
    outcome = sync(env, lock, settings, options, emit)
    code = EXIT_OK
    if outcome.changed and not args.no_checks:
        ok = run_checks(
            env, lock, spec.checks, phase=args.phase, import_timeout=args.import_timeout, emit=emit
        )
        code = EXIT_OK if ok else EXIT_FAILED
    emit(
        "done",
        command="sync",
        exit_code=code,
        changed=outcome.changed,
        failed_optional=list(outcome.failed_optional),
        dry_run=args.dry_run,
    )
    return code


def cmd_check(args: argparse.Namespace, out: Out) -> int:
    spec = load_spec(args.project / "envspec.toml")
    env, _path, lock = _open(args, out, locate(args.project, args.python, os.environ))
    emit = _emitter(out)
    ok = run_checks(env, lock, spec.checks, import_timeout=args.import_timeout, emit=emit)
    code = EXIT_OK if ok else EXIT_FAILED
    emit("done", command="check", exit_code=code, changed=False)
    return code


def cmd_rollback(args: argparse.Namespace, out: Out) -> int:
    env = _environment(args, out)
    options = _uv_options(args, _spec_if_valid(args.project))
    emit = _emitter(out)
    restored = rollback(env, args.id, options=options, lock_timeout=args.lock_timeout, emit=emit)
    emit("done", command="rollback", exit_code=EXIT_OK, changed=restored is not None)
    return EXIT_OK


def cmd_history(args: argparse.Namespace, out: Out) -> int:
    env = _environment(args, out)
    ids = snapshot_ids(env.state_dir)
    current: dict[str, str] = {d.name: d.version for d in load_installed(env)}
    states: list[Mapping[str, str] | None] = []
    entries: list[dict[str, Any]] = []
    for snapshot_id in ids:
        try:
            snap = load_snapshot(env.state_dir, snapshot_id)
        except EnvspecError as exc:
            entries.append({"id": snapshot_id, "damaged": True, "error": str(exc)})
            states.append(None)
            continue
        entries.append(
            {
                "id": snap.id,
                "created": snap.created,
                "command": snap.command,
                "packages": len(snap.packages),
                "damaged": False,
            }
        )
        states.append(snap.versions())
    states.append(current)
    for i, entry in enumerate(entries):
        before, after = states[i], states[i + 1]
        if before is not None and after is not None:
            entry["changes"] = changes(before, after)
        out.event("history", **entry)
        out.say(_history_line(entry))
    if not entries:
        out.say(f"No snapshots in {env.state_dir / 'snapshots'} yet.")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Any], int]] = {
    "sync": cmd_sync,
    "check": cmd_check,
    "rollback": cmd_rollback,
    "history": cmd_history,
}


# -- helpers -------------------------------------------------------------------------------


def _environment(args: argparse.Namespace, out: Out) -> Environment:
    env = open_environment(locate(args.project, args.python, os.environ))
    _warn_interrupted(env, out)
    return env


def _open(args: argparse.Namespace, out: Out, location: Location) -> tuple[Environment, Path, Lock]:
    env = open_environment(location)
    _warn_interrupted(env, out)
    path, lock = select_lock(args.project, env)
    out.event(
        "environment",
        root=str(env.root),
        python=str(env.python),
        python_version=env.python_version,
        target=lock.target,
        lock=str(path),
    )
    out.say(f"Environment {env.root} (Python {env.python_version}), lock {_rel(path, args)}")
    return env, path, lock


def _warn_interrupted(env: Environment, out: Out) -> None:
    journal = interrupted(env.state_dir)
    if journal is None:
        return
    message, hint = interrupted_message(journal)
    out.event(
        "interrupted",
        command=journal.command,
        phase=journal.stopped_in,
        snapshot=journal.snapshot,
        message=message,
        hint=hint,
    )
    out.say(f"warning: {message}\nhint: {hint}")


def _refuse_stale(spec: Spec, project: Path, lock: Lock, path: Path) -> None:
    from envspec.resolve.locking import lock_status  # only --locked pays for the resolver

    status = lock_status(spec, project, [lock.target])[0]
    if status.state != "fresh":
        raise StaleLockError(
            f"the lock for {lock.target} is out of date with envspec.toml",
            context=str(path),
            hint="run 'envspec lock' and commit locks/, or sync without --locked",
        )


def _uv_options(args: argparse.Namespace, spec: Spec | None) -> uv.UvOptions:
    return uv.UvOptions(
        cache_dir=args.cache_dir / "uv" if args.cache_dir else None,
        offline=args.offline,
        index_urls=uv.index_urls(spec.indexes, os.environ) if spec else (),
    )


def _spec_if_valid(project: Path) -> Spec | None:
    """Rollback must work even when the spec is missing or broken: it only lends indexes."""
    try:
        return load_spec(project / "envspec.toml")
    except EnvspecError:
        return None


def _command_line(args: argparse.Namespace) -> str:
    words = ["sync"]
    words += ["--exact"] if args.exact else []
    words += ["--phase", args.phase] if args.phase else []
    return " ".join(words)


def _rel(path: Path, args: argparse.Namespace) -> str:
    try:
        return str(path.resolve().relative_to(Path(args.project).resolve()))
    except ValueError:
        return str(path)


def _history_line(entry: Mapping[str, Any]) -> str:
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


# -- rendering -----------------------------------------------------------------------------


def _emitter(out: Out) -> Emit:
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
        lines = [_plan_line(phase) for phase in data["phases"]]
        lines = [line for line in lines if line]
        if data["remove"]:
            lines.append(
                "  remove: " + ", ".join(f"{r['name']} {r['version']}" for r in data["remove"])
            )
        if not lines:
            self.out.say("Nothing to do: the environment matches the lock.")
            return
        self.out.say("Plan (dry run):" if data["dry_run"] else "Plan:")
        for line in lines:
            self.out.say(line)

    def on_snapshot(self, data: Mapping[str, Any]) -> None:
        self.out.say(f"Snapshot {data['id']} taken ({data['packages']} packages)")

    def on_phase_started(self, data: Mapping[str, Any]) -> None:
        if self.tty:
            from rich.console import Console  # rich costs an import only on a terminal

            text = f"phase {data['phase']}: installing {len(data['packages'])} packages"
            self.status = Console(stderr=True).status(text)
            self.status.start()

    def on_phase_finished(self, data: Mapping[str, Any]) -> None:
        self.out.say(
            f"  phase {data['phase']}: installed {data['installed']} packages "
            f"in {data['seconds']:.2f}s"
        )

    def on_phase_failed(self, data: Mapping[str, Any]) -> None:
        label = "optional phase" if data["optional"] else "phase"
        self.out.say(f"{'warning: ' if data['optional'] else ''}{label} {data['phase']} failed:")
        for line in str(data["error"]).splitlines():
            self.out.say(f"    {line}")

    def on_removed(self, data: Mapping[str, Any]) -> None:
        self.out.say(f"  removed {len(data['packages'])} packages")

    def on_rollback(self, data: Mapping[str, Any]) -> None:
        if not data["ok"]:
            self.out.say(f"Rollback to snapshot {data['snapshot']} failed: {data['error']}")
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
        if step["installed"]:
            parts.append(f"{step['action']} {step['name']} {step['installed']} → {step['version']}")
        else:
            parts.append(f"install {step['name']} {step['version']}")
    return f"  phase {phase['phase']}: " + ", ".join(parts)
