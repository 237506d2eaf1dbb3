"""`make bench`: envspec lock vs `uv pip compile --python-platform`, side by side, on the seed
stack from PyPI for windows-x86_64, linux-x86_64 and macos-arm64, cold and warm caches.

Prints times, ratios, what envspec fetched per target, the unchanged-inputs relock time and
peak memory. Numbers are printed, never asserted: budgets are read by people.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from uv import find_uv_bin

HERE = Path(__file__).parent
SPEC = HERE / "seed_pypi.toml"
UV_PLATFORMS = {
    "windows-x86_64": "x86_64-pc-windows-msvc",
    "linux-x86_64": "x86_64-manylinux_2_28",
    "macos-arm64": "aarch64-apple-darwin",
}
REQUIREMENTS = [
    "numpy<2", "torch", "torchvision", "torchaudio", "xformers",
    "transformers>=4.40", "huggingface_hub", "bitsandbytes",
    "triton-windows; sys_platform == 'win32'", "unsloth[colab-new]",
    "trl", "peft", "accelerate", "datasets", "tensorboard",
]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
ENV["PIP_CONFIG_FILE"] = os.devnull


PEAK_MIB: dict[str, float] = {}


def timed(cmd: list[str], label: str = "") -> tuple[float, str]:
    """Run `cmd`; its wall time and stdout. Peak RSS per label comes from wait4's rusage."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{stderr[-3000:]}")
    if label:
        PEAK_MIB[label] = max(PEAK_MIB.get(label, 0.0), usage.ru_maxrss / 1024)
    return elapsed, stdout


def uv_compile(work: Path, target: str, cache: Path) -> float:
    req = work / "requirements.in"
    req.write_text("\n".join(REQUIREMENTS) + "\n")
    cmd = [
        find_uv_bin(), "pip", "compile", "--no-config", "--quiet", str(req),
        "--python-version", "3.11", "--python-platform", UV_PLATFORMS[target],
        "--cache-dir", str(cache), "--index-url", "https://pypi.org/simple",
        "-o", str(work / f"uv.{target}.txt"),
    ]
    return timed(cmd, 'uv')[0]


def envspec_lock(project: Path, cache: Path, *extra: str) -> tuple[float, list[dict[str, object]]]:
    cmd = [sys.executable, "-m", "envspec", "lock", "--project", str(project),
           "--cache-dir", str(cache), "--json", *extra]
    elapsed, stdout = timed(cmd, "envspec")
    return elapsed, [json.loads(line) for line in stdout.splitlines() if line.strip()]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="envspec-bench-"))
    project = work / "project"
    project.mkdir()
    shutil.copy(SPEC, project / "envspec.toml")
    uv_cache, es_cache = work / "uv-cache", work / "es-cache"
    rows = []
    for phase in ("cold", "warm"):
        uv_times = {t: uv_compile(work, t, uv_cache) for t in UV_PLATFORMS}
        shutil.rmtree(project / "locks", ignore_errors=True)
        es_time, events = envspec_lock(project, es_cache)
        rows.append((phase, uv_times, es_time, events))
    relock, _ = envspec_lock(project, es_cache)
    print(f"{'':6} {'uv (sum of 3 targets)':>22} {'envspec (3 targets)':>20} {'ratio':>7}")
    for phase, uv_times, es_time, _ in rows:
        uv_sum = sum(uv_times.values())
        per = ", ".join(f"{t} {s:.1f}s" for t, s in uv_times.items())
        print(f"{phase:6} {uv_sum:21.2f}s {es_time:19.2f}s {es_time / uv_sum:7.2f}   (uv: {per})")
    print(f"unchanged-inputs relock: {relock:.3f}s")
    print(f"peak memory: envspec {PEAK_MIB['envspec']:.0f} MiB, uv {PEAK_MIB['uv']:.0f} MiB")
    for phase, _, _, events in rows:
        for e in events:
            if e.get("event") == "stats":
                print(f"{phase} envspec fetch stats: {json.dumps(e, sort_keys=True)}")
    for target in UV_PLATFORMS:
        lock = (project / "locks" / f"pylock.{target}.toml").read_text()
        uv_pins = (work / f"uv.{target}.txt").read_text()
        print(f"{target}: envspec {lock.count('[[packages]]')} packages, "
              f"uv {sum(1 for line in uv_pins.splitlines() if '==' in line)} pins")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
