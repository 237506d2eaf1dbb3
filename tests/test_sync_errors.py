"""Bad input to `envspec sync`: each refused with its exact message, exit code, and the
environment left exactly as it was."""

from __future__ import annotations

import errno
import os
import platform
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.envproject import PYTHON, TARGET, EnvProject, site_packages
from support.index_server import IndexServer

PHASES = [{"name": "one", "requirements": ["alpha"]}]


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    index_server.add_wheel("alpha", "1.0")
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    return project


def _unchanged(proj: EnvProject) -> None:
    assert proj.freeze() == ""
    assert not (proj.state / "snapshots").exists()


def test_no_lock_for_this_platform_names_the_locks_that_exist(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "windows-x86_64" if TARGET != "windows-x86_64" else "linux-x86_64"
    proj.write_spec(PHASES, targets=[other])
    proj.lock()
    capsys.readouterr()
    assert proj.run("sync") == 3
    assert capsys.readouterr().err.splitlines() == [
        f"error: {proj.project / 'locks'}: no lock for this environment's platform ({TARGET})",
        f"hint: locks that exist: pylock.{other}.toml; add '{TARGET}' to [environment] "
        "targets, then run 'envspec lock'",
    ]
    _unchanged(proj)


def test_no_lock_at_all(proj: EnvProject, capsys: pytest.CaptureFixture[str]) -> None:
    proj.write_spec(PHASES)
    assert proj.run("sync") == 3
    # the target is in the spec's targets already: the hint says to lock, not to add it
    assert capsys.readouterr().err.splitlines()[-1] == (
        "hint: no locks exist yet; run 'envspec lock' to write it"
    )
    _unchanged(proj)


def test_a_stale_lock_is_refused_with_locked(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    index_server.add_wheel("beta", "1.0")
    proj.write_spec(PHASES)
    proj.lock()
    proj.write_spec([*PHASES, {"name": "two", "requirements": ["beta"]}])
    capsys.readouterr()
    assert proj.run("sync", "--locked") == 3
    assert capsys.readouterr().err.splitlines()[1:] == [
        f"error: {proj.lock_file}: the lock for {TARGET} is out of date with envspec.toml: "
        "phase two added",
        "hint: run 'envspec lock' and commit locks/, or sync without --locked",
    ]
    _unchanged(proj)
    assert proj.run("sync") == 0  # without --locked, the lock is relocked first
    assert "beta==1.0" in proj.freeze()


def test_a_fresh_lock_passes_locked(proj: EnvProject) -> None:
    proj.write_spec(PHASES)
    proj.lock()
    assert proj.run("sync", "--locked") == 0


def test_a_lock_for_another_python_is_refused(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(PHASES)
    proj.lock()
    text = proj.lock_file.read_text()
    proj.lock_file.write_text(
        text.replace(f'requires-python = "=={PYTHON}.*"', 'requires-python = "==3.99.*"')
    )
    capsys.readouterr()
    assert proj.run("sync", "--frozen") == 2  # as it is: plain sync relocks an edited lock
    assert capsys.readouterr().err.splitlines()[1:] == [
        f"error: {proj.lock_file}: the lock is for Python ==3.99.*, the environment has Python "
        f"{platform.python_version()}",
        "hint: pass --python with a matching interpreter, or change [environment] python and "
        "run 'envspec lock'",
    ]
    _unchanged(proj)
    assert proj.run("sync") == 0  # it was refused before the relock it is stale for
    assert f'requires-python = "=={PYTHON}.*"' in proj.lock_file.read_text()


def test_a_missing_interpreter_is_refused(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from envspec.cli import main

    proj.write_spec(PHASES)
    proj.lock()
    capsys.readouterr()
    missing = tmp_path / "nowhere"
    assert main(["sync", "--project", str(proj.project), "--python", str(missing)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --python: no Python interpreter at {missing}",
        "hint: pass --python with an existing interpreter or environment folder",
    ]


def test_check_without_an_environment_says_how_to_make_one(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    from envspec.cli import main

    proj.write_spec(PHASES)
    proj.lock()
    capsys.readouterr()
    assert main(["check", "--project", str(proj.project)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: project: no Python interpreter at {proj.project / '.venv' / 'bin' / 'python'}",
        "hint: run 'envspec sync' to create the environment, or pass --python",
    ]
    assert not (proj.project / ".venv").exists()


@pytest.mark.parametrize("command", ["check", "history", "rollback"])
def test_an_environment_with_a_broken_interpreter_is_not_told_to_be_created(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """The hint said to create it with 'envspec sync', which refuses it too."""
    proj.write_spec(PHASES)
    proj.lock()
    proj.python.unlink()
    proj.python.symlink_to(proj.env / "nowhere")
    capsys.readouterr()
    assert proj.run(command) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --python: no Python interpreter at {proj.python}",
        "hint: the environment's interpreter is missing or a broken link: remove the folder and "
        "run 'envspec sync' to create it again, or pass --python",
    ]


@pytest.fixture
def immutable() -> Iterator[Callable[[Path], None]]:
    """Make folders unwritable even for root (`chattr +i`), undone after the test."""
    made: list[Path] = []

    def make(folder: Path) -> None:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"chattr +i is not available here: {done.stderr.decode().strip()}")
        made.append(folder)

    yield make
    for folder in made:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_an_unwritable_site_packages_is_refused_before_any_change(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], immutable: Callable[[Path], None]
) -> None:
    """It failed in the middle of the install (uv's own error), after the snapshot."""
    proj.write_spec(PHASES)
    proj.lock()
    site = site_packages(proj.env)
    immutable(site)
    capsys.readouterr()
    assert proj.run("sync") == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {site}: cannot write into the environment: Operation not permitted",
        "hint: nothing was changed; make the folder writable, or pass --python with another "
        "environment",
    ]
    _unchanged(proj)


def test_a_rollback_into_an_unwritable_site_packages_is_refused_before_any_change(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], immutable: Callable[[Path], None]
) -> None:
    proj.write_spec(PHASES)
    proj.lock()
    assert proj.run("sync") == 0
    site = site_packages(proj.env)
    immutable(site)
    capsys.readouterr()
    assert proj.run("rollback") == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {site}: cannot write into the environment: Operation not permitted",
        "hint: nothing was changed; make the folder writable, or pass --python with another "
        "environment",
    ]
    assert proj.freeze() == "alpha==1.0\n"
    assert proj.snapshot_ids() == [1]
    assert not (proj.state / "journal.json").exists()


@pytest.mark.parametrize("command", ["sync", "check", "rollback", "history"])
def test_an_environment_the_user_cannot_look_into_is_one_line(
    proj: EnvProject,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    """A folder on the way without search permission (EACCES, which root never gets, hence
    the fake at the file-system edge): `Path.exists` raised PermissionError, a traceback."""
    proj.write_spec(PHASES)
    proj.lock()
    real_stat = Path.stat

    def stat(self: Path, **kwargs: bool) -> os.stat_result:
        if self.is_relative_to(proj.env):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_stat(self, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    capsys.readouterr()
    assert proj.run(command) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --python: cannot look at {proj.env}: Permission denied",
        "hint: pass --python with an environment you can read",
    ]


def test_a_state_file_that_cannot_be_written_midway_restores_the_snapshot(
    proj: EnvProject,
    index_server: IndexServer,
    capsys: pytest.CaptureFixture[str],
    immutable: Callable[[Path], None],
) -> None:
    """Only uv's failures restored the snapshot: an error writing envspec's own state after
    a phase was installed left the environment half-changed, with no word of a rollback."""
    index_server.add_wheel("beta", "1.0")
    proj.write_spec(PHASES)
    proj.lock()
    assert proj.run("sync") == 0
    proj.write_spec([*PHASES, {"name": "two", "requirements": ["beta"]}])
    proj.lock()
    provenance = proj.state / "provenance.json"
    immutable(provenance)
    capsys.readouterr()
    assert proj.run("sync") == 1
    # the restore puts the packages back, then cannot write that file either: it says so
    assert capsys.readouterr().err.splitlines()[-3:] == [
        "Rollback to snapshot 2 failed: cannot write provenance.json: Operation not permitted",
        f"error: {provenance}: cannot write provenance.json: Operation not permitted, and "
        "restoring snapshot 2 failed too",
        "hint: fix the cause, then run 'envspec rollback 2'",
    ]
    assert proj.freeze() == "alpha==1.0\n"


def test_an_unwritable_state_folder_is_refused_before_the_snapshot(
    proj: EnvProject,
    index_server: IndexServer,
    capsys: pytest.CaptureFixture[str],
    immutable: Callable[[Path], None],
) -> None:
    """Each try took a snapshot and then failed: twenty tries pushed out the real ones."""
    index_server.add_wheel("beta", "1.0")
    proj.write_spec(PHASES)
    proj.lock()
    assert proj.run("sync") == 0
    proj.write_spec([*PHASES, {"name": "two", "requirements": ["beta"]}])
    proj.lock()
    immutable(proj.state)
    capsys.readouterr()
    assert proj.run("sync") == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {proj.state}: cannot write into the environment: Operation not permitted",
        "hint: nothing was changed; make the folder writable, or pass --python with another "
        "environment",
    ]
    assert proj.freeze() == "alpha==1.0\n"
    assert proj.snapshot_ids() == [1]


def test_a_journal_that_cannot_be_removed_is_one_line(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], immutable: Callable[[Path], None]
) -> None:
    """A sync killed after its last phase leaves a journal whose work is done: the next sync
    only removes it, and a read-only state folder made that a PermissionError traceback."""
    proj.write_spec(PHASES)
    proj.lock()
    assert proj.run("sync") == 0
    journal = proj.state / "journal.json"
    journal.write_text(
        '{"command": "sync", "snapshot": 1, "phases": ["one"], "done": ["one"], "current": null}'
    )
    immutable(proj.state)
    capsys.readouterr()
    assert proj.run("sync") == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {journal}: cannot remove journal.json: Operation not permitted",
        "hint: make the environment's .envspec folder writable, then run the command again",
    ]


def test_a_folder_where_the_journal_goes_is_one_line(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was an IsADirectoryError traceback."""
    proj.write_spec(PHASES)
    proj.lock()
    journal = proj.state / "journal.json"
    journal.mkdir(parents=True)
    capsys.readouterr()
    assert proj.run("sync") == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {journal}: cannot write journal.json: Is a directory"
    )
    assert proj.freeze() == ""
    assert proj.snapshot_ids() == []  # the snapshot taken for it is gone again


def test_check_reports_an_interrupted_sync(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check` holds the environment's lock while it reads, and so took the journal for a
    running sync's: a killed sync was never reported (`history` did)."""
    proj.write_spec(PHASES)
    proj.lock()
    assert proj.run("sync") == 0
    (proj.state / "journal.json").write_text(
        '{"command": "sync", "snapshot": 1, "phases": ["one"], "done": [], "current": "one"}'
    )
    capsys.readouterr()
    proj.run("check")
    history = capsys.readouterr().err
    assert "warning: a previous 'sync' was interrupted in phase 'one'; snapshot 1 holds" in history


def test_a_failed_phase_whose_restore_fails_too_is_restored_once(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The 'restoring failed too' error of a failed phase was caught as a midway error and
    restored a second time, its message doubled."""
    from support.envproject import corrupt

    index_server.add_wheel("alpha", "2.0")
    index_server.add_wheel("beta", "1.0")
    proj.write_spec([{"name": "one", "requirements": ["alpha<2"]}])
    proj.lock()
    assert proj.run("sync") == 0
    proj.write_spec(
        [{"name": "one", "requirements": ["alpha>=2"]}, {"name": "two", "requirements": ["beta"]}]
    )
    corrupt(index_server, "beta-1.0-py3-none-any.whl")
    proj.lock()
    shutil.rmtree(proj.cache / "store" / "sha256")  # alpha 1.0 must come from the index
    shutil.rmtree(proj.cache / "uv", ignore_errors=True)
    index_server.fail("alpha-1.0-py3-none-any.whl", "404", times=100)
    capsys.readouterr()
    assert proj.run("sync") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-2:] == [
        f"error: {proj.env}: required phase 'two' failed, and restoring snapshot 2 failed too",
        "hint: fix the cause, then run 'envspec rollback 2'",
    ]
    assert sum(line.startswith("Rollback to snapshot 2 failed") for line in err) == 1
