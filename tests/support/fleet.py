"""The fleet run, executed inside a network namespace that has only loopback (see
`run_in_netns`): a plain `python -m http.server` on 127.0.0.1 serves a bundle folder, N
`envspec sync --bundle http://127.0.0.1:PORT/` run at once into N environments (each with a
cache of its own, as N machines), then one `envspec sync --bundle FOLDER --offline`. Prints
one JSON object: each run's exit code, events and stderr, the server's log, and what a DNS
lookup of pypi.org gave (proof that nothing else could be reached).

`python fleet.py SPEC.json`; SPEC holds `bundle`, `project`, `envs` (N+1 environment folders),
`caches` (N+1 cache folders) and `port`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _wait_for(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the static server did not start on port {port}")


def _sync(project: str, env: str, cache: str, bundle: str, *rest: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "envspec", "sync", "--json", "--project", project,
            "--python", env, "--cache-dir", cache, "--bundle", bundle, *rest]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=600)
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {"code": proc.returncode, "events": events, "stderr": err}


def _dns() -> str:
    try:
        socket.getaddrinfo("pypi.org", 443)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "resolved"


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    port, bundle = spec["port"], spec["bundle"]
    log = Path(spec["log"])
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
             "--directory", bundle],
            stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
        try:
            _wait_for(port)
            url = f"http://127.0.0.1:{port}/"
            *envs, last_env = spec["envs"]
            *caches, last_cache = spec["caches"]
            start = time.perf_counter()
            procs = [_sync(spec["project"], e, c, url) for e, c in zip(envs, caches, strict=True)]
            concurrent = [_result(p) for p in procs]
            seconds = time.perf_counter() - start
            offline = _result(_sync(spec["project"], last_env, last_cache, bundle, "--offline"))
        finally:
            server.terminate()
            server.wait(timeout=30)
    report = {
        "concurrent": concurrent,
        "concurrent_seconds": seconds,
        "offline": offline,
        "log": log.read_text(),
        "dns": _dns(),
        "interfaces": sorted(name for _, name in socket.if_nameindex()),
    }
    print(json.dumps(report))


def run_in_netns(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """Run `main` in a new network namespace with only loopback up (needs root and
    util-linux's `unshare`); its report."""
    path = work / "fleet.json"
    path.write_text(json.dumps(spec))
    script = "ip link set lo up && exec \"$0\" \"$@\""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "ENVSPEC_"))}
    env.pop("VIRTUAL_ENV", None)
    env["ENVSPEC_CONFIG"] = str(work / "no-config.toml")  # no user mirrors
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", script, sys.executable, __file__, str(path)],
        capture_output=True, text=True, env=env, check=False, timeout=900,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"the fleet run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


if __name__ == "__main__":
    main()
