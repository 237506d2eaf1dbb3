"""`make bench`: `envspec bundle` and fleet syncs from a bundle, on the bench set
(bench/sync_pypi.toml from the real PyPI, this machine's target).

1. bundle creation: cold (an empty artifact store: every file from PyPI), warm (the store
   full: copies only, into a new folder), and again into the same folder (nothing to add:
   every file's sha256 checked); the bundle's size and file count;
2. a fleet from a loopback bundle (`python -m http.server` on 127.0.0.1): 4 new
   environments, each with an empty store and uv cache of its own (4 machines), synced with
   `envspec sync --bundle URL` at once, against the same 4 one after the other;
3. the bytes each sync fetched (its `download_finished` events) against the lock's files,
   and the server's count of file requests (each file once per machine).

Numbers are printed with the commands that produced them, never asserted.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

from bench_sync import ENV, SPEC, _host_target, envspec, new_venv

FLEET = 4


def run(cmd: Sequence[str | Path]) -> tuple[float, str]:
    """Run `cmd`, exit on failure; its wall time and stdout."""
    start = time.perf_counter()
    argv = [str(c) for c in cmd]
    proc = subprocess.run(argv, env=ENV, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def du(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="envspec-bench-bundle-"))
    target, project = _host_target(), work / "project"
    project.mkdir()
    shutil.copy(SPEC, project / "envspec.toml")
    common = ("--project", project, "--cache-dir", work / "cache")
    run(envspec("lock", "--target", target, *common))
    lock = tomllib.loads((project / "locks" / f"pylock.{target}.toml").read_text())
    files = [f for p in lock["packages"] for f in [*p.get("wheels", []), p.get("sdist")] if f]
    locked = sum(f.get("size", 0) for f in files)
    print(f"set: {SPEC.name}, {len(lock['packages'])} packages on {target}; work folder {work}")

    print("1. envspec bundle DIR --target T")
    bundle = work / "bundle"
    cold, _ = run(envspec("bundle", bundle, "--target", target, *common))
    warm, _ = run(envspec("bundle", work / "bundle-2", "--target", target, *common))
    again, _ = run(envspec("bundle", bundle, "--target", target, *common))
    check, _ = run(envspec("bundle", bundle, "--check"))
    count, size = du(bundle)
    print(f"  cold (empty store, from PyPI)            {cold:7.2f}s")
    print(f"  warm (store full, new folder)            {warm:7.2f}s")
    print(f"  again into the same folder (no change)   {again:7.2f}s")
    print(f"  --check                                  {check:7.2f}s")
    print(f"  bundle: {count} files, {size / 1e6:.1f} MB (the lock's files: {locked / 1e6:.1f} MB)")

    port = _free_port()
    log = work / "server.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
             "--directory", bundle],
            stdout=subprocess.DEVNULL, stderr=sink, env=ENV,
        )  # fmt: skip
        try:
            _wait_for(port)
            url = f"http://127.0.0.1:{port}/"
            print(f"2. {FLEET} machines: envspec sync --bundle {url} (own store and uv cache each)")
            together = _fleet(work / "together", project, url, concurrent=True)
            apart = _fleet(work / "apart", project, url, concurrent=False)
        finally:
            server.terminate()
            server.wait()
    print(f"  {FLEET} at once                                {together[0]:7.2f}s wall")
    print(f"  {FLEET} one after the other                    {apart[0]:7.2f}s wall")
    print(f"  ratio at once / one after the other       {together[0] / apart[0]:7.2f}×")
    print("3. bytes each sync fetched (download_finished), against the lock's files")
    for label, (_, fetched) in (("at once", together), ("one after the other", apart)):
        per = ", ".join(f"{b / 1e6:.1f} MB" for b in fetched)
        print(f"  {label:<22} {per}; each = the lock's files: {set(fetched) == {locked}}")
    requests = [ln for ln in log.read_text().splitlines() if '"GET /files/' in ln]
    print(f"  server: {len(requests)} file requests for {2 * FLEET} syncs of {len(files)} files")
    shutil.rmtree(work)


def _fleet(
    root: Path, project: Path, url: str, *, concurrent: bool
) -> tuple[float, list[int]]:
    """Sync FLEET new environments from the bundle; the wall time and bytes each fetched."""
    envs = [new_venv(root / f"machine-{n}" / "env") for n in range(FLEET)]

    def command(env: Path) -> list[str]:
        cache = env.parent / "cache"
        return [str(c) for c in envspec(
            "sync", "--json", "--no-checks", "--project", project, "--python", env,
            "--cache-dir", cache, "--bundle", url,
        )]  # fmt: skip

    start = time.perf_counter()
    outputs: list[str] = []
    if concurrent:
        procs = [
            subprocess.Popen(command(e), env=ENV, stdout=subprocess.PIPE, text=True) for e in envs
        ]
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                sys.exit("a concurrent sync failed")
            outputs.append(out)
    else:
        outputs = [run(command(e))[1] for e in envs]
    elapsed = time.perf_counter() - start
    fetched = [
        sum(e["bytes"] for e in map(json.loads, out.splitlines())
            if e["event"] == "download_finished")
        for out in outputs
    ]  # fmt: skip
    return elapsed, fetched


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int) -> None:
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("the static server did not start")


if __name__ == "__main__":
    main()
