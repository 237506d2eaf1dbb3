"""No process envspec starts outlives its hold on the environment, with real processes:
uv holds the environment lock it inherits, dies with a sync killed by SIGKILL (envspec
alone, not its process group), gets the SIGTERM or SIGINT sent to envspec and is waited
for, after which the sync reports the rollback offer; and two first syncs of a project
without `.venv` create it once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support import procs
from support.envproject import EnvProject, audit, clean_environ, crossing, events
from support.index_server import IndexServer

pytestmark = pytest.mark.skipif(not procs.PROC.is_dir(), reason="reads /proc")

@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    """`crossing`, from wheels large enough that uv is still running when a signal comes."""
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    return crossing(tmp_path, index_server, lambda name, version: {"pad_bytes": 20_000_000})


def test_uv_holds_the_lock_and_dies_with_a_sync_killed_by_sigkill(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = proj.spawn("sync")
    uv = procs.installer(proc.pid, 0)
    locks = [path for path in procs.open_files(uv) if path.endswith("/lock")]
    assert locks == [str(proj.state / "lock")]  # inherited: held for as long as uv runs
    os.kill(proc.pid, signal.SIGKILL)  # envspec alone, as the OOM killer would
    proc.communicate(timeout=30)
    assert procs.gone(uv), "uv outlived the sync that started it"
    capsys.readouterr()
    assert proj.run("sync") == 0
    assert capsys.readouterr().err.splitlines()[:2] == [
        "warning: a previous 'sync' was interrupted in phase 'up'; snapshot 1 holds the "
        "environment from before it",
        "hint: run 'envspec rollback' to restore it, or 'envspec sync' to finish the sync",
    ]
    assert audit(proj.env) == []
    assert not (proj.state / "journal.json").exists()


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_is_passed_on_to_uv_waited_for_and_reported_with_the_rollback_offer(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], sent: signal.Signals, code: int
) -> None:
    before = proj.freeze()
    proc = proj.spawn("sync")
    uv = procs.installer(proc.pid, 1)
    os.kill(proc.pid, sent)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert err.splitlines()[-2:] == [
        f"error: {proj.env}: sync interrupted by {sent.name} in phase 'down'; snapshot 1 "
        "holds the environment from before it",
        "hint: run 'envspec rollback' to restore it, or 'envspec sync' to finish the sync",
    ]
    assert procs.gone(uv, within=0)  # envspec waited for it
    assert (proj.state / "journal.json").exists()
    capsys.readouterr()
    assert proj.run("history") == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        "warning: a previous 'sync' was interrupted in phase 'down'; snapshot 1 holds the "
        "environment from before it"
    )
    assert proj.run("rollback") == 0
    assert proj.freeze() == before
    assert audit(proj.env) == []


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_the_files_download_ends_the_sync_with_its_error_event(
    proj: EnvProject, index_server: IndexServer, sent: signal.Signals, code: int
) -> None:
    """Stopped before uv starts: the same report as any failure, and nothing changed (SIGTERM
    used to end the process with no word, SIGINT with no event)."""
    before = proj.freeze()
    index_server.fault_sleep = 60.0
    index_server.fail(".whl", "timeout", times=100)  # every download stalls
    index_server.reset_counters()
    proc = proj.spawn("sync", "--json")
    out, err = procs.interrupt_on_stall(proc, index_server, lambda p: p.startswith("/files/"), sent)
    assert proc.returncode == code
    assert err.splitlines()[-1:] == [f"error: interrupted by {sent.name}"]
    assert events(out)[-1] == {
        "event": "error", "message": f"interrupted by {sent.name}", "hint": "", "exit_code": code,
    }  # fmt: skip
    assert proj.freeze() == before
    assert not (proj.state / "journal.json").exists()


def test_an_interrupted_rollback_is_named_and_finished_by_the_next(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    before = proj.freeze()
    assert proj.run("sync") == 0
    proc = proj.spawn("rollback")
    procs.child(proc.pid, " sync ")  # its uv pip sync
    os.kill(proc.pid, signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err.splitlines()[-2:] == [
        f"error: {proj.env}: rollback interrupted by SIGTERM; the environment may be only "
        "partly restored",
        "hint: run 'envspec rollback' to finish restoring snapshot 1",
    ]
    capsys.readouterr()
    assert proj.run("rollback") == 0
    assert capsys.readouterr().err.splitlines()[:2] == [
        "warning: a previous 'rollback 1' was interrupted; the environment may be only partly "
        "restored",
        "hint: run 'envspec rollback' to finish restoring snapshot 1",
    ]
    assert proj.freeze() == before
    assert audit(proj.env) == []
    assert not (proj.state / "journal.json").exists()


def test_two_first_syncs_create_the_environment_once(
    tmp_path: Path, index_server: IndexServer
) -> None:
    index_server.add_wheel("alpha", "1.0")
    proj = EnvProject(tmp_path, index_server)
    proj.write_spec([{"name": "one", "requirements": ["alpha"]}])
    proj.lock()
    argv = [sys.executable, "-m", "envspec", "sync", "--project", str(proj.project),
            "--cache-dir", str(proj.cache)]  # fmt: skip
    procs = [
        subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=clean_environ())
        for _ in range(2)
    ]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    venv = proj.project / ".venv"
    created = [e for e in errs if f"Created {venv}" in e]
    waited = [e for e in errs if "Nothing to do: the environment matches the lock." in e]
    assert (len(created), len(waited)) == (1, 1), errs
    assert sorted(p.name for p in (venv / ".envspec" / "snapshots").iterdir()) == ["1.json"]


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_between_two_phases_is_reported_with_the_rollback_offer(
    proj: EnvProject,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sent: signal.Signals,
    code: int,
) -> None:
    """Outside uv (here: right after the journal records phase 'up' done, sent from the file
    system edge) it was the generic 'interrupted by SIGTERM', as if nothing had changed."""
    before = proj.freeze()
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        real_replace(src, dst)
        if Path(dst).name == "journal.json" and '"up"' in Path(dst).read_text().split('"done"')[1]:
            os.kill(os.getpid(), sent)

    monkeypatch.setattr(os, "replace", replace)
    capsys.readouterr()
    assert proj.run("sync") == code
    monkeypatch.undo()
    err = capsys.readouterr().err.splitlines()
    assert err[-2] == (
        f"error: {proj.env}: sync interrupted by {sent.name} in phase 'up'; snapshot 1 "
        "holds the environment from before it"
    )
    assert err[-1] == (
        "hint: run 'envspec rollback' to restore it, or 'envspec sync' to finish the sync"
    )
    assert proj.run("rollback") == 0
    assert proj.freeze() == before
