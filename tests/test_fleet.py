"""The fleet: in a network namespace that has only loopback (no PyPI, no DNS), a plain
`python -m http.server` serves a bundle; four `envspec sync --bundle URL` at once into four
new environments each end with exactly the lock's freeze, `sync --bundle FOLDER --offline`
too, and the server's log shows each file fetched once per environment and nothing but the
manifest and the files. Hermetic with wheels built here; once more on a real PyPI lock."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from uv import find_uv_bin

from envspec.cli import main
from envspec.index.bundle import file_path
from envspec.lockfile import load_lock
from support.envproject import PYTHON, TARGET, EnvProject, clean_environ
from support.fleet import run_in_netns
from support.index_server import IndexServer

FLEET = 4
PORT = 8000  # the namespace is new: nothing else listens in it


def _unshare_works() -> None:
    """The fleet test must run where CI runs (as root): fail loudly, never skip."""
    try:
        proc = subprocess.run(
            ["unshare", "-n", "true"], capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        raise AssertionError("the fleet test needs util-linux's 'unshare' on PATH") from exc
    assert proc.returncode == 0, (
        f"the fleet test needs 'unshare -n' (a new network namespace: run as root): "
        f"{proc.stderr.strip()}"
    )


def _fleet(work: Path, project: Path, bundle: Path) -> dict[str, Any]:
    envs, caches = [], []
    for n in range(FLEET + 1):
        env = work / f"machine-{n}" / "env"
        subprocess.run(
            [find_uv_bin(), "venv", "-q", "--no-config", "--python", sys.executable, str(env)],
            check=True, env=clean_environ(),
        )  # fmt: skip
        envs.append(str(env))
        caches.append(str(work / f"machine-{n}" / "cache"))
    spec = {
        "bundle": str(bundle), "project": str(project), "envs": envs, "caches": caches,
        "port": PORT, "log": str(work / "server.log"),
    }  # fmt: skip
    report = run_in_netns(spec, work)
    report["env_paths"] = envs
    return report


def _freeze(env: str) -> str:
    python = str(Path(env) / "bin" / "python")
    return subprocess.run(
        [find_uv_bin(), "pip", "freeze", "--no-config", "--python", python],
        capture_output=True, text=True, check=True, env=clean_environ(),
    ).stdout  # fmt: skip


def _check(report: dict[str, Any], lock_file: Path, bundle: Path) -> None:
    assert report["interfaces"] == ["lo"]
    assert "resolved" not in report["dns"]  # pypi.org cannot even be looked up
    lock = load_lock(lock_file)
    packages = sorted(lock.packages, key=lambda p: p.name)
    expected = "".join(f"{p.name}=={p.version}\n" for p in packages)
    runs = [*report["concurrent"], report["offline"]]
    for run, env in zip(runs, report["env_paths"], strict=True):
        assert run["code"] == 0, run["stderr"]
        assert run["events"][-1]["event"] == "done" and run["events"][-1]["exit_code"] == 0
        assert _freeze(env) == expected
    total = sum(p.artifact.size or 0 for p in lock.packages if p.artifact)
    for run in runs:
        fetched = sum(e["bytes"] for e in run["events"] if e["event"] == "download_finished")
        assert fetched == total  # every file once, from the bundle
    requests = re.findall(r'"GET (\S+) HTTP/1\.[01]" (\d+)', report["log"])
    assert {status for _, status in requests} == {"200"}
    counts = Counter(path for path, _ in requests)
    files = {
        "/" + file_path(p.artifact.sha256 or "", p.artifact.filename)
        for p in lock.packages
        if p.artifact
    }
    # Each machine has a store of its own, needs every file and fetched each of them: so
    # FLEET fetches in all means one per environment.
    assert counts == {"/bundle.json": FLEET, **{path: FLEET for path in files}}
    assert all((bundle / path.lstrip("/")).is_file() for path in files)


def test_four_machines_sync_at_once_from_a_loopback_bundle_with_no_network(
    tmp_path: Path, index_server: IndexServer
) -> None:
    _unshare_works()
    index_server.add_wheel("alpha", "1.0", requires_dist=["beta"])
    index_server.add_wheel("beta", "1.0", pad_bytes=400_000)
    index_server.add_wheel("gamma", "2.0", pad_bytes=250_000)
    index_server.add_wheel("delta", "1.0", requires_dist=["gamma>=2"])
    index_server.add_wheel("epsilon", "3.0")
    project = EnvProject(tmp_path, index_server)
    project.write_spec(
        [{"name": "base", "requirements": ["alpha"]},
         {"name": "extras", "requirements": ["delta"]},
         {"name": "app", "requirements": ["epsilon"]}]
    )  # fmt: skip
    project.lock()
    bundle = tmp_path / "bundle"
    args = ["--project", str(project.project), "--cache-dir", str(project.cache)]
    assert main(["bundle", str(bundle), *args]) == 0
    report = _fleet(tmp_path, project.project, bundle)
    _check(report, project.lock_file, bundle)


@pytest.mark.network
def test_a_fleet_syncs_a_real_pypi_lock_from_a_loopback_bundle(tmp_path: Path) -> None:
    _unshare_works()
    project = tmp_path / "project"
    project.mkdir()
    spec = {
        "environment": {"name": "fleet", "python": PYTHON, "targets": [TARGET]},
        "indexes": {"pypi": "https://pypi.org/simple"},
        "phases": [
            {"name": "base", "requirements": ["six", "idna"]},
            {"name": "app", "requirements": ["attrs", "packaging"]},
        ],
    }
    (project / "envspec.toml").write_text(tomlkit.dumps(spec))
    args = ["--project", str(project), "--cache-dir", str(tmp_path / "cache")]
    assert main(["lock", *args]) == 0
    bundle = tmp_path / "bundle"
    assert main(["bundle", str(bundle), *args]) == 0
    report = _fleet(tmp_path, project, bundle)
    _check(report, project / "locks" / f"pylock.{TARGET}.toml", bundle)
