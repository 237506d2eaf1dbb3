"""`make demo`: the main job on a small real spec, in a temporary project.

Writes an envspec.toml with three phases (numpy<2; requests; rich) and checks, locks it
against PyPI for windows-x86_64, linux-x86_64 and macos-arm64, shows what each lock pins and
where each package came from, then locks again to show that unchanged inputs cost nothing.
Then the environment side: sync creates the project's .venv and installs the lock phase by
phase, a second sync has nothing to do, check runs the pre-flight, a change to the spec
(rich held below 13) is synced (sync relocks the stale lock first), history lists the
snapshots, rollback puts the environment back exactly as it was before the change, and with
the spec and locks reverted
too (as `git checkout` would) the checks pass again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

SPEC = """\
[environment]
name = "demo"
python = "3.11"
targets = ["windows-x86_64", "linux-x86_64", "macos-arm64"]

[indexes]
pypi = "https://pypi.org/simple"

[[phases]]
name = "numpy"
requirements = ["numpy<2"]

[[phases]]
name = "web"
requirements = ["requests>=2.31", "colorama; sys_platform == 'win32'"]

[[phases]]
name = "cli"
requirements = ["rich"]

[checks]
imports = ["numpy", "requests", "rich.console:Console"]
versions = { numpy = "<2" }
"""
# Whatever environment the demo is started from must never be the one it changes.
ENV = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}


def envspec(*args: str) -> float:
    print(f"\n$ envspec {' '.join(args)}", flush=True)
    start = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", "envspec", *args], env=ENV)
    if code != 0:
        sys.exit(code)
    return time.perf_counter() - start


def show_locks(project: Path) -> None:
    for path in sorted((project / "locks").glob("pylock.*.toml")):
        lock = tomllib.loads(path.read_text())
        print(f"\n{path.name}  [{lock['environments'][0]}]")
        for pkg in lock["packages"]:
            meta = pkg["tool"]["envspec"]
            wheel = pkg.get("wheels", [{}])[0].get("name", "sdist")
            print(f"  {meta['phase']:6} {pkg['name']:20} {pkg['version']:12} {wheel}")


def main() -> None:
    started = time.perf_counter()
    project = Path(tempfile.mkdtemp(prefix="envspec-demo-"))
    spec = project / "envspec.toml"
    spec.write_text(SPEC)
    print(f"project: {project}\n--- envspec.toml ---\n{SPEC}")
    at = ("--project", str(project))
    took = envspec("lock", *at)
    print(f"(locked 3 targets in {took:.1f}s)")
    show_locks(project)
    took = envspec("lock", *at)
    print(f"(unchanged inputs: {took:.2f}s, no network)")
    envspec("lock", "--check", *at)

    print("\n=== the environment: sync, check, change, sync, rollback ===")
    took = envspec("sync", *at)
    print(f"(created {project / '.venv'} and synced it in {took:.1f}s)")
    took = envspec("sync", *at)
    print(f"(nothing to do: {took:.2f}s, no uv started)")
    envspec("check", *at)
    kept = {p: p.read_bytes() for p in (project / "locks").glob("*.toml")}  # as git would
    spec.write_text(SPEC.replace('requirements = ["rich"]', 'requirements = ["rich<13"]'))
    print('\n--- change: phase "cli" now asks for rich<13 (sync relocks first, as uv sync) ---')
    envspec("sync", "--dry-run", *at)
    envspec("sync", *at)
    envspec("history", *at)
    envspec("rollback", *at)
    print("\n--- revert the change (git checkout envspec.toml locks/): all in step again ---")
    spec.write_text(SPEC)
    for path, data in kept.items():
        path.write_bytes(data)
    envspec("lock", "--check", *at)
    envspec("check", *at)
    print(f"\n(demo done in {time.perf_counter() - started:.1f}s; project left in {project})")


if __name__ == "__main__":
    main()
