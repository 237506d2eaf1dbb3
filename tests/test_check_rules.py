"""`envspec check` applies the compatibility rules to any environment, one envspec did not make
included: real virtual environments (`uv venv`) holding tiny wheels built here with the
versions of the seed's broken stack (torch 2.4.0+cu121 with torchao 0.14.1), installed with
`uv pip` as pip would have; and a project's own rules and ignored ones, in a synced
environment."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest
from uv import find_uv_bin

from envspec.cli import main
from support.envproject import EnvProject, clean_environ, events
from support.index_server import IndexServer
from support.wheels import build_wheel

SEED = [("torch", "2.4.0+cu121"), ("torchao", "0.14.1"), ("numpy", "1.26.4")]
MISMATCH = (
    "torchao 0.14.1 with torch 2.4.0+cu121: torchao 0.14.1 supports torch 2.7.1–2.9.0 "
    "(pytorch/ao#2919)"
)


def environment(root: Path, wheels: list[tuple[str, str]]) -> Path:
    """A `uv venv` with `wheels` installed from files, as a plain `pip install` leaves them."""
    uv, env = find_uv_bin(), root / "env"
    subprocess.run([uv, "venv", "-q", "--no-config", "--python", sys.executable, str(env)],
                   check=True, env=clean_environ())  # fmt: skip
    files = [str(build_wheel(root / "wheels", name, version)) for name, version in wheels]
    subprocess.run(
        [uv, "pip", "install", "-q", "--no-config", "--python", str(env), "--no-deps",
         "--no-index", "--cache-dir", str(root / "uv-cache"), *files],
        check=True, env=clean_environ(),
    )  # fmt: skip
    return env


def check(env: Path, project: Path, *args: str) -> int:
    return main(["check", "--python", str(env), "--project", str(project), *args])


def test_the_seeds_broken_environment_fails_with_the_rule_and_its_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    env = environment(tmp_path, SEED)
    nowhere = tmp_path / "no-project"
    nowhere.mkdir()
    assert check(env, nowhere) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"Environment {env} (Python {platform.python_version()}); no "
        f"envspec.toml in {nowhere}: checked against envspec's built-in compatibility rules only"
    )
    assert err[1:] == [
        "  ok   dependencies: the requirements of 3 distributions hold",
        "  FAIL rules: 1 compatibility rule broken",
        f"  FAIL rules: {MISMATCH}",
        "Checks failed.",
    ]
    assert check(env, nowhere, "--json") == 1
    got = events(capsys.readouterr().out)
    assert got[0]["event"] == "environment" and got[0]["lock"] is None
    [broken] = [e for e in got if e["event"] == "check" and e["subject"] == "torchao-torch"]
    assert broken == {
        "event": "check", "check": "rules", "subject": "torchao-torch", "ok": False,
        "message": MISMATCH, "warnings": [],
    }  # fmt: skip
    assert got[-1] == {"event": "done", "command": "check", "exit_code": 1, "changed": False}


def test_an_environment_the_rules_hold_for_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    env = environment(tmp_path, [("torch", "2.8.0"), ("torchao", "0.13.0")])
    assert check(env, tmp_path) == 0
    assert capsys.readouterr().err.splitlines()[1:] == [
        "  ok   dependencies: the requirements of 2 distributions hold",
        "  ok   rules: 1 compatibility rule holds",
        "All checks passed.",
    ]


def test_torchao_without_torch_breaks_the_rule_as_a_missing_requirement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    env = environment(tmp_path, [("torchao", "0.18.0")])
    assert check(env, tmp_path) == 1
    assert (
        "  FAIL rules: torchao 0.18.0 needs torch>=2.11.0 (pytorch/ao#2919), but torch is not "
        "installed"
    ) in capsys.readouterr().err.splitlines()


def test_a_projects_own_rules_and_ignored_ones_are_what_check_applies(
    tmp_path: Path,
    index_server: IndexServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    index_server.add_wheel("app", "1.0")
    index_server.add_wheel("lib", "2.0")
    index_server.add_wheel("torch", "2.4.0")
    index_server.add_wheel("torchao", "0.14.1")
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    project.write_spec([{"name": "main", "requirements": ["app", "lib", "torch", "torchao"]}])
    spec = project.project / "envspec.toml"
    spec.write_text(spec.read_text() + '\n[resolution]\nignore-rules = ["torchao-torch"]\n')
    project.lock()
    assert project.run("sync") == 0  # torchao 0.14.1 with torch 2.4.0: the rule is ignored
    assert "  ok   rules: no compatibility rule is about an installed distribution" in (
        capsys.readouterr().err.splitlines()
    )
    spec.write_text(
        spec.read_text()
        + '\n[[rules]]\nid = "app-lib"\npackage = "app"\nrequires = ["lib<2"]\n'
        'source = "https://example.com/app/issues/1"\nreason = "app 1.x crashes with lib 2"\n'
    )
    assert project.run("check") == 1
    broken = "app 1.0 with lib 2.0: app 1.0 supports lib<2 (https://example.com/app/issues/1)"
    assert f"  FAIL rules: {broken}" in capsys.readouterr().err.splitlines()
