"""Syncs as transactions, with real processes: two at once, a held environment lock, and a
sync killed with SIGKILL (with its uv child) at random points, after which the next command
names the phase it stopped in and `envspec rollback` restores the exact freeze."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import filelock
import pytest

from support.envproject import EnvProject
from support.index_server import IndexServer

PHASES = [
    {"name": "one", "requirements": ["alpha>=2"]},
    {"name": "two", "requirements": ["beta"]},
    {"name": "three", "requirements": ["gamma"]},
    {"name": "four", "requirements": ["delta"]},
]
KILLS = 4


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    """An environment holding alpha 1.0, and a lock that upgrades it and adds three phases."""
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    for version in ("1.0", "2.0"):
        index_server.add_wheel("alpha", version)
    index_server.add_wheel("beta", "1.0", pad_bytes=8_000_000)  # slow enough to be caught in
    index_server.add_wheel("gamma", "1.0", requires_dist=["beta"])
    index_server.add_wheel("delta", "1.0", pad_bytes=2_000_000)
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    project.pip_install(f"alpha @ {index_server.file_url('alpha-1.0-py3-none-any.whl')}")
    project.write_spec(PHASES)
    project.lock()
    return project


def _kill(proc: subprocess.Popen[str]) -> None:
    pid = proc.pid
    with contextlib.suppress(ProcessLookupError):  # the sync and its uv, as a closed terminal
        os.killpg(pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def test_two_syncs_at_once_both_succeed_and_install_once(proj: EnvProject) -> None:
    first, second = proj.spawn("sync"), proj.spawn("sync")
    outs = [p.communicate(timeout=120) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    assert proj.snapshot_ids() == [1]  # the one that waited found nothing left to do
    assert "beta==1.0" in proj.freeze() and "delta==1.0" in proj.freeze()


def test_a_sync_waits_for_the_environment_lock_then_gives_up(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    before = proj.freeze()
    proj.state.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(proj.state / "lock"):
        start = time.monotonic()
        assert proj.run("sync", "--lock-timeout", "0.5") == 1
        assert time.monotonic() - start >= 0.5
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {proj.env}: another envspec command is changing this environment; "
        "gave up after 0.5s",
        "hint: wait for it to finish, or wait longer with --lock-timeout SECONDS",
    ]
    assert proj.freeze() == before
    assert proj.snapshot_ids() == []


def test_a_killed_sync_is_named_by_the_next_command_and_rolled_back(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    before = proj.freeze()
    proc = proj.spawn("sync")
    journal = proj.state / "journal.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if json.loads(journal.read_text()).get("current") == "two":
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    _kill(proc)
    assert json.loads(journal.read_text())["current"] == "two"
    capsys.readouterr()
    assert proj.run("history") == 0
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == [
        "warning: a previous 'sync' was interrupted in phase 'two'; snapshot 1 holds the "
        "environment from before it",
        "hint: run 'envspec rollback' to restore it, or 'envspec sync' to finish the sync",
    ]
    assert proj.run("rollback") == 0
    assert proj.freeze() == before
    assert not journal.exists()
    capsys.readouterr()
    assert proj.run("history") == 0
    assert "warning" not in capsys.readouterr().err


def _until_snapshot(proj: EnvProject, known: list[int]) -> float:
    """Wait until a new snapshot is on disk (the sync is about to change things); when."""
    deadline = time.monotonic() + 60
    while proj.snapshot_ids() == known and time.monotonic() < deadline:
        time.sleep(0.001)
    return time.monotonic()


def test_sigkill_at_random_points_then_rollback_restores_the_exact_freeze(
    proj: EnvProject,
) -> None:
    """Kills land between the snapshot and the end of the sync: the window where the
    environment is being changed (a kill before it leaves nothing to undo)."""
    before = proj.freeze()
    full = proj.spawn("sync")
    changing = _until_snapshot(proj, [])
    full.communicate(timeout=120)
    window = time.monotonic() - changing
    assert full.returncode == 0
    assert proj.run("rollback") == 0
    assert proj.freeze() == before
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for attempt in range(KILLS):
        delay = rng.uniform(0, window)
        where = f"seed {seed}, attempt {attempt}, kill {delay:.3f}s into {window:.3f}s"
        proc = proj.spawn("sync")
        _until_snapshot(proj, proj.snapshot_ids())
        time.sleep(delay)
        _kill(proc)
        assert proj.run("rollback") == 0, where
        assert proj.freeze() == before, where
        assert not (proj.state / "journal.json").exists(), where


PROBE = """\
import fcntl, os
fd = os.open({lock!r}, os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    pass
else:
    raise RuntimeError("the environment's lock was free while the checks ran")
"""


def test_the_checks_run_under_the_environment_lock(
    tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync let its lock go before its import checks: a rollback waiting for it changed
    the environment while the checks imported from it (false 'No module named …' failures).
    The probe's import fails when it can take the environment's lock itself."""
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    probe = PROBE.format(lock=str(project.state / "lock")).encode()
    index_server.add_wheel("probe", "1.0", files={"probe/__init__.py": probe})
    project.write_spec([{"name": "one", "requirements": ["probe"]}], checks={"imports": ["probe"]})
    project.lock()
    assert project.run("sync") == 0


def test_check_waits_for_a_command_changing_the_environment(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """check read the environment while a sync held it (half-installed packages reported as
    broken imports, 9 checks in 80); it now waits for the lock, and says so when it gives up."""
    assert proj.run("sync") == 0
    capsys.readouterr()
    with filelock.FileLock(proj.state / "lock"):
        start = time.monotonic()
        assert proj.run("check", "--lock-timeout", "0.5") == 1
        assert time.monotonic() - start >= 0.5
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {proj.env}: another envspec command is changing this environment; "
        "gave up after 0.5s",
        "hint: wait for it to finish, or wait longer with --lock-timeout SECONDS",
    ]
    assert proj.run("check") == 0
