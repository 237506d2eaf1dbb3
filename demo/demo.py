"""`make demo`: the main job on a small real spec, in a temporary project.

Writes an envspec.toml with three phases (numpy<2; requests; rich), locks it against PyPI for
windows-x86_64, linux-x86_64 and macos-arm64, shows what each lock pins and where each package
came from, then locks again to show that unchanged inputs cost nothing.
"""

from __future__ import annotations

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
"""


def envspec(*args: str) -> float:
    print(f"\n$ envspec {' '.join(args)}", flush=True)
    start = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", "envspec", *args])
    if code != 0:
        sys.exit(code)
    return time.perf_counter() - start


def main() -> None:
    project = Path(tempfile.mkdtemp(prefix="envspec-demo-"))
    (project / "envspec.toml").write_text(SPEC)
    print(f"project: {project}\n--- envspec.toml ---\n{SPEC}")
    took = envspec("lock", "--project", str(project))
    print(f"(locked 3 targets in {took:.1f}s)")
    for path in sorted((project / "locks").glob("pylock.*.toml")):
        lock = tomllib.loads(path.read_text())
        print(f"\n{path.name}  [{lock['environments'][0]}]")
        for pkg in lock["packages"]:
            meta = pkg["tool"]["envspec"]
            wheel = pkg.get("wheels", [{}])[0].get("name", "sdist")
            print(f"  {meta['phase']:6} {pkg['name']:20} {pkg['version']:12} {wheel}")
    took = envspec("lock", "--project", str(project))
    print(f"(unchanged inputs: {took:.2f}s, no network)")
    envspec("lock", "--check", "--project", str(project))


if __name__ == "__main__":
    main()
