"""`envspec check`: drift against the lock, dependency consistency under the environment's
markers, the spec's version rules and import probes, on real environments; plus the pure
consistency rules on hand-made distributions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envspec.apply.check import dependencies
from envspec.apply.plan import Installed
from envspec.targets import make_target
from support.envproject import TARGET, EnvProject, events
from support.index_server import IndexServer

PHASES = [
    {"name": "one", "requirements": ["alpha<2"]},
    {"name": "two", "requirements": ["beta"]},
]
NOISY = b"import sys, warnings\nwarnings.warn('beta is old', DeprecationWarning)\n" + (
    b"print('A module that was compiled using NumPy 1.x', file=sys.stderr)\nVALUE = 1\n"
)


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    index_server.add_wheel("alpha", "1.0")
    index_server.add_wheel("alpha", "2.0")
    index_server.add_wheel(
        "beta", "1.0", requires_dist=["alpha"], files={"beta/__init__.py": NOISY}
    )
    index_server.add_wheel(
        "slow", "1.0", files={"slow/__init__.py": b"import time\ntime.sleep(30)\n"}
    )
    index_server.add_wheel(
        "needy", "1.0", requires_dist=["alpha>=5", "winonly; sys_platform == 'win32'"]
    )
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    return project


def _synced(proj: EnvProject, checks: dict[str, object]) -> None:
    proj.write_spec(PHASES, checks=checks)
    proj.lock()
    assert proj.run("sync", "--no-checks") == 0


def test_check_passes_and_reports_each_result_with_warnings(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    _synced(proj, {"imports": ["alpha", "beta:VALUE"], "versions": {"alpha": "<2"}})
    capsys.readouterr()
    assert proj.run("check", "--json") == 0
    got = [e for e in events(capsys.readouterr().out) if e["event"] == "check"]
    assert [(e["check"], e["ok"], e["message"]) for e in got[:4]] == [
        ("drift", True, "2 packages match the lock"),
        ("lock", True, f"the lock for {TARGET} is up to date with envspec.toml"),
        ("dependencies", True, "the requirements of 2 distributions hold"),
        ("version", True, "alpha 1.0 satisfies alpha<2"),
    ]
    assert (got[4]["check"], got[4]["ok"], got[4]["message"]) == (
        "rules", True, "no compatibility rule is about an installed distribution"
    )
    probes = {e["subject"]: e for e in got[5:]}
    assert sorted(probes) == ["alpha", "beta:VALUE"]
    assert all(e["ok"] and e["message"].startswith(f"import {s} ok (") for s, e in probes.items())
    assert probes["beta:VALUE"]["warnings"] == [
        "DeprecationWarning: beta is old",
        "A module that was compiled using NumPy 1.x",
    ]


def test_a_missing_attribute_in_an_import_probe_fails_the_check(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    _synced(proj, {"imports": ["alpha:AutoProcessor"]})
    capsys.readouterr()
    assert proj.run("check") == 1
    err = capsys.readouterr().err.splitlines()
    assert (
        "  FAIL import: import alpha:AutoProcessor failed: "
        "module 'alpha' has no attribute 'AutoProcessor'"
    ) in err
    assert err[-1] == "Checks failed."
    assert proj.run("check", "-q") == 1  # errors only: the failed checks (it printed nothing)
    assert capsys.readouterr().err.splitlines() == [
        "  FAIL import: import alpha:AutoProcessor failed: "
        "module 'alpha' has no attribute 'AutoProcessor'",
        "Checks failed.",
    ]


def test_a_module_that_is_not_there_fails_the_check(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    _synced(proj, {"imports": ["transformers"]})
    capsys.readouterr()
    assert proj.run("check") == 1
    assert (
        "  FAIL import: import transformers failed: "
        "ModuleNotFoundError: No module named 'transformers'"
    ) in capsys.readouterr().err.splitlines()


def test_a_broken_version_rule_fails_the_check(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    _synced(proj, {"versions": {"alpha": ">=2", "gone": "<1"}})
    capsys.readouterr()
    assert proj.run("check") == 1
    err = capsys.readouterr().err.splitlines()
    assert "  FAIL version: alpha 1.0 does not satisfy alpha>=2" in err
    assert "  FAIL version: gone is not installed (rule gone<1)" in err


def test_drift_from_the_lock_fails_the_check(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _synced(proj, {})
    proj.pip_install(f"alpha @ {index_server.file_url('alpha-2.0-py3-none-any.whl')}")
    proj.uv("pip", "uninstall", "--python", str(proj.python), "beta")
    capsys.readouterr()
    assert proj.run("check") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[1:4] == [
        "  FAIL drift: 0 packages match the lock",
        "  FAIL drift: alpha is 2.0, the lock says 1.0 (phase one)",
        "  FAIL drift: beta 1.0 is not installed (phase two)",
    ]


def test_the_locked_version_from_another_source_fails_the_check_and_sync_puts_it_back(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each the same version as the lock's, each from elsewhere: an index package installed
    from a URL, a URL package installed from the index. The sync's plan reinstalled the first
    while check passed, and neither saw the second."""
    beta = index_server.file_url("beta-1.0-py3-none-any.whl")
    proj.write_spec([PHASES[0], {"name": "two", "requirements": [f"beta @ {beta}"]}])
    proj.lock()
    assert proj.run("sync", "--no-checks") == 0
    alpha = index_server.file_url("alpha-1.0-py3-none-any.whl")
    proj.pip_install("--reinstall", f"alpha @ {alpha}")
    proj.uv("pip", "install", "--python", str(proj.python), "--reinstall", "--no-deps",
            "--index-url", index_server.url, "beta==1.0")  # fmt: skip
    capsys.readouterr()
    assert proj.run("check") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[1:4] == [
        "  FAIL drift: 0 packages match the lock",
        f"  FAIL drift: alpha 1.0 is installed from {alpha}, not its index (phase one)",
        f"  FAIL drift: beta 1.0 is installed from an index, the lock says {beta} (phase two)",
    ]
    assert proj.run("sync") == 0
    assert "  ok   drift: 2 packages match the lock" in capsys.readouterr().err.splitlines()
    assert proj.run("check") == 0


def test_unmet_requirements_fail_under_the_environments_own_markers(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _synced(proj, {})
    proj.pip_install(f"needy @ {index_server.file_url('needy-1.0-py3-none-any.whl')}")
    capsys.readouterr()
    assert proj.run("check") == 1
    err = capsys.readouterr().err.splitlines()
    assert "  FAIL dependencies: needy 1.0 requires alpha>=5, but alpha 1.0 is installed" in err
    assert not [line for line in err if "winonly" in line]  # its marker is false on this host
    assert "       warning: not in the lock: needy 1.0" in err


def test_an_import_that_hangs_fails_after_the_timeout(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _synced(proj, {"imports": ["slow"]})
    proj.pip_install(f"slow @ {index_server.file_url('slow-1.0-py3-none-any.whl')}")
    capsys.readouterr()
    assert proj.run("check", "--import-timeout", "0.5") == 1
    assert "  FAIL import: import slow failed: timed out after 0.5s" in (
        capsys.readouterr().err.splitlines()
    )


def _dist(name: str, version: str, *requires: str) -> Installed:
    return Installed(name=name, version=version, requires=requires)  # type: ignore[arg-type]


def test_dependency_consistency_follows_extras_and_markers() -> None:
    windows = make_target("windows-x86_64", "3.11").environment()
    linux = make_target("linux-x86_64", "3.11").environment()
    installed = [
        _dist("app", "1.0", "lib[fast]>=1", "pywin; sys_platform == 'win32'"),
        _dist("lib", "1.2", "speedup>=2; extra == 'fast'", "slowpath; extra == 'slow'"),
        _dist("speedup", "1.0"),
    ]
    on_linux = [r.message for r in dependencies(installed, linux) if not r.ok]
    assert on_linux == [
        "1 unmet requirement",
        "lib 1.2 requires speedup>=2, but speedup 1.0 is installed",
    ]
    on_windows = [r.message for r in dependencies(installed, windows) if not r.ok]
    assert on_windows[1:] == [
        "app 1.0 requires pywin, but pywin is not installed",
        "lib 1.2 requires speedup>=2, but speedup 1.0 is installed",
    ]


def test_a_stale_lock_fails_the_check_and_names_the_spec_change(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    _synced(proj, {})
    proj.write_spec([{"name": "one", "requirements": ["alpha>=2"]}, *PHASES[1:]])
    capsys.readouterr()
    assert proj.run("check") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[1:3] == [
        "  ok   drift: 2 packages match the lock",
        f"  FAIL lock: the lock for {TARGET} is out of date with envspec.toml: phase one: "
        "alpha<2 → alpha>=2 ('envspec sync' relocks it first, 'envspec lock' relocks it)",
    ]
    assert err[-1] == "Checks failed."


def test_check_streams_its_results_drift_first_and_each_probe_as_it_finishes(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path
) -> None:
    # `gate` blocks its import until a file appears, which this test writes only after it has
    # read the other results from check's output: were they held back until every probe had
    # finished, the gate would time out (and fail) first
    release = tmp_path / "release"
    gate = f"import os, time\nfor _ in range(300):\n    if os.path.exists({str(release)!r}):\n"
    gate += "        break\n    time.sleep(0.05)\nelse:\n    raise RuntimeError('never released')\n"
    index_server.add_wheel("gate", "1.0", files={"gate/__init__.py": gate.encode()})
    _synced(proj, {"imports": ["gate", "alpha"]})
    proj.pip_install(f"gate @ {index_server.file_url('gate-1.0-py3-none-any.whl')}")
    check = proj.spawn("check", "--json")
    assert check.stdout is not None
    seen = []
    for line in check.stdout:
        event = json.loads(line)
        if event["event"] == "check":
            seen.append((event["check"], event["subject"], event["ok"]))
        if ("import", "alpha", True) in seen and not release.exists():
            assert ("import", "gate", True) not in seen
            release.write_text("")
    assert check.wait(timeout=60) == 0
    assert seen[0] == ("drift", "lock", True)
    assert seen[1] == ("lock", TARGET, True)
    assert seen[-2:] == [("import", "alpha", True), ("import", "gate", True)]
