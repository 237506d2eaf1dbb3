"""`envspec sync` end to end: real virtual environments (`uv venv`), real installs with uv from
wheels served on 127.0.0.1, locks written by `envspec lock`."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support.envproject import TARGET, EnvProject, corrupt, events
from support.index_server import IndexServer

THREE = [
    {"name": "one", "requirements": ["alpha<2"]},
    {"name": "two", "requirements": ["beta"]},
    {"name": "three", "requirements": ["gamma"]},
]


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    index_server.add_wheel("alpha", "1.0")
    index_server.add_wheel("alpha", "2.0")
    index_server.add_wheel("beta", "1.0", requires_dist=["alpha>=1"])
    index_server.add_wheel("gamma", "1.0", requires_dist=["beta"])
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    return project


def _pins(*pins: str) -> str:
    """What `pip freeze` lists for registry installs: `name==version` lines."""
    return "".join(pin + "\n" for pin in sorted(pins))


def test_sync_into_an_empty_environment_installs_the_phases_in_order(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(THREE)
    proj.lock()
    capsys.readouterr()
    assert proj.run("sync", "--json") == 0
    got = events(capsys.readouterr().out)
    kinds = [e["event"] for e in got]
    assert kinds[:3] == ["environment", "plan", "fetch"]
    files = [f"{name}-1.0-py3-none-any.whl" for name in ("alpha", "beta", "gamma")]
    sizes = {f: proj.server.entry(f).size for f in files}
    assert got[2] == {"event": "fetch", "files": 3, "bytes": sum(sizes.values()), "stored": 0}
    finished = {e["name"]: e["bytes"] for e in got if e["event"] == "download_finished"}
    assert finished == sizes  # every file is in the store before the snapshot, the first change
    assert kinds.index("snapshot") > max(i for i, k in enumerate(kinds) if k.startswith("download"))
    started = [e["phase"] for e in got if e["event"] == "phase_started"]
    finished = [e["phase"] for e in got if e["event"] == "phase_finished"]
    assert started == finished == ["one", "two", "three"]
    assert kinds.index("check") > kinds.index("phase_finished")
    assert got[-1] == {
        "event": "done", "command": "sync", "exit_code": 0, "changed": True,
        "failed_optional": [], "dry_run": False,
    }  # fmt: skip
    assert got[0]["target"] == TARGET
    assert proj.freeze() == _pins("alpha==1.0", "beta==1.0", "gamma==1.0")
    assert not (proj.state / "journal.json").exists()
    assert proj.snapshot_ids() == [1]


def test_a_second_sync_is_a_noop_that_starts_no_process(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj.write_spec(THREE)
    proj.lock()
    assert proj.run("sync") == 0
    before = proj.freeze()
    capsys.readouterr()

    def no_process(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    assert proj.run("sync") == 0
    err = capsys.readouterr().err
    assert "Nothing to do: the environment matches the lock." in err
    monkeypatch.undo()
    assert proj.freeze() == before
    assert proj.snapshot_ids() == [1]


def test_an_upgrade_of_one_package_changes_only_that_package(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(THREE)
    proj.lock()
    assert proj.run("sync") == 0
    proj.write_spec([{"name": "one", "requirements": ["alpha>=2"]}, *THREE[1:]])
    proj.lock()
    capsys.readouterr()
    assert proj.run("sync") == 0
    err = capsys.readouterr().err
    assert "  phase one: upgrade alpha 1.0 → 2.0" in err.splitlines()
    assert "phase two" not in err and "phase three" not in err
    assert proj.freeze() == _pins("alpha==2.0", "beta==1.0", "gamma==1.0")


def test_a_required_phase_failing_restores_the_pre_sync_freeze_exactly(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(THREE)
    proj.lock()
    assert proj.run("sync") == 0
    before = proj.freeze()
    bad = index_server.add_wheel("delta", "1.0")
    corrupt(index_server, bad.name)
    index_server.add_wheel("epsilon", "1.0")
    proj.write_spec(
        [
            {"name": "one", "requirements": ["alpha>=2"]},
            {"name": "two", "requirements": ["beta"]},
            {"name": "three", "requirements": ["delta"]},
            {"name": "four", "requirements": ["epsilon"]},
        ]
    )
    proj.lock()
    capsys.readouterr()
    assert proj.run("sync", "--json") == 1
    captured = capsys.readouterr()
    got = events(captured.out)
    failed = [e for e in got if e["event"] == "phase_failed"]
    assert [(e["phase"], e["optional"]) for e in failed] == [("three", False)]
    assert "delta" in failed[0]["error"]
    # exact by default: gamma, which the new lock does not name, was removed first, and is back
    gamma = {"name": "gamma", "version": "1.0"}
    assert [e["remove"] for e in got if e["event"] == "plan"] == [[gamma]]
    changes = ["alpha 2.0→1.0", "+gamma 1.0"]
    assert [e for e in got if e["event"] == "rollback"] == [
        {"event": "rollback", "snapshot": 2, "ok": True, "changes": changes}
    ]
    assert "four" not in [e.get("phase") for e in got]
    assert got[-1]["event"] == "error"
    assert got[-1]["message"] == (
        f"{proj.env}: required phase 'three' failed; the environment was restored to snapshot 2"
    )
    assert got[-1]["exit_code"] == 1
    assert proj.freeze() == before
    assert not (proj.state / "journal.json").exists()


def test_an_optional_phase_failing_warns_and_the_sync_goes_on(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = index_server.add_wheel("delta", "1.0")
    corrupt(index_server, bad.name)
    proj.write_spec(
        [
            THREE[0],
            {"name": "extras", "requirements": ["delta"], "optional": True},
            THREE[1],
        ]
    )
    proj.lock()
    capsys.readouterr()
    assert proj.run("sync") == 0
    err = capsys.readouterr().err
    assert "warning: optional phase extras failed:" in err
    assert "Synced (optional phases failed: extras)." in err
    assert "       warning: delta 1.0 is not installed (optional phase extras)" in err.splitlines()
    assert proj.freeze() == _pins("alpha==1.0", "beta==1.0")


def test_dry_run_prints_the_plan_and_changes_nothing(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(THREE)
    proj.lock()
    capsys.readouterr()
    assert proj.run("sync", "--dry-run") == 0
    assert capsys.readouterr().out.splitlines() == [  # the plan is the result: stdout
        "Plan (dry run):",
        "  phase one: install alpha 1.0",
        "  phase two: install beta 1.0",
        "  phase three: install gamma 1.0",
    ]
    assert proj.freeze() == ""
    assert proj.snapshot_ids() == []


def test_phase_limits_a_sync_to_that_phase_and_those_before_it(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(THREE)
    proj.lock()
    assert proj.run("sync", "--phase", "two") == 0
    assert proj.freeze() == _pins("alpha==1.0", "beta==1.0")
    capsys.readouterr()
    assert proj.run("sync", "--phase", "tow") == 2
    assert capsys.readouterr().err.splitlines() == [
        f"Environment {proj.env} (Python {_python(proj)}), lock locks/pylock.{TARGET}.toml",
        f"error: no phase 'tow' in the lock for {TARGET}",
        "hint: did you mean 'two'?",
    ]


def test_exact_the_default_removes_what_the_lock_does_not_name(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    stray = index_server.add_wheel("stray", "0.1")
    proj.write_spec(THREE)
    proj.lock()
    proj.pip_install(f"stray @ {index_server.file_url(stray.name)}")
    assert proj.run("sync", "--inexact") == 0
    assert "stray" in proj.freeze()
    assert "warning: not in the lock: stray 0.1" in capsys.readouterr().err
    assert proj.run("sync", "--exact") == 0  # the default, named
    assert "  remove: stray 0.1" in capsys.readouterr().err.splitlines()
    assert "stray" not in proj.freeze()


def test_the_project_venv_is_created_when_no_environment_is_given(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    from envspec.cli import main

    proj.write_spec(THREE[:1])
    proj.lock()
    args = ["sync", "--project", str(proj.project), "--cache-dir", str(proj.cache)]
    assert main(args) == 0
    assert (proj.project / ".venv" / "bin" / "python").exists()
    assert f"Created {proj.project / '.venv'}" in capsys.readouterr().err


def test_relative_folders_name_the_same_places_for_envspec_and_uv(
    proj: EnvProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--cache-dir cache` from the folder above: uv reads the stored wheels through a PEP 751
    file inside the environment, where a relative path named files that were not there (the
    sync failed with "failed to query metadata of file `…/env/.envspec/tmp/cache/store/…`")."""
    from envspec.cli import main

    proj.write_spec(THREE)
    proj.lock()
    monkeypatch.chdir(proj.project.parent)
    relative = ["--project", "project", "--python", "env", "--cache-dir", "cache"]
    assert main(["sync", *relative]) == 0
    assert proj.freeze() == _pins("alpha==1.0", "beta==1.0", "gamma==1.0")
    assert main(["rollback", *relative]) == 0
    assert proj.freeze() == ""
    assert main(["sync", "--offline", *relative]) == 0  # the same store, from the same folder
    assert proj.freeze() == _pins("alpha==1.0", "beta==1.0", "gamma==1.0")


def test_index_credentials_reach_uv_and_nothing_else(
    proj: EnvProject,
    index_server: IndexServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index_server.auth = ("user", "s3cret-token")
    monkeypatch.setenv("ENVSPEC_INDEX_LOCAL_USERNAME", "user")
    monkeypatch.setenv("ENVSPEC_INDEX_LOCAL_PASSWORD", "s3cret-token")
    proj.write_spec(THREE[:1])
    proj.lock()
    assert proj.run("sync", "--json") == 0
    captured = capsys.readouterr()
    assert "alpha==1.0" in proj.freeze()
    assert "s3cret" not in captured.out + captured.err
    for folder in (proj.env, proj.project):
        for path in folder.rglob("*"):
            if path.is_file():
                assert b"s3cret" not in path.read_bytes(), path


def _python(proj: EnvProject) -> str:
    return subprocess.run(
        [str(proj.python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_a_phase_skipped_in_the_lock_is_shown_and_left_alone(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(
        [THREE[0], {"name": "extras", "requirements": ["not-published"], "optional": True}]
    )
    proj.lock()
    capsys.readouterr()
    assert proj.run("sync") == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[2] == "  phase one: install alpha 1.0"
    assert lines[3].startswith("  phase extras: skipped in the lock (")
    assert proj.run("sync") == 0
    assert capsys.readouterr().err.splitlines()[1] == (
        "Nothing to do: the environment matches the lock."
    )


def test_a_new_environment_of_a_known_interpreter_needs_no_probe(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from envspec.cli import main

    proj.write_spec(THREE[:1])
    proj.lock()
    assert proj.run("sync") == 0  # probes this interpreter once, for all its environments
    other = proj.env.parent / "other-env"
    proj.uv("venv", "-q", "--python", str(proj.python.resolve()), str(other))
    capsys.readouterr()

    def no_process(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    args = ["--project", str(proj.project), "--cache-dir", str(proj.cache)]
    assert main(["sync", "--dry-run", "--python", str(other), *args]) == 0
    assert "  phase one: install alpha 1.0" in capsys.readouterr().out.splitlines()


def _edit_lock(proj: EnvProject, name: str, line: str) -> None:
    """Give package `name` of the lock one more key (a hand edit)."""
    text = proj.lock_file.read_text()
    head = f'name = "{name}"\nversion = "1.0"\n'
    assert head in text
    proj.lock_file.write_text(text.replace(head, head + line + "\n"))


def test_a_package_whose_marker_does_not_hold_is_left_out(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """PEP 751: an installer leaves out a package whose marker is false (uv pip install -r
    does). envspec's sync installed it; `check` then expected it. --frozen installs the lock
    as it is; --locked refuses it, as `envspec lock` would write no marker."""
    proj.write_spec(THREE)
    proj.lock()
    _edit_lock(proj, "gamma", "marker = \"python_version < '3.0'\"")
    capsys.readouterr()
    assert proj.run("sync", "--frozen") == 0
    err = capsys.readouterr().err
    assert err.splitlines()[1] == (
        f"WARNING: {proj.lock_file}: gamma 1.0 is left out: its marker "
        "\"python_version < '3.0'\" does not hold for this environment"
    )
    assert proj.freeze() == _pins("alpha==1.0", "beta==1.0")
    assert proj.run("check") == 1  # a stale lock is compared as it is: gamma is in it
    assert capsys.readouterr().err.splitlines()[2:4] == [
        "  FAIL drift: gamma 1.0 is not installed (phase three)",
        f"  FAIL lock: the lock for {TARGET} is out of date with envspec.toml: gamma has a "
        "marker (\"python_version < '3.0'\"), which envspec does not write ('envspec sync' "
        "relocks it first, 'envspec lock' relocks it)",
    ]
    assert proj.run("sync", "--locked") == 3
    assert capsys.readouterr().err.splitlines()[-2] == (
        f"error: {proj.lock_file}: the lock for {TARGET} is out of date with envspec.toml: "
        "gamma has a marker (\"python_version < '3.0'\"), which envspec does not write"
    )
    assert proj.run("sync") == 0  # relocked: the marker is gone
    assert "marker" not in proj.lock_file.read_text()
    assert proj.freeze() == _pins("alpha==1.0", "beta==1.0", "gamma==1.0")


def test_a_package_for_another_python_is_refused_before_any_change(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(THREE)
    proj.lock()
    _edit_lock(proj, "beta", 'requires-python = ">=3.99"')
    capsys.readouterr()
    assert proj.run("sync", "--frozen") == 2
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {proj.lock_file}: beta 1.0 is for Python >=3.99, the environment has "
        f"Python {platform.python_version()}",
        "hint: pass --python with a matching interpreter, or change [environment] python and "
        "run 'envspec lock'",
    ]
    assert proj.freeze() == ""
    assert proj.snapshot_ids() == []


def test_a_lock_for_several_environments_fits_any_of_them(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """PEP 751's `environments` lists where the lock may be used: one must hold. Every one had
    to, so a lock for Linux and macOS fitted neither."""
    proj.write_spec(THREE)
    proj.lock()
    text = proj.lock_file.read_text()
    [line] = [x for x in text.splitlines() if x.startswith("environments = ")]
    mine = line.removeprefix("environments = [").removesuffix("]")
    proj.lock_file.write_text(
        text.replace(line, f"environments = [\"sys_platform == 'nowhere'\", {mine}]")
    )
    assert proj.run("sync", "--frozen") == 0
    assert proj.freeze() == _pins("alpha==1.0", "beta==1.0", "gamma==1.0")
    proj.lock_file.write_text(text.replace(line, "environments = [\"sys_platform == 'nowhere'\"]"))
    capsys.readouterr()
    assert proj.run("sync", "--frozen") == 3
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {proj.lock_file}: the lock is for environments 'sys_platform == 'nowhere'', "
        "which this environment is not",
        "hint: run 'envspec lock' to rewrite it for its target",
    ]


def test_a_marker_on_extra_is_false_as_uv_takes_it(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lock's package marker on `extra` (no extra is asked for at install) crashed sync and
    check with UndefinedEnvironmentName: a traceback."""
    proj.write_spec(THREE)
    proj.lock()
    _edit_lock(proj, "gamma", "marker = \"extra == 'foo'\"")
    capsys.readouterr()
    assert proj.run("sync", "--frozen") == 0
    assert "gamma 1.0 is left out" in capsys.readouterr().err
    assert proj.freeze() == _pins("alpha==1.0", "beta==1.0")
