"""apply's events as the CLI writes them with --json: each event dataclass gives exactly the
JSON line README.md's events table documents (these are the bytes the `emit(kind, **data)`
calls wrote before the events became dataclasses), and the base reporter ignores them all."""

from __future__ import annotations

from typing import Any

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from envspec.apply import events as ev
from envspec.apply.plan import Installed, PhasePlan, Plan, Step
from envspec.cli import _Output
from envspec.model import LockedPackage, LockedPhase
from envspec.render import CliReporter, Done


def _plan() -> Plan:
    numpy = LockedPackage(name=canonicalize_name("numpy"), version=Version("1.26.4"))
    torch = LockedPackage(name=canonicalize_name("torch"), version=Version("2.3.0"))
    steps = (
        Step(package=numpy, action="downgrade", installed="2.1.0"),
        Step(package=torch, action="repair", installed="2.3.0", problem="no RECORD"),
    )
    return Plan(
        phases=(
            PhasePlan(phase=LockedPhase(name="base"), steps=steps),
            PhasePlan(phase=LockedPhase(name="gpu", optional=True, skipped="no wheel"), steps=()),
        ),
        remove=(Installed(name=canonicalize_name("pip"), version="24.0"),),
        repair=(Installed(name=canonicalize_name("six"), version="1.0", problem="no METADATA"),),
    )


CASES: list[tuple[Any, str]] = [
    (
        ev.Planned(plan=_plan(), dry_run=True),
        '{"dry_run": true, "event": "plan", "phases": [{"optional": false, "phase": "base", '
        '"skipped": null, "steps": [{"action": "downgrade", "installed": "2.1.0", "name": '
        '"numpy", "version": "1.26.4"}, {"action": "repair", "installed": "2.3.0", "name": '
        '"torch", "problem": "no RECORD", "version": "2.3.0"}]}, {"optional": true, "phase": '
        '"gpu", "skipped": "no wheel", "steps": []}], "remove": [{"name": "pip", "version": '
        '"24.0"}], "repair": [{"name": "six", "problem": "no METADATA", "version": "1.0"}]}',
    ),
    (
        ev.Fetching(files=2, bytes=300, stored=1),
        '{"bytes": 300, "event": "fetch", "files": 2, "stored": 1}',
    ),
    (
        ev.DownloadProgressed(name="a.whl", bytes=10, total=None),
        '{"bytes": 10, "event": "download", "name": "a.whl", "total": null}',
    ),
    (
        ev.DownloadFinished(name="a.whl", bytes=20, seconds=0.125),
        '{"bytes": 20, "event": "download_finished", "name": "a.whl", "seconds": 0.125}',
    ),
    (
        ev.SnapshotTaken(id=3, packages=12, command="sync --exact"),
        '{"command": "sync --exact", "event": "snapshot", "id": 3, "packages": 12}',
    ),
    (
        ev.Removed(packages=_plan().remove, seconds=0.5),
        '{"event": "removed", "packages": [{"name": "pip", "version": "24.0"}], "seconds": 0.5}',
    ),
    (
        ev.PhaseStarted(phase="base", packages=("numpy==1.26.4",)),
        '{"event": "phase_started", "packages": ["numpy==1.26.4"], "phase": "base"}',
    ),
    (
        ev.PhaseFinished(phase="base", installed=1, seconds=1.5),
        '{"event": "phase_finished", "installed": 1, "phase": "base", "seconds": 1.5}',
    ),
    (
        ev.PhaseFailed(phase="gpu", optional=True, error="error: no\n  cause: x"),
        '{"error": "error: no\\n  cause: x", "event": "phase_failed", "optional": true, '
        '"phase": "gpu"}',
    ),
    (
        ev.RolledBack(snapshot=2, changes=("alpha 2.0→1.0",)),
        '{"changes": ["alpha 2.0\\u21921.0"], "event": "rollback", "ok": true, "snapshot": 2}',
    ),
    (
        ev.RollbackFailed(snapshot=2, error="cannot restore", tail="uv: no"),
        '{"error": "cannot restore", "event": "rollback", "ok": false, "snapshot": 2, '
        '"tail": "uv: no"}',
    ),
    (
        ev.Checked(check="import", subject="torch", ok=False, message="m", warnings=("w",)),
        '{"check": "import", "event": "check", "message": "m", "ok": false, "subject": '
        '"torch", "warnings": ["w"]}',
    ),
    (
        Done(command="sync", exit_code=0, changed=True, failed_optional=("gpu",), dry_run=False),
        '{"changed": true, "command": "sync", "dry_run": false, "event": "done", "exit_code": '
        '0, "failed_optional": ["gpu"]}',
    ),
    (
        Done(command="check", exit_code=1, changed=False),
        '{"changed": false, "command": "check", "event": "done", "exit_code": 1}',
    ),
]
METHODS = {
    ev.Planned: "planned",
    ev.Fetching: "fetching",
    ev.DownloadProgressed: "download_progressed",
    ev.DownloadFinished: "download_finished",
    ev.SnapshotTaken: "snapshot_taken",
    ev.Removed: "removed",
    ev.PhaseStarted: "phase_started",
    ev.PhaseFinished: "phase_finished",
    ev.PhaseFailed: "phase_failed",
    ev.RolledBack: "rolled_back",
    ev.RollbackFailed: "rollback_failed",
    ev.Checked: "checked",
    Done: "done",
}


@pytest.mark.parametrize(("event", "line"), CASES, ids=[type(e).__name__ for e, _ in CASES])
def test_each_event_is_one_json_line(
    event: Any, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    reporter = CliReporter(_Output(json_mode=True, quiet=False))
    getattr(reporter, METHODS[type(event)])(event)
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (line + "\n", "")


def test_the_base_reporter_has_a_method_for_every_event_and_ignores_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reporter = ev.Reporter()
    for event, _ in CASES:
        if not isinstance(event, Done):  # the command's end is the CLI's, not apply's
            getattr(reporter, METHODS[type(event)])(event)
    assert capsys.readouterr() == ("", "")
    classes = {cls for cls in vars(ev).values() if isinstance(cls, type)}
    apply_events = {cls for cls in classes if issubclass(cls, ev.Event) and cls is not ev.Event}
    assert apply_events == set(METHODS) - {Done}
