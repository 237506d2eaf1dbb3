"""SIGKILL of envspec alone (not its process group) at random points of a three-phase sync
that upgrades, downgrades and installs; after each kill the environment is recovered either
with `envspec rollback` or with `envspec sync` again, and must then be exactly what was asked
for: the intended freeze, `uv pip check` clean, no empty, partial or duplicate `.dist-info`,
every file its RECORD lists present, and no uv left running on it.

Each kill point is a phase and a moment in its installer's run, drawn from a seeded generator
(`ENVSPEC_KILL_SEED` picks another seed) over the phase times of one full sync: kills while
envspec itself works are test_sync_transactions.py's. The wheels hold many files, so uv
spends most of its run writing and some kills land mid-write (the test checks that some did:
those are the cases repair is for).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from support import procs
from support.envproject import CROSSING, EnvProject, audit, crossing, events, site_packages
from support.index_server import IndexServer

POINTS = 20
ATTEMPTS = 5
SEED = int(os.environ.get("ENVSPEC_KILL_SEED", "20240808"))
FILES = 800  # per wheel: uv then spends most of its run writing, where kills must land


def _many_files(name: str, version: str) -> dict[str, Any]:
    return {"files": {f"{name}/m{i}.py": f"V = {version!r}\n".encode() for i in range(FILES)}}


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    return crossing(tmp_path, index_server, _many_files)


def _reset(proj: EnvProject, initial: Path) -> None:
    proj.uv("pip", "sync", "--python", str(proj.python), "--cache-dir", str(proj.cache / "uv"),
            str(initial))  # fmt: skip
    assert audit(proj.env) == []


def _sound(proj: EnvProject, expected: str, where: str) -> None:
    assert proj.freeze() == expected, where
    assert audit(proj.env) == [], where
    proj.uv("pip", "check", "--python", str(proj.python))  # asserts a clean exit
    assert not (proj.state / "journal.json").exists(), where
    assert procs.working_on(proj.env) == [], where


def _states(proj: EnvProject, tmp_path: Path) -> tuple[Path, str, str, list[float]]:
    """The initial freeze (as a file to reset to, and as text), the freeze a full sync
    gives, and the seconds each phase of that sync took; the environment reset after it."""
    initial = tmp_path / "initial.txt"
    initial.write_text(proj.freeze())
    full = proj.spawn("sync", "--json")
    out, _ = full.communicate(timeout=120)
    assert full.returncode == 0
    seconds = [e["seconds"] for e in events(out) if e["event"] == "phase_finished"]
    final = proj.freeze()
    assert final != initial.read_text() and len(seconds) == len(CROSSING)
    _reset(proj, initial)
    return initial, initial.read_text(), final, seconds


def _recover(proj: EnvProject, mode: str, expected: str, where: str, before: str) -> None:
    """Finish or undo the killed sync; a sync that finished it is then rolled back, to the
    environment from before the killed sync (the finishing sync snapshotted the half-changed
    one, and the rollback restored that mix)."""
    assert proj.run(mode, "--lock-timeout", "30") == 0, where
    _sound(proj, expected, where)
    if mode == "sync":
        assert proj.run("rollback", "--lock-timeout", "30") == 0, where
        _sound(proj, before, f"{where}, then rolled back")


pytestmark = pytest.mark.skipif(not procs.PROC.is_dir(), reason="reads /proc to find orphans")


def test_sigkill_at_random_points_then_rollback_or_sync_leaves_a_sound_environment(
    proj: EnvProject, tmp_path: Path
) -> None:
    initial, before, final, seconds = _states(proj, tmp_path)
    rng = random.Random(SEED)
    for mode in ("rollback", "sync"):
        for point in range(POINTS):
            phase = rng.randrange(len(CROSSING))
            delay = rng.uniform(0, seconds[phase])
            where = f"seed {SEED}, {mode} #{point}: killed {delay:.3f}s into phase {phase}"
            proc = proj.spawn("sync", "--no-checks")
            procs.installer(proc.pid, phase)
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)  # envspec alone: uv must not outlive it
            proc.communicate(timeout=30)
            _recover(proj, mode, before if mode == "rollback" else final, where, before)
            if mode == "sync":
                _reset(proj, initial)


def _removing(site: Path) -> bool:
    """Whether uv has begun to uninstall alpha 1.0 (it removes the `.dist-info` first)."""
    return not (site / "alpha-1.0.dist-info" / "METADATA").exists()


def _adding(site: Path) -> bool:
    """Whether uv has begun to write gamma."""
    return (site / "gamma").exists() or (site / "gamma-1.0.dist-info").exists()


def test_a_kill_while_uv_writes_leaves_a_broken_environment_that_is_repaired(
    proj: EnvProject, tmp_path: Path
) -> None:
    """Not left to chance: each kill comes the moment uv starts to change site-packages,
    removing alpha 1.0 or writing gamma, and each is recovered both ways. (On a loaded
    machine this test may see uv only after it finished: it tries again, a few times.)"""
    initial, before, final, _ = _states(proj, tmp_path)
    site = site_packages(proj.env)
    for writing in (_removing, _adding):
        for mode in ("rollback", "sync"):
            where = f"{mode} after a kill while {writing.__name__}"
            for _attempt in range(ATTEMPTS):
                proc = proj.spawn("sync", "--no-checks")
                deadline = time.monotonic() + 60
                while not writing(site) and time.monotonic() < deadline:
                    pass
                os.kill(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=30)
                caught = audit(proj.env) != []
                _recover(proj, mode, before if mode == "rollback" else final, where, before)
                _reset(proj, initial)
                if caught:
                    break
            else:
                raise AssertionError(f"{where}: every kill came after uv had written")


def test_a_killed_rollback_finished_by_rollback_can_itself_be_rolled_back(
    proj: EnvProject, tmp_path: Path
) -> None:
    """The finishing rollback took its own snapshot of the half-restored environment as the
    one to undo it with: rolling it back then restored the half-restored mix."""
    _, before, final, _ = _states(proj, tmp_path)
    assert proj.run("sync", "--no-checks") == 0
    assert proj.freeze() == final
    site = site_packages(proj.env)
    target = str(proj.snapshot_ids()[-1])  # the initial environment, before that sync
    for attempt in range(ATTEMPTS * 2):
        proc = proj.spawn("rollback", target)
        procs.child(proc.pid, " sync ")
        deadline = time.monotonic() + 0.05 * attempt
        while not _restoring(site) and time.monotonic() < deadline:
            pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        if (proj.state / "journal.json").exists() and proj.freeze() not in (before, final):
            break  # caught halfway: a mix of both, its journal left
        assert proj.run("sync", "--no-checks") == 0  # back to the synced state, and again
    else:
        raise AssertionError("every kill came before or after the restore")
    assert proj.run("rollback", "--lock-timeout", "30") == 0  # finishes it
    _sound(proj, before, "the killed rollback finished")
    assert proj.run("rollback", "--lock-timeout", "30") == 0  # and undoes it
    _sound(proj, final, "the finished rollback rolled back")


def _restoring(site: Path) -> bool:
    """Whether uv has begun to write the initial environment's alpha 1.0 back (gamma gone by
    then, beta not yet back at 2.0: a mix of both environments)."""
    return (site / "alpha-1.0.dist-info").exists()
