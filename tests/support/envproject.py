"""A project with a real virtual environment for sync/check/rollback tests: writes an
`envspec.toml` routed to a loopback `IndexServer`, locks it through the CLI, makes the
environment with `uv venv`, and reads it back with `uv pip freeze`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tomlkit
from uv import find_uv_bin

from envspec.cli import main
from envspec.targets import host_target

from .index_server import IndexServer

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
TARGET = host_target() or "linux-x86_64"


def clean_environ() -> dict[str, str]:
    """The test process's environment without anything that would steer uv, pip or envspec."""
    drop = ("UV_", "PIP_", "VIRTUAL_ENV", "CONDA_PREFIX", "ENVSPEC_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


class EnvProject:
    """`root/project` (the spec and locks), `root/env` (the environment), `root/cache`."""

    def __init__(self, root: Path, server: IndexServer) -> None:
        self.server = server
        self.project = root / "project"
        self.env = root / "env"
        self.cache = root / "cache"
        self.project.mkdir(parents=True, exist_ok=True)

    @property
    def python(self) -> Path:
        return self.env / "bin" / "python"

    @property
    def state(self) -> Path:
        return self.env / ".envspec"

    def write_spec(
        self,
        phases: Sequence[Mapping[str, Any]],
        *,
        checks: Mapping[str, Any] | None = None,
        targets: Sequence[str] = (TARGET,),
    ) -> None:
        doc: dict[str, Any] = {
            "environment": {"name": "t", "python": PYTHON, "targets": list(targets)},
            "indexes": {"local": self.server.url},
            "phases": [dict(p) for p in phases],
        }
        if checks:
            doc["checks"] = dict(checks)
        (self.project / "envspec.toml").write_text(tomlkit.dumps(doc))

    def lock(self, *args: str) -> None:
        code = main(["lock", "--project", str(self.project), "--cache-dir", str(self.cache), *args])
        assert code == 0, "lock failed"

    @property
    def lock_file(self) -> Path:
        return self.project / "locks" / f"pylock.{TARGET}.toml"

    def make_env(self) -> None:
        self.uv("venv", "-q", "--python", sys.executable, str(self.env))

    def uv(self, *args: str) -> str:
        proc = subprocess.run(
            [find_uv_bin(), *args, "--no-config"],
            capture_output=True,
            text=True,
            env=clean_environ(),
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def freeze(self) -> str:
        return self.uv("pip", "freeze", "--python", str(self.python))

    def pip_install(self, *requirements: str) -> None:
        self.uv(
            "pip", "install", "--python", str(self.python), "--no-deps",
            "--cache-dir", str(self.cache / "uv"), *requirements,
        )  # fmt: skip

    def args(self, command: str, *rest: str) -> list[str]:
        return [
            command, "--project", str(self.project), "--python", str(self.env),
            "--cache-dir", str(self.cache), *rest,
        ]  # fmt: skip

    def run(self, command: str, *rest: str) -> int:
        """Run an envspec command in this process (capture its output with capsys)."""
        return main(self.args(command, *rest))

    def spawn(self, command: str, *rest: str) -> subprocess.Popen[str]:
        """Run an envspec command as its own process, in its own process group."""
        return subprocess.Popen(
            [sys.executable, "-m", "envspec", *self.args(command, *rest)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_environ(),
            start_new_session=True,
        )

    def snapshot_ids(self) -> list[int]:
        folder = self.state / "snapshots"
        return sorted(int(p.stem) for p in folder.glob("*.json")) if folder.exists() else []


CROSSING = [
    {"name": "up", "requirements": ["alpha>=2"]},  # 1.0 → 2.0
    {"name": "down", "requirements": ["beta<2"]},  # 2.0 → 1.0
    {"name": "new", "requirements": ["gamma"]},  # installed
]


def crossing(
    root: Path, server: IndexServer, wheel: Callable[[str, str], dict[str, Any]]
) -> EnvProject:
    """An environment holding alpha 1.0 and beta 2.0, and a lock of `CROSSING`, which
    upgrades one, downgrades the other and adds gamma; `wheel(name, version)` gives each
    wheel's `build_wheel` options."""
    for name, version in (("alpha", "1.0"), ("alpha", "2.0"), ("beta", "1.0"), ("beta", "2.0"),
                          ("gamma", "1.0")):  # fmt: skip
        server.add_wheel(name, version, **wheel(name, version))
    project = EnvProject(root, server)
    project.make_env()
    project.pip_install(
        f"alpha @ {server.file_url('alpha-1.0-py3-none-any.whl')}",
        f"beta @ {server.file_url('beta-2.0-py3-none-any.whl')}",
    )
    project.write_spec(CROSSING)
    project.lock()
    return project


def corrupt(server: IndexServer, filename: str) -> None:
    """Make a served wheel unreadable as a zip while the index still lists it, with the hash
    of its new bytes and its old `.metadata`: it locks fine and then fails to install."""
    entry = server.entry(filename)
    data = b"PK\x03\x04" + b"this is not a zip archive" * 40
    entry.path.write_bytes(data)
    entry.sha256 = hashlib.sha256(data).hexdigest()
    entry.size = len(data)


def events(stdout: str) -> list[dict[str, Any]]:
    """The JSON events of a `--json` run."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def site_packages(env: Path) -> Path:
    """The environment's (only) site-packages folder."""
    found = sorted(env.glob("lib/python*/site-packages")) + sorted(env.glob("Lib/site-packages"))
    assert len(found) == 1, found
    return found[0]


def audit(env: Path) -> list[str]:
    """What is wrong with the environment's installed metadata: a `.dist-info` without
    METADATA or RECORD, two of one name, a temporary file left in one, a RECORD cut short, a
    file it lists not there, a file in it that its RECORD does not list (an uninstall, which
    goes by RECORD, leaves that file and so the folder behind)."""
    site = site_packages(env)
    problems, names = [], {}
    for info in sorted(site.glob("*.dist-info")):
        name = info.name.split("-", 1)[0].lower()
        if name in names:
            problems.append(f"{names[name]} and {info.name}: one name installed twice")
        names[name] = info.name
        for required in ("METADATA", "RECORD"):
            if not (info / required).is_file():
                problems.append(f"{info.name} has no {required}")
        problems += [f"{info.name}: {p.name} left" for p in info.glob("*.tmp*")]
        problems += [f"{info.name}: {p.name} left" for p in info.glob(".tmp*")]
        if (info / "RECORD").is_file():
            text = (info / "RECORD").read_text()
            rows = [row for row in csv.reader(text.splitlines()) if row]
            if not text.endswith("\n") or any(len(row) != 3 for row in rows):
                problems.append(f"{info.name}: its RECORD is cut short")
            for row in rows:
                if not (site / row[0]).exists():
                    problems.append(f"{info.name}: {row[0]} is missing")
            listed = {row[0] for row in rows}
            problems += [
                f"{info.name}: {f.name} is not in its RECORD"
                for f in sorted(info.iterdir())
                if f"{info.name}/{f.name}" not in listed and not f.name.startswith(".tmp")
            ]
    return problems


def plain_python(root: Path) -> Path:
    """A Python installation that is not a virtual environment (no `pyvenv.cfg`), with a
    site-packages folder of its own: a copy of the base interpreter's binary in `root/bin`
    whose prefix is `root`, the base's standard library linked in entry by entry. Safe to
    change, unlike the machine's own."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    lib = root / "lib" / stdlib.name
    (lib / "site-packages").mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name not in ("site-packages", "EXTERNALLY-MANAGED"):
            (lib / entry.name).symlink_to(entry)
    (root / "bin").mkdir()
    python = root / "bin" / stdlib.name
    shutil.copy2(os.path.realpath(getattr(sys, "_base_executable", sys.executable)), python)
    return python
