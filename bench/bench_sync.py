"""`make bench`: envspec sync vs uv and vs the seed's chain of `pip install`s, side by side, on
a real ML set from PyPI (bench/sync_pypi.toml: numpy<2, transformers, datasets, tensorboard,
evaluate, sentencepiece: 63 packages, ~140 MB of wheels on linux-x86_64; torch is left out so
the run fits a laptop's disk and a CI budget).

Measured on this machine's own target, caches warm unless said otherwise:
1. no-op: `envspec sync` on a synced environment vs `uv pip sync` of the same pins
   (`envspec export`) on the same environment (aim: ≤ 2×);
2. fresh: `envspec sync` (three phases, three `uv pip install --no-deps`) into a new
   environment vs one `uv pip install -r` of the same pins (aim: ≤ 1.2×);
3. the seed's way: one `pip install` per phase, in order, each resolving on its own, pip's
   cache warm (aim: envspec ≥ 50× faster). `--skip-pip` leaves it out (it takes minutes).

Numbers are printed with the commands that produced them, never asserted.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

from uv import find_uv_bin

HERE = Path(__file__).parent
SPEC = HERE / "sync_pypi.toml"
UV = find_uv_bin()
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
ENV["PIP_CONFIG_FILE"] = os.devnull
ENV.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode cached, as on a user's machine
REPEAT = 3
NOOP_REPEAT = 7


def run(cmd: Sequence[str]) -> float:
    """Run `cmd`, exit on failure; its wall time."""
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), env=ENV, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{proc.stderr[-3000:]}")
    return elapsed


def envspec(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "envspec", *map(str, args)]


def new_venv(path: Path, *, seed: bool = False) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    run(
        [
            UV,
            "venv",
            "-q",
            "--no-config",
            "--python",
            "3.11",
            *(["--seed"] if seed else []),
            str(path),
        ]
    )
    return path


def sample(label: str, cmd: Sequence[str], repeat: int, prepare: object = None) -> list[float]:
    """`repeat` timed runs of `cmd` after one untimed warm-up; `prepare` runs before each."""
    times = []
    for _ in range(repeat + 1):
        if callable(prepare):
            prepare()
        times.append(run(cmd))
    times = times[1:]
    print(f"  {label:<44} min {min(times):6.3f}s  median {statistics.median(times):6.3f}s")
    return times


def main() -> None:
    skip_pip = "--skip-pip" in sys.argv
    work = Path(tempfile.mkdtemp(prefix="envspec-bench-sync-"))
    project, cache = work / "project", work / "cache"
    project.mkdir()
    shutil.copy(SPEC, project / "envspec.toml")
    target = _host_target()
    common = ("--project", project, "--cache-dir", cache)
    run(envspec("lock", "--target", target, *common))
    pins = work / "requirements.txt"
    run(envspec("export", "--target", target, "-o", pins, *common))
    count = sum(1 for ln in pins.read_text().splitlines() if "==" in ln and not ln.startswith("#"))
    env = work / "env"
    print(f"set: {SPEC.name}, {count} packages on {target}; work folder {work}")

    print("fresh sync into a new environment")
    new_venv(env)
    cold = run(envspec("sync", "--python", env, "--no-checks", *common))
    print(f"  {'envspec sync, cold uv cache':<44} {cold:6.3f}s")
    fresh_es = sample(
        "envspec sync (3 phases), warm cache",
        envspec("sync", "--python", env, "--no-checks", *common),
        REPEAT,
        lambda: new_venv(env),
    )
    uv_install = [
        UV,
        "pip",
        "install",
        "--no-config",
        "-q",
        "--cache-dir",
        cache / "uv",
        "--python",
        env / "bin" / "python",
        "-r",
        pins,
    ]
    fresh_uv = sample(
        "uv pip install -r (one call), warm cache",
        [str(c) for c in uv_install],
        REPEAT,
        lambda: new_venv(env),
    )

    print("no-op on the synced environment")
    noop_es = sample(
        "envspec sync (nothing to do)", envspec("sync", "--python", env, *common), NOOP_REPEAT
    )
    uv_sync = [
        UV,
        "pip",
        "sync",
        "--no-config",
        "-q",
        "--cache-dir",
        cache / "uv",
        "--python",
        env / "bin" / "python",
        pins,
    ]
    noop_uv = sample("uv pip sync (same pins)", [str(c) for c in uv_sync], NOOP_REPEAT)

    print("ratios (medians)")
    _ratio("no-op: envspec / uv pip sync", noop_es, noop_uv, "aim ≤ 2")
    _ratio("fresh: envspec / one uv pip install", fresh_es, fresh_uv, "aim ≤ 1.2")
    if not skip_pip:
        pip_way = _pip_per_phase(work, project / "envspec.toml")
        print(
            f"  the seed's way / envspec fresh sync: "
            f"{pip_way / statistics.median(fresh_es):7.1f}× (aim ≥ 50)"
        )
    shutil.rmtree(work)


def _ratio(label: str, ours: list[float], theirs: list[float], aim: str) -> None:
    value = statistics.median(ours) / statistics.median(theirs)
    print(f"  {label:<44} {value:6.2f}× ({aim})")


def _pip_per_phase(work: Path, spec: Path) -> float:
    """One `pip install` per phase in order, as the seed did; warm pip cache; wall time."""
    phases = tomllib.loads(spec.read_text())["phases"]
    pip_cache = work / "pip-cache"

    def chain() -> list[list[str]]:
        python = str(work / "pip-env" / "bin" / "python")
        return [
            [
                python,
                "-m",
                "pip",
                "install",
                "--isolated",
                "--disable-pip-version-check",
                "-q",
                "--cache-dir",
                str(pip_cache),
                *p["requirements"],
            ]
            for p in phases
        ]

    print("the seed's way: one pip install per phase")
    for label in ("cold pip cache", "warm pip cache"):
        new_venv(work / "pip-env", seed=True)
        took = sum(run(cmd) for cmd in chain())
        print(f"  {len(phases)} x pip install, {label:<29} {took:6.3f}s")
    return took


def _host_target() -> str:
    sys.path.insert(0, str(HERE.parent / "src"))
    from envspec.targets import host_target

    return host_target() or "linux-x86_64"


if __name__ == "__main__":
    main()
