"""`make bench`: `envspec lock` vs `uv pip compile --python-platform`, the same work on both
sides, on the seed stack from PyPI (bench/seed_pypi.toml) for windows-x86_64, linux-x86_64
and macos-arm64.

envspec locks the three targets in one run; uv runs once per target and its three times are
summed. uv writes every file's hash (`--generate-hashes`), as envspec's locks record them.
Every case starts from fresh output on both sides (no `locks/`, no `-o` file), except
"existing pins", where both sides start from their previous output for the unchanged inputs
and one requirement is added (envspec keeps its lock's pins, uv its `-o` file's). The two tools
alternate in pairs (envspec first, then uv first, ...) so a load change on this shared
machine hits both alike, and each case reports the median of its runs.

Cases:
- cold: both caches emptied before every run;
- online-warm: caches warm, the network still asked (pages revalidated or refetched);
- offline: caches warm, `--offline` on both sides: the CPU floor;
- existing-pins: online, caches warm, previous output kept, one requirement added.

Printed per case: wall seconds and CPU seconds (user + system, children included) of each
side, the ratios envspec/uv of wall and of CPU time, the aim from issue 14 (for the wall
ratio), and peak memory (RSS) of each tool. Then the unchanged-inputs relock time, whether
two fresh locks are byte-identical, and how many pins agree with uv's per target. Numbers
are printed, never asserted.

envspec runs as installed: its modules and its dependencies' are compiled to bytecode first
(an install does that; with PYTHONDONTWRITEBYTECODE set, as on this machine, every run would
otherwise compile envspec's sources again, ~0.3 s that no user pays).

`BENCH_REPEAT` (default 3) sets the runs per warm case, `BENCH_OFFLINE_REPEAT` (default 9)
the offline case's, whose pairs take a second and whose ratio moved by a tenth between runs of
three pairs, and `BENCH_COLD_REPEAT` (default 2) the cold ones. `BENCH_INSTRUCTIONS=1` adds
the offline case counted in instructions by valgrind's callgrind (every thread and child
process): one count per side, the same whatever else this
shared machine is doing, where its wall times vary by half from hour to hour. Instructions
are not seconds (Python's run fewer per cycle than uv's), so the count says which way a
change moves envspec's work, and the ratio how far apart the two tools' work is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from uv import find_uv_bin

HERE = Path(__file__).parent
SPEC = HERE / "seed_pypi.toml"
UV = find_uv_bin()
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
ADDED = "einops"  # the requirement the "existing pins" case adds (phase training)
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
ENV["PIP_CONFIG_FILE"] = os.devnull
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
OFFLINE_REPEAT = int(os.environ.get("BENCH_OFFLINE_REPEAT", "9"))
COLD_REPEAT = int(os.environ.get("BENCH_COLD_REPEAT", "2"))
AIMS = {"cold": 0.7, "online-warm": 0.3, "offline": 1.0, "existing-pins": 0.5}


@dataclass(frozen=True, kw_only=True, slots=True)
class Run:
    wall: float
    cpu: float
    peak_mib: float


# uv's `aarch64-apple-darwin` means macOS 13.0 unless MACOSX_DEPLOYMENT_TARGET says otherwise;
# envspec's macos-arm64 target defaults to macOS 14.0 (bench/seed_pypi.toml sets none)
UV_MACOS = {"MACOSX_DEPLOYMENT_TARGET": "14.0"}


def timed(
    cmd: Sequence[str | Path], env: Mapping[str, str] | None = None
) -> tuple[Run, str]:
    """Run `cmd` (exit on failure; `env` added to ENV): wall and CPU time, peak RSS, and its
    stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        environ = {**ENV, **(env or {})}
        proc = subprocess.Popen(list(map(str, cmd)), stdout=out, stderr=err, env=environ)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{stderr[-3000:]}")
    run = Run(wall=wall, cpu=usage.ru_utime + usage.ru_stime, peak_mib=usage.ru_maxrss / 1024)
    return run, stdout


class Bench:
    """The two tools' working folders and caches, and one run of each."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.project = work / "project"
        self.project.mkdir()
        shutil.copy(SPEC, self.project / "envspec.toml")
        self.uv_cache, self.es_cache = work / "uv-cache", work / "es-cache"
        self.uv_out = work / "uv-out"
        self.uv_out.mkdir()
        self.requirements = work / "requirements.in"
        self.set_inputs(added=False)

    def set_inputs(self, *, added: bool) -> None:
        """The base inputs, or the base plus `ADDED`, on both sides."""
        self.requirements.write_text("\n".join([*REQUIREMENTS, *[ADDED] * added]) + "\n")
        spec = SPEC.read_text()
        if added:
            spec = spec.replace('"tensorboard"]', f'"tensorboard", "{ADDED}"]')
            assert ADDED in spec
        (self.project / "envspec.toml").write_text(spec)

    def clear_output(self) -> None:
        shutil.rmtree(self.project / "locks", ignore_errors=True)
        for path in self.uv_out.glob("*.txt"):
            path.unlink()

    def envspec_cmd(self, *extra: str) -> list[str | Path]:
        return [sys.executable, "-m", "envspec", "lock", "--project", self.project,
                "--cache-dir", self.es_cache, *extra]

    def uv_cmds(self, *extra: str) -> list[tuple[list[str | Path], Mapping[str, str] | None]]:
        """Per target: `uv pip compile`'s command line and the environment it adds."""
        return [
            ([UV, "pip", "compile", "--no-config", "--quiet", self.requirements,
              "--python-version", "3.11", "--python-platform", platform,
              "--cache-dir", self.uv_cache, "--index-url", "https://pypi.org/simple",
              "--generate-hashes", "-o", self.uv_out / f"{target}.txt", *extra],
             UV_MACOS if target.startswith("macos-") else None)
            for target, platform in UV_PLATFORMS.items()
        ]

    def envspec(self, *extra: str) -> tuple[Run, list[dict[str, object]]]:
        run, stdout = timed(self.envspec_cmd("--json", *extra))
        return run, [json.loads(line) for line in stdout.splitlines() if line.strip()]

    def uv(self, *extra: str) -> Run:
        """`uv pip compile` once per target; the runs summed (peak: the largest)."""
        runs = [timed(cmd, env)[0] for cmd, env in self.uv_cmds(*extra)]
        return Run(
            wall=sum(r.wall for r in runs),
            cpu=sum(r.cpu for r in runs),
            peak_mib=max(r.peak_mib for r in runs),
        )


def alternate(
    count: int, envspec: Callable[[], Run], uv: Callable[[], Run]
) -> tuple[list[Run], list[Run]]:
    """`count` pairs, envspec first in even pairs and uv first in odd ones."""
    es_runs, uv_runs = [], []
    for i in range(count):
        if i % 2 == 0:
            es_runs.append(envspec())
            uv_runs.append(uv())
        else:
            uv_runs.append(uv())
            es_runs.append(envspec())
    return es_runs, uv_runs


def median(runs: Sequence[Run], field: str) -> float:
    return statistics.median(getattr(r, field) for r in runs)


def case_cold(bench: Bench) -> tuple[list[Run], list[Run]]:
    def envspec() -> Run:
        shutil.rmtree(bench.es_cache, ignore_errors=True)
        bench.clear_output()
        return bench.envspec()[0]

    def uv() -> Run:
        shutil.rmtree(bench.uv_cache, ignore_errors=True)
        bench.clear_output()
        return bench.uv()

    return alternate(COLD_REPEAT, envspec, uv)


def case_fresh(bench: Bench, *, offline: bool) -> tuple[list[Run], list[Run]]:
    extra = ("--offline",) if offline else ()

    def envspec() -> Run:
        bench.clear_output()
        return bench.envspec(*extra)[0]

    def uv() -> Run:
        bench.clear_output()
        return bench.uv(*extra)

    return alternate(OFFLINE_REPEAT if offline else REPEAT, envspec, uv)


def case_existing_pins(bench: Bench) -> tuple[list[Run], list[Run]]:
    """Both sides' output for the base inputs is saved, then restored before each run of the
    inputs with `ADDED`."""
    bench.set_inputs(added=False)
    bench.clear_output()
    bench.envspec()
    bench.uv()
    saved = bench.work / "saved"
    shutil.copytree(bench.project / "locks", saved / "locks")
    shutil.copytree(bench.uv_out, saved / "uv-out")
    bench.set_inputs(added=True)

    def restore() -> None:
        bench.clear_output()
        shutil.copytree(saved / "locks", bench.project / "locks")
        for path in (saved / "uv-out").glob("*.txt"):
            shutil.copy(path, bench.uv_out / path.name)

    def envspec() -> Run:
        restore()
        return bench.envspec()[0]

    def uv() -> Run:
        restore()
        return bench.uv()

    try:
        return alternate(REPEAT, envspec, uv)
    finally:
        bench.set_inputs(added=False)


def instructions(cmd: Sequence[str | Path], env: Mapping[str, str] | None = None) -> int:
    """The instructions `cmd` executes, its threads and child processes included
    (callgrind; exit on failure). A forked copy of a Python process (envspec's offline
    targets side by side) starts with its parent's counts: they are zeroed when the copy
    begins (`PyOS_AfterFork_Child`), so it counts only its own."""
    with tempfile.TemporaryDirectory() as tmp:
        counted = ["valgrind", "--tool=callgrind", "--trace-children=yes",
                   "--zero-before=PyOS_AfterFork_Child",
                   f"--callgrind-out-file={tmp}/callgrind.%p", *map(str, cmd)]
        proc = subprocess.run(counted, env={**ENV, **(env or {})}, capture_output=True,
                              text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{proc.stderr[-3000:]}")
    return sum(int(n.replace(",", "")) for n in re.findall(r"Collected : ([\d,]+)", proc.stderr))


def case_instructions(bench: Bench) -> None:
    """The offline case once per side under callgrind (`BENCH_INSTRUCTIONS=1`)."""
    bench.clear_output()
    ours = instructions(bench.envspec_cmd("--offline", "-q"))
    theirs = 0
    for cmd, env in bench.uv_cmds("--offline"):
        bench.clear_output()
        theirs += instructions(cmd, env)
    print(f"offline, in instructions (callgrind): envspec {ours / 1e9:.3f} billion, "
          f"uv {theirs / 1e9:.3f} billion (sum of 3), ratio {ours / theirs:.2f}")


def uv_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


def lock_pins(path: Path) -> dict[str, str]:
    import tomllib

    data = tomllib.loads(path.read_text())
    return {p["name"]: p["version"] for p in data["packages"]}


def report_agreement(bench: Bench) -> None:
    bench.clear_output()
    _, events = bench.envspec()
    bench.uv()
    locks = bench.project / "locks"
    first = {p.name: p.read_bytes() for p in locks.glob("*.toml")}
    theirs_by_target = {t: uv_pins(bench.uv_out / f"{t}.txt") for t in UV_PLATFORMS}
    shutil.rmtree(locks)
    bench.envspec()
    second = {p.name: p.read_bytes() for p in locks.glob("*.toml")}
    print(f"deterministic: two fresh locks byte-identical: {first == second}")
    for event in events:
        if event.get("event") == "stats":
            stats = {k: v for k, v in event.items() if k != "event"}
            print(f"envspec fetch stats (online-warm): {json.dumps(stats, sort_keys=True)}")
    for target, theirs in theirs_by_target.items():
        mine = lock_pins(locks / f"pylock.{target}.toml")
        same = sum(1 for n, v in theirs.items() if mine.get(n) == v)
        print(f"{target}: envspec {len(mine)} packages, uv {len(theirs)} pins, "
              f"{same} pins equal")


def compile_envspec() -> None:
    """Bytecode for envspec and its dependencies, as an install writes it."""
    import compileall
    import sysconfig

    import envspec

    for folder in {Path(envspec.__file__).parent, Path(sysconfig.get_paths()["purelib"])}:
        compileall.compile_dir(folder, quiet=1, workers=2)


def main() -> None:
    compile_envspec()
    work = Path(tempfile.mkdtemp(prefix="envspec-bench-lock-"))
    bench = Bench(work)
    print(f"seed stack from PyPI, 3 targets; envspec: one run; uv: sum of 3 runs; "
          f"{REPEAT} pairs per warm case ({OFFLINE_REPEAT} offline), {COLD_REPEAT} cold; medians; "
          f"work folder {work}")
    results = {"cold": case_cold(bench)}
    results["online-warm"] = case_fresh(bench, offline=False)
    results["offline"] = case_fresh(bench, offline=True)
    results["existing-pins"] = case_existing_pins(bench)
    print(f"{'case':14} {'envspec wall':>12} {'cpu':>7} {'uv wall':>9} {'cpu':>7} "
          f"{'ratio':>6} {'aim':>6} {'cpu ratio':>9}  peak MiB envspec/uv")
    for case, (es_runs, uv_runs) in results.items():
        es_wall, uv_wall = median(es_runs, "wall"), median(uv_runs, "wall")
        es_cpu, uv_cpu = median(es_runs, "cpu"), median(uv_runs, "cpu")
        print(
            f"{case:14} {es_wall:11.2f}s {es_cpu:6.2f}s "
            f"{uv_wall:8.2f}s {uv_cpu:6.2f}s {es_wall / uv_wall:6.2f} "
            f"{'≤' + format(AIMS[case], '.1f'):>6} {es_cpu / uv_cpu:9.2f}  "
            f"{max(r.peak_mib for r in es_runs):.0f}/{max(r.peak_mib for r in uv_runs):.0f}"
        )
    bench.clear_output()
    bench.envspec()
    relocks = [bench.envspec()[0].wall for _ in range(5)]
    print(f"unchanged-inputs relock: {statistics.median(relocks):.3f}s (median of 5; aim ≤ 0.2s)")
    report_agreement(bench)
    if os.environ.get("BENCH_INSTRUCTIONS"):
        case_instructions(bench)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
