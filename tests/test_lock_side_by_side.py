"""`envspec lock --offline` resolves its targets side by side where CPUs are spare: the last
targets in a forked copy of envspec (`commands.lock._side_by_side`, `envspec.forked`). What
it writes and says is what it writes and says on one CPU, one target after another: the same
locks, the same lines in the same order, the same JSON events, the same error."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.index_server import IndexServer
from support.lockproject import spec_text

TARGETS = ("linux-x86_64", "windows-x86_64", "macos-arm64")
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and two CPUs",
)


def _lock(project: Path, *args: str, cpus: int | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m envspec lock` as a user runs it, on `cpus` CPUs (all it may use if None)."""
    pin = f"os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:{cpus}])" if cpus else ""
    argv = [
        "envspec",
        "lock",
        "--project",
        str(project),
        "--cache-dir",
        str(project / ".cache"),
        *args,
    ]
    script = (
        f"import os, runpy, sys\n{pin}\nsys.argv = {argv!r}\nrunpy.run_module('envspec', "
        "run_name='__main__')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**env, "PIP_CONFIG_FILE": os.devnull},
        check=False,
    )


def _locks(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project / "locks").glob("*.toml"))}


def _timeless(text: str) -> str:
    return re.sub(r'"seconds": [\d.e-]+', '"seconds": 0', re.sub(r"in \d+\.\d+s", "in Ts", text))


@pytest.fixture
def project(tmp_path: Path, index_server: IndexServer) -> Path:
    """Three targets, a required phase and an optional one whose only wheel is for Windows
    (skipped with a warning on the two others: the last one's is said by the forked copy),
    every page and metadata file cached by one online lock."""
    index_server.add_wheel("alpha", "1.0", requires_dist=["beta>=2"])
    index_server.add_wheel("beta", "1.0")
    index_server.add_wheel("beta", "2.0", requires_dist=["gamma; sys_platform == 'darwin'"])
    index_server.add_wheel("gamma", "1.0")
    index_server.add_wheel("winonly", "1.0", tag="py3-none-win_amd64")
    project = tmp_path / "project"
    project.mkdir()
    phases = [
        {"name": "base", "requirements": ["alpha"]},
        {"name": "extra", "requirements": ["winonly"], "optional": True},
    ]
    (project / "envspec.toml").write_text(
        spec_text({"pypi": index_server.url}, phases, targets=TARGETS)
    )
    assert _lock(project).returncode == 0
    return project


@pytest.mark.parametrize("args", [(), ("--json",)], ids=["text", "json"])
def test_an_offline_lock_says_and_writes_what_it_does_on_one_cpu(
    project: Path, args: tuple[str, ...]
) -> None:
    runs = {}
    for cpus in (1, None):
        for lock in (project / "locks").glob("*.toml"):
            lock.unlink()
        done = _lock(project, "--offline", *args, cpus=cpus)
        assert done.returncode == 0, done.stderr
        runs[cpus] = (_timeless(done.stdout), _timeless(done.stderr), _locks(project))
    assert runs[None] == runs[1]
    stdout, stderr, locks = runs[None]
    skipped = (
        "winonly (phase extra): winonly 1.0 has no wheel for {0} (only win_amd64) and no sdist: "
        "limit its phase with targets = [...], or add a marker such as \"; sys_platform != '{1}'\""
    )
    linux, macos = skipped.format("linux-x86_64", "linux"), skipped.format("macos-arm64", "darwin")
    warnings = [
        f"WARNING: optional phase 'extra' skipped on linux-x86_64: {linux}",
        f"WARNING: optional phase 'extra' skipped on macos-arm64: {macos}",
    ]
    if args:
        assert stderr.splitlines() == warnings
    else:
        assert stderr.splitlines() == [
            *warnings,
            "linux-x86_64: 2 packages (new lock), wrote locks/pylock.linux-x86_64.toml in Ts",
            f"  optional phase 'extra' skipped: {linux}",
            "windows-x86_64: 3 packages (new lock), wrote locks/pylock.windows-x86_64.toml in Ts",
            "macos-arm64: 3 packages (new lock), wrote locks/pylock.macos-arm64.toml (for macOS "
            "14.0) in Ts",
            f"  optional phase 'extra' skipped: {macos}",
        ]
    assert len(locks) == 3
    if args:
        events = [json.loads(line) for line in stdout.splitlines()]
        assert [e["target"] for e in events if e["event"] == "lock"] == list(TARGETS)


def test_the_forked_copy_is_named_with_vv(project: Path) -> None:
    shutil.rmtree(project / "locks")
    done = _lock(project, "--offline", "-vv")
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"^DEBUG: resolving macos-arm64 in a forked copy \(\d+\)$", done.stderr, re.MULTILINE
    ), done.stderr
    assert "again here" not in done.stderr


def test_a_target_failing_in_the_forked_copy_fails_as_on_one_cpu(
    project: Path, index_server: IndexServer
) -> None:
    spec = project / "envspec.toml"
    wanted = '["alpha", "gamma>=2; sys_platform == \'darwin\'"]'
    spec.write_text(spec.read_text().replace('["alpha"]', wanted))
    before = _locks(project)
    runs = {cpus: _lock(project, "--offline", cpus=cpus) for cpus in (1, None)}
    assert (runs[None].returncode, runs[None].stderr) == (runs[1].returncode, runs[1].stderr)
    assert runs[None].returncode == 1
    assert runs[None].stderr.splitlines()[-1] == (
        "error: target macos-arm64: no version of gamma matches gamma>=2 (phase base) on "
        f"macos-arm64: it comes from index pypi ({index_server.url}), the first index that has "
        "gamma"
    )
    assert _locks(project) == before  # nothing written
    verbose = _lock(project, "--offline", "-vv")
    assert re.search(
        r"^DEBUG: resolving macos-arm64 again here: the worker exited with 1$",
        verbose.stderr,
        re.MULTILINE,
    ), verbose.stderr
