"""`make bench`: envspec sync vs uv and vs the seed's chain of `pip install`s, side by side, on
a real ML set from PyPI (bench/sync_pypi.toml: numpy<2, transformers, datasets, tensorboard,
evaluate, sentencepiece: 63 packages, ~140 MB of wheels on linux-x86_64; torch is left out so
the run fits a laptop's disk and a CI budget).

Measured on this machine's own target, side by side in one run, caches warm unless said
otherwise (envspec's artifact store and uv's cache, both under one `--cache-dir`):
1. fresh: `envspec sync` (three phases, three `uv pip install` of PEP 751 files naming the
   stored files) into a new environment vs one `uv pip install -r` of the same pins
   (`envspec export`) (aim: ≤ 1.0×);
2. no-op: `envspec sync` on a synced environment vs `uv pip sync` of the same pins on the same
   environment (aim: ≤ 0.5×);
3. three environments synced from one lock with an empty store and uv cache: the bytes
   envspec downloaded against the lock's total (aim: each file once), and whether uv fetched
   anything itself (its cache then holds no HTTP entry for a wheel);
4. uv's cache shared with a plain uv run: after those syncs, `uv pip install -r` of the same
   pins into a fourth environment with the same uv cache — what uv downloads again and how
   much its cache grows (reported, no aim: uv keys a download apart from a local file);
5. the seed's way: one `pip install` per phase, in order, each resolving on its own, pip's
   cache warm (aim: envspec ≥ 50× faster). `--skip-pip` leaves it out (it takes minutes).

Numbers are printed with the commands that produced them, never asserted.
"""

from __future__ import annotations

import json
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

    print("1. fresh sync into a new environment")
    new_venv(env)
    cold = run(envspec("sync", "--python", env, "--no-checks", *common))
    print(f"  {'envspec sync, cold store and uv cache':<44} {cold:6.3f}s")
    fresh_es = sample(
        "envspec sync (3 phases), warm cache",
        envspec("sync", "--python", env, "--no-checks", *common),
        REPEAT,
        lambda: new_venv(env),
    )
    uv_install = _uv("install", env, cache / "uv", "-r", pins)
    fresh_uv = sample(
        "uv pip install -r (one call), warm cache", uv_install, REPEAT, lambda: new_venv(env)
    )

    print("2. no-op on the synced environment")
    run(envspec("sync", "--python", env, "--no-checks", *common))
    noop_es = sample(
        "envspec sync (nothing to do)", envspec("sync", "--python", env, *common), NOOP_REPEAT
    )
    noop_uv = sample("uv pip sync (same pins)", _uv("sync", env, cache / "uv", pins), NOOP_REPEAT)

    print("ratios (medians)")
    _ratio("fresh: envspec / one uv pip install", fresh_es, fresh_uv, "aim ≤ 1.0")
    _ratio("no-op: envspec / uv pip sync", noop_es, noop_uv, "aim ≤ 0.5")
    _three_environments(work, project, target)
    if not skip_pip:
        pip_way = _pip_per_phase(work, project / "envspec.toml")
        print(
            f"  the seed's way / envspec fresh sync: "
            f"{pip_way / statistics.median(fresh_es):7.1f}× (aim ≥ 50)"
        )
    shutil.rmtree(work)


def _uv(command: str, env: Path, uv_cache: Path, *rest: str | Path) -> list[str]:
    python = env / "bin" / "python"
    argv = [UV, "pip", command, "--no-config", "-q", "--cache-dir", uv_cache, "--python", python]
    return [str(a) for a in (*argv, *rest)]


def _three_environments(work: Path, project: Path, target: str) -> None:
    """3. and 4.: downloads for three environments from one lock, then a plain uv run."""
    cache = work / "cache-three"
    lock = tomllib.loads((project / "locks" / f"pylock.{target}.toml").read_text())
    locked = sum(w.get("size", 0) for p in lock["packages"] for w in p.get("wheels", []))
    print("3. three environments synced from one lock, empty store and uv cache")
    downloaded = []
    for n in range(3):
        env = new_venv(work / f"env-{n}")
        cmd = envspec(
            "sync", "--python", env, "--no-checks", "--json", "--project", project,
            "--cache-dir", cache,
        )  # fmt: skip
        proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True)
        got = [json.loads(line) for line in proc.stdout.splitlines()]
        downloaded.append(sum(e["bytes"] for e in got if e["event"] == "download_finished"))
    uv_fetched = sum(1 for _ in (cache / "uv").rglob("*.http"))
    per = ", ".join(f"{b / 1e6:.1f} MB" for b in downloaded)
    print(f"  downloaded by envspec: {per}; the lock's files: {locked / 1e6:.1f} MB")
    print(f"  each file once: {sum(downloaded) == locked}; files uv fetched itself: {uv_fetched}")
    print("4. uv's cache shared with a plain uv run of the same pins (after 3.)")
    archives = cache / "uv" / "archive-v0"
    before, size = len(list(archives.iterdir())), _du(cache / "uv")
    env = new_venv(work / "env-plain-uv")
    took = run(_uv("install", env, cache / "uv", "-r", work / "requirements.txt"))
    after, grown = len(list(archives.iterdir())), _du(cache / "uv") - size
    print(
        f"  uv pip install -r: {took:.2f}s, uv's unpacked wheels {before} → {after}, its cache "
        f"grew {grown / 1e6:.1f} MB"
    )


def _du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


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
