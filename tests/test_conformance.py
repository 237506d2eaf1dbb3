"""packse conformance: all 150 scenarios of the packse suite (the one uv's resolver is tested
against) locked through envspec, judged by packse's own runner.

`../shared/conformance/packse/` (beside the repository) holds the scenarios built into a static
index (`index.tgz`), their definitions (`inspect.json`) and `run_scenarios.py`, which runs any
resolver command per scenario and gives the verdict uv's own scenario tests give. The index is
served on 127.0.0.1; the command is `tests/support/packse_adapter.py`, which writes a one-phase
`envspec.toml` per scenario and runs `envspec lock` (universal scenarios: every target, results
united, unsatisfiable when any target is).

uv 0.13.9 passes 141 (8 failed, 1 skipped). Each scenario is one test: envspec passes every one
but those in `DIVERGENCES`, deliberate differences with their reasons, which pytest reports as
expected failures (strict: a divergence that starts passing fails the run until it is dropped).
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.conformance

TESTS = Path(__file__).resolve().parent
PACKSE = TESTS.parent.parent / "shared" / "conformance" / "packse"
ADAPTER = TESTS / "support" / "packse_adapter.py"
MINIMUM = 142

_PER_TARGET = (
    "envspec locks each target on its own, where this resolves; the scenario expects the "
    "failure of a universal resolver that does not fork here"
)
DIVERGENCES = {
    # Per-target locking (DESIGN.md §4-5) instead of one universal, forking resolution.
    "fork-non-local-fork-marker-direct": _PER_TARGET + " (c<2 on linux, c>=2 on darwin)",
    "fork-non-local-fork-marker-transitive": _PER_TARGET + " (c<2 on linux, c>=2 on darwin)",
    "preferences-dependent-forking-conflicting": _PER_TARGET + " (uv 0.13.9 resolves it too)",
    "conflict-in-fork": (
        "the conflict lies under sys_platform == 'os1' / 'os2', platforms no envspec target "
        "has, so no target's lock requires anything"
    ),
    "specific-architecture": (
        "a per-target lock needs a file that installs on the target: b, c and d ship only "
        "cp313 wheels and the scenario's Python is 3.12 (a universal uv lock does not check "
        "wheel tags)"
    ),
    # PEP 440 over uv policy.
    "package-only-prereleases-in-range": (
        "PEP 440: a pre-release is accepted where no final release satisfies the specifier "
        "(a>0.1.0 with only 0.1.0 and 1.0.0a1); uv 0.13.9 accepts it too"
    ),
    "transitive-package-only-prereleases-in-range": (
        "PEP 440, as above, for a dependency's b>0.1; uv 0.13.9 accepts it too"
    ),
    # Requires-Python is a bound, not a hint, when the target's Python is known.
    "python-less-than-current": (
        "a 1.0.0 declares Requires-Python <=3.8 and the target is Python 3.9: a lock for one "
        "known Python honours the upper bound (pip refuses to install it), where uv ignores it"
    ),
}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def packse_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The scenarios' index, unpacked and served on 127.0.0.1; yields its root URL."""
    if not (PACKSE / "index.tgz").is_file():
        pytest.fail(f"packse suite not found: expected {PACKSE} beside the repository")
    root = tmp_path_factory.mktemp("packse")
    with tarfile.open(PACKSE / "index.tgz") as archive:
        archive.extractall(root, filter="data")
    handler = functools.partial(_QuietHandler, directory=str(root / "index"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _runner_args(index: str, work: Path) -> list[str]:
    adapter = " ".join(
        [
            shlex.quote(sys.executable),
            shlex.quote(str(ADAPTER)),
            "--index {index} --find-links {find_links} --python {python}",
            "--reqfile {reqfile} --workdir {workdir}",
            "--cache-dir " + shlex.quote(str(work / "cache")),
            "{options}",
        ]
    )
    options = {
        "universal": "--universal",
        "prereleases": "--prerelease allow",
        "no_binary": "--no-binary {pkg}",
        "no_build": "--no-build {pkg}",
        "python_platform": "--platform {platform}",
        "required_environments": "--required-env '{env}'",
    }
    return [
        sys.executable,
        str(PACKSE / "run_scenarios.py"),
        "--index", f"{index}/simple-html/",
        "--find-links", f"{index}/vendor/",
        "--scenarios-json", str(PACKSE / "inspect.json"),
        "--cmd", adapter,
        "--output", "lines",
        *(arg for key, flags in options.items() for arg in ("--opt", f"{key}={flags}")),
        "--uv-snapshots", str(PACKSE / "uv_resolutions.json"),
        "--jobs", str(min(4, os.cpu_count() or 2)),
        "--timeout", "120",
        "--json-out", str(work / "results.json"),
    ]  # fmt: skip


def _scenario_names() -> list[str]:
    try:
        data = json.loads((PACKSE / "inspect.json").read_text())
    except OSError:
        return ["<packse suite missing>"]
    return [scenario["name"] for scenario in data["scenarios"]]


SCENARIOS = _scenario_names()


@pytest.fixture(scope="module")
def verdicts(
    packse_index: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, str]]:
    """packse's runner over all scenarios at once (it runs them in parallel): each
    scenario's status (PASS, FAIL or SKIP) and reason."""
    work = tmp_path_factory.mktemp("packse-run")
    proc = subprocess.run(_runner_args(packse_index, work), capture_output=True, text=True,
                          check=False)
    try:
        results: list[dict[str, Any]] = json.loads((work / "results.json").read_text())
    except OSError:
        pytest.fail(f"packse's runner wrote no results: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    found = {r["name"]: (r["status"], r["reason"]) for r in results}
    passed = sum(1 for status, _ in found.values() if status == "PASS")
    assert len(found) == len(SCENARIOS) == 150, proc.stdout[-4000:]
    assert passed >= MINIMUM, f"{passed} passed, fewer than {MINIMUM}"
    return found


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=pytest.mark.xfail(strict=True, reason=DIVERGENCES[name])
            if name in DIVERGENCES
            else (),
        )
        for name in SCENARIOS
    ],
)
def test_packse_scenario(name: str, verdicts: dict[str, tuple[str, str]]) -> None:
    """Each scenario passes as uv's own tests judge it, except the listed divergences, which
    must still fail (strict xfail: one that starts passing is to be dropped from the list)."""
    status, reason = verdicts[name]
    assert status != "SKIP", f"skipped: {reason}"
    assert status == "PASS", reason


def test_divergences_are_scenarios() -> None:
    assert set(DIVERGENCES) <= set(SCENARIOS)
