"""`envspec sync` the way `uv sync` works: a stale lock relocked first (`--locked` refuses it,
`--frozen` takes it as it is), exact by default (`--inexact` keeps extras; uv's seed-package
rule), never an interpreter that is not a virtual environment without `--system`, a dry run
that writes nothing anywhere, and uv's cache where the user's `UV_CACHE_DIR` says while every
other installer setting in the environment is ignored. Real environments, real wheels over
127.0.0.1."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from envspec.cli import main
from support.envproject import PYTHON, TARGET, EnvProject, events, plain_python
from support.index_server import IndexServer

TWO = [
    {"name": "one", "requirements": ["alpha"]},
    {"name": "two", "requirements": ["beta"]},
]


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    for name in ("UV_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    index_server.add_wheel("alpha", "1.0")
    index_server.add_wheel("beta", "1.0", requires_dist=["alpha"])
    index_server.add_wheel("gamma", "1.0")
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    return project


def _pins(lock: Path) -> dict[str, str]:
    return {p["name"]: p["version"] for p in tomllib.loads(lock.read_text())["packages"]}


def _files(*roots: Path) -> dict[str, bytes]:
    """Every file and folder under `roots`, with its bytes (folders: empty)."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")) if root.exists() else ():
            found[str(path)] = path.read_bytes() if path.is_file() else b""
    return found


# -- stale locks ---------------------------------------------------------------------------


def test_a_stale_lock_is_relocked_first_keeping_the_other_pins(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(TWO[:1])
    proj.lock()
    index_server.add_wheel("alpha", "2.0")  # released since: the relock keeps alpha 1.0
    proj.write_spec(TWO)
    capsys.readouterr()
    assert proj.run("sync") == 0
    err = capsys.readouterr().err.splitlines()
    assert err[1:3] == [
        f"The lock for {TARGET} is out of date (phase two added): relocking it",
        f"{TARGET}: 2 packages, wrote locks/pylock.{TARGET}.toml",
    ]
    assert "  phase two: install beta 1.0" in err
    assert _pins(proj.lock_file) == {"alpha": "1.0", "beta": "1.0"}
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"
    assert main(["lock", "--check", "--project", str(proj.project)]) == 0


def test_locked_refuses_and_frozen_installs_the_lock_as_it_is(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(TWO[:1])
    proj.lock()
    before = proj.lock_file.read_bytes()
    proj.write_spec(TWO)
    assert proj.run("sync", "--locked") == 3
    assert proj.freeze() == ""
    capsys.readouterr()
    assert proj.run("sync", "--frozen") == 0
    err = capsys.readouterr().err
    assert "out of date" not in err
    assert proj.lock_file.read_bytes() == before
    assert proj.freeze() == "alpha==1.0\n"


def test_locked_and_frozen_together_are_a_usage_error(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(TWO)
    assert proj.run("sync", "--locked", "--frozen") == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: argument --frozen: not allowed with argument --locked",
        "hint: see 'envspec sync --help'",
    ]


def test_a_dry_run_of_a_stale_lock_resolves_it_in_memory_and_writes_nothing(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(TWO[:1])
    proj.lock()
    proj.write_spec(TWO)
    before = _files(proj.project, proj.env)
    capsys.readouterr()
    assert proj.run("sync", "--dry-run", "--json") == 0
    got = events(capsys.readouterr().out)
    [locked] = [e for e in got if e["event"] == "lock"]
    assert (locked["state"], locked["packages"]) == ("resolved", 2)
    [plan] = [e for e in got if e["event"] == "plan"]
    steps = [(p["phase"], [s["name"] for s in p["steps"]]) for p in plan["phases"]]
    assert steps == [("one", ["alpha"]), ("two", ["beta"])]
    assert _files(proj.project, proj.env) == before


def test_a_dry_run_writes_nothing_anywhere(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(TWO)
    proj.lock()
    before = _files(proj.project, proj.env, proj.cache)
    assert proj.run("sync", "--dry-run") == 0
    assert "  phase two: install beta 1.0" in capsys.readouterr().out.splitlines()
    # no state folder, no interpreter cache (its own or the shared one), no store
    assert _files(proj.project, proj.env, proj.cache) == before
    assert not proj.state.exists()


def test_a_dry_run_before_the_first_sync_plans_the_environment_it_would_create(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """As uv's: the plan for the `.venv` a sync would make, with nothing made (it was exit 2,
    "no environment at .venv yet")."""
    proj.write_spec(TWO)
    proj.lock()
    venv = proj.project / ".venv"
    before = _files(proj.project, proj.cache)
    capsys.readouterr()
    argv = ["sync", "--project", str(proj.project), "--cache-dir", str(proj.cache)]
    assert main([*argv, "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines()[0] == f"Would create {venv} (Python {PYTHON})"
    assert out.splitlines() == [
        "Plan (dry run):",
        "  phase one: install alpha 1.0",
        "  phase two: install beta 1.0",
    ]
    assert _files(proj.project, proj.cache) == before
    assert main([*argv, "--dry-run", "--json"]) == 0
    got = events(capsys.readouterr().out)
    assert got[0] == {
        "event": "environment_created", "root": str(venv), "python": PYTHON,
        "dry_run": True,
    }  # fmt: skip
    assert main(argv) == 0
    assert "  phase two: install beta 1.0" in capsys.readouterr().err.splitlines()


def test_a_dry_run_for_a_python_uv_cannot_find_says_so_and_writes_nothing(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(TWO)
    spec = proj.project / "envspec.toml"
    spec.write_text(spec.read_text().replace(f'python = "{PYTHON}"', 'python = "3.99"'))
    before = _files(proj.project, proj.cache)
    capsys.readouterr()
    argv = ["sync", "--dry-run", "--project", str(proj.project), "--cache-dir", str(proj.cache)]
    assert main(argv) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: no Python 3.99 to create the environment with: No interpreter found for Python "
        "3.99 in managed installations or search path",
        "hint: install that Python ('uv python install 3.99'), or pass --python with an "
        "existing environment",
    ]
    assert _files(proj.project, proj.cache) == before


def test_sync_does_not_create_the_project_venv_before_failing_on_a_missing_lock(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(TWO)
    capsys.readouterr()
    assert main(["sync", "--project", str(proj.project), "--cache-dir", str(proj.cache)]) == 3
    assert capsys.readouterr().err.splitlines() == [
        f"error: {proj.project / 'locks'}: no lock for this environment's platform ({TARGET})",
        "hint: no locks exist yet; run 'envspec lock' to write it",
    ]
    assert not (proj.project / ".venv").exists()


def test_a_first_sync_that_fails_removes_the_venv_it_created(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--locked` on a stale lock is found after `.venv` is made (the lock is chosen by the
    environment's interpreter): the sync removes what it made (it stayed)."""
    proj.write_spec(TWO[:1])
    proj.lock()
    proj.write_spec(TWO)
    venv = proj.project / ".venv"
    capsys.readouterr()
    argv = ["sync", "--locked", "--project", str(proj.project), "--cache-dir", str(proj.cache)]
    assert main(argv) == 3
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"Created {venv} (Python {PYTHON})"
    assert err[-3] == f"Removed {venv}: the sync that created it failed"
    assert err[-2].startswith("error: ")
    assert not venv.exists()


# -- exact by default ----------------------------------------------------------------------


def test_sync_is_exact_by_default_and_a_rollback_puts_the_removed_back(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(TWO)
    proj.lock()
    proj.pip_install(f"gamma @ {index_server.file_url('gamma-1.0-py3-none-any.whl')}")
    capsys.readouterr()
    assert proj.run("sync") == 0
    err = capsys.readouterr().err.splitlines()
    assert err[1:5] == [
        "Plan:",
        "  phase one: install alpha 1.0",
        "  phase two: install beta 1.0",
        "  remove: gamma 1.0",
    ]
    assert "  removed 1 package" in err
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"
    assert proj.run("rollback") == 0
    assert "gamma @ " in proj.freeze() and "alpha" not in proj.freeze()


def test_inexact_keeps_what_the_lock_does_not_name(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec(TWO)
    proj.lock()
    proj.pip_install(f"gamma @ {index_server.file_url('gamma-1.0-py3-none-any.whl')}")
    assert proj.run("sync", "--inexact", "--json") == 0
    [plan] = [e for e in events(capsys.readouterr().out) if e["event"] == "plan"]
    assert plan["remove"] == []
    assert "gamma @ " in proj.freeze()
    assert proj.run("history") == 0
    assert " sync --inexact " in capsys.readouterr().out


def test_seed_packages_are_kept_only_in_an_environment_uv_did_not_make(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for seed in ("pip", "setuptools", "wheel"):
        index_server.add_wheel(seed, "99.0")
    proj.write_spec(TWO)
    proj.lock()
    urls = [index_server.file_url(f"{seed}-99.0-py3-none-any.whl") for seed in ("pip", "wheel")]
    proj.pip_install(*(f"{n} @ {u}" for n, u in zip(("pip", "wheel"), urls, strict=True)))
    cfg = proj.env / "pyvenv.cfg"
    made_by_uv = cfg.read_text()
    cfg.write_text("".join(line + "\n" for line in made_by_uv.splitlines() if line[:3] != "uv "))
    capsys.readouterr()
    assert proj.run("sync", "--dry-run") == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if "remove" in line]
    cfg.write_text(made_by_uv)  # uv made it: as `uv sync`, nothing is kept
    assert proj.run("sync", "--dry-run") == 0
    assert "  remove: pip 99.0, wheel 99.0" in capsys.readouterr().out.splitlines()
    cfg.write_text(made_by_uv + "seed = true\n")  # `uv venv --seed`: uv keeps them (it did not)
    assert proj.run("sync", "--dry-run") == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if "remove" in line]


# -- interpreters that are not virtual environments ----------------------------------------


def test_an_interpreter_that_is_not_a_virtual_environment_needs_system(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    python = plain_python(tmp_path / "plain")
    proj.write_spec(TWO)
    proj.lock()
    args = ["--project", str(proj.project), "--cache-dir", str(proj.cache), "--python"]
    before = _files(tmp_path / "plain" / "lib" / "site-packages", proj.cache)
    capsys.readouterr()
    for command in ("sync", "rollback"):
        assert main([command, *args, str(python)]) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"error: --python: {python} is not a virtual environment",
            "hint: run 'uv venv' to create one and pass it with --python, or pass --system "
            "to install into a non-virtual environment",
        ]
    outside = ["--project", str(tmp_path / "plain"), "--python", str(python)]
    assert main(["check", *outside]) == 0  # reading it is fine, and writes nothing
    assert _files(tmp_path / "plain" / "lib" / "site-packages", proj.cache) == before
    assert not (tmp_path / "plain" / ".envspec").exists()
    assert main(["sync", "--system", *args, str(python)]) == 0
    assert "beta==1.0" in proj.uv("pip", "freeze", "--python", str(python))


# -- the user's environment variables ------------------------------------------------------


def test_uv_cache_dir_is_honoured(
    proj: EnvProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # envspec's own cache
    proj.write_spec(TWO)
    proj.lock()
    assert main(["sync", "--project", str(proj.project), "--python", str(proj.env)]) == 0
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"
    assert (tmp_path / "uv-cache" / "CACHEDIR.TAG").exists()
    assert (tmp_path / "xdg" / "envspec" / "store").is_dir()
    assert not (tmp_path / "xdg" / "envspec" / "uv").exists()


def test_installer_settings_in_the_environment_change_nothing(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_server.add_wheel("alpha", "2.0")
    proj.write_spec(TWO)
    proj.lock("--upgrade")
    (tmp_path / "constraints.txt").write_text("alpha<2\nbeta>1\n")
    nowhere = "http://127.0.0.1:9/simple"
    for name in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_INDEX",
                 "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):  # fmt: skip
        monkeypatch.setenv(name, nowhere)
    for name in ("UV_CONSTRAINT", "UV_OVERRIDE", "PIP_CONSTRAINT"):
        monkeypatch.setenv(name, str(tmp_path / "constraints.txt"))
    monkeypatch.setenv("UV_NO_BINARY", "1")
    monkeypatch.setenv("UV_OFFLINE", "1")
    assert proj.run("sync") == 0
    assert proj.freeze() == "alpha==2.0\nbeta==1.0\n"
    assert PYTHON in proj.env.joinpath("pyvenv.cfg").read_text()


def test_a_lock_for_a_target_the_spec_no_longer_has_is_refused_unless_frozen(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "windows-x86_64" if TARGET != "windows-x86_64" else "linux-x86_64"
    proj.write_spec(TWO)
    proj.lock()
    proj.write_spec(TWO, targets=[other])
    capsys.readouterr()
    assert proj.run("sync") == 3
    assert capsys.readouterr().err.splitlines()[1:] == [
        f"error: {proj.lock_file}: the lock for {TARGET} is out of date with envspec.toml: "
        f"{TARGET} is not in [environment] targets",
        f"hint: add '{TARGET}' to [environment] targets, or sync with --frozen",
    ]
    assert proj.freeze() == ""
    assert proj.run("sync", "--frozen") == 0
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"
