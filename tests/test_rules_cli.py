"""`envspec rules [NAME]`: the rules a project is under, with their sources, the ignored
built-in ones and the project's own, which committed locks record each, and JSON events."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envspec.cli import main
from envspec.compat import load_builtin_rules
from support.envproject import events
from support.index_server import IndexServer

REPO = Path(__file__).resolve().parents[1]
VERSION = load_builtin_rules().version
SPEC = """
[environment]
name = "t"
python = "3.11"
targets = ["linux-x86_64"]

[[phases]]
name = "main"
requirements = ["app"]

[resolution]
ignore-rules = ["torch-triton-windows"]

[[rules]]
id = "app-lib"
package = "app"
versions = "<2"
marker = "sys_platform == 'linux'"
requires = ["lib>=1.2,<2"]
source = "https://example.com/app/issues/1"
reason = "app 1.x crashes with lib 2"
"""


def rules(project: Path, *args: str) -> int:
    return main(["rules", "--project", str(project), *args])


def test_the_flagships_rules_about_torch_say_which_lock_records_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert rules(REPO, "torch") == 0
    err = capsys.readouterr().out.splitlines()
    assert err[0] == f"envspec's built-in rules {VERSION}"
    assert [line for line in err if not line.startswith("  ")] == [
        err[0],
        "torchao-torch (built-in): torchao",  # it requires torch
        "torch-numpy-windows (built-in): torch",
        "torch-triton-windows (built-in): torch",
        "triton-windows-torch (built-in): triton-windows",  # it constrains torch
    ]
    start = err.index("torch-numpy-windows (built-in): torch")
    assert err[start : start + 5] == [
        "torch-numpy-windows (built-in): torch",
        '  ==2.4.0 where sys_platform == "win32": constraint numpy<2',
        "  why: torch 2.4.0's Windows wheels were built against NumPy 1.x and fail at import "
        "under NumPy 2; Linux and macOS are not affected, and 2.4.1 fixed Windows",
        "  source: https://github.com/pytorch/pytorch/issues/131668",
        "  in locks: windows-x86_64.cpu, windows-x86_64.cu121",
    ]
    assert "  ==0.14.1: requires torch>=2.7.1,<=2.9.0 (C++ extensions built for torch 2.9.0)" in err
    assert '  ==2.4.* where sys_platform == "win32": constraint triton-windows>=3.1,<3.2' in err
    assert [line for line in err if line.startswith("  in locks:")] == [
        "  in locks: windows-x86_64.cpu, windows-x86_64.cu121",
    ] * 3  # no torchao in any lock; the torch rules hold on Windows only (both variants)
    capsys.readouterr()
    assert rules(REPO, "torch", "--variant", "cu121") == 0
    assert [line for line in capsys.readouterr().out.splitlines() if "in locks:" in line] == [
        "  in locks: windows-x86_64.cu121",
    ] * 3


def main_text(project: Path, *args: str) -> list[str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stdout(err):  # the listing is the result: stdout
        assert rules(project, *args) == 0
    return err.getvalue().splitlines()


def test_outside_a_project_the_built_in_rules_are_listed_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rules(tmp_path, "--json") == 0
    got = events(capsys.readouterr().out)
    assert [e["id"] for e in got] == [r.id for r in load_builtin_rules().rules]
    first = got[0]
    assert {k: first[k] for k in ("event", "package", "builtin", "ignored", "cite", "locks")} == {
        "event": "rule",
        "package": "torchao",
        "builtin": True,
        "ignored": False,
        "cite": "pytorch/ao#2919",
        "locks": [],
    }
    assert first["cases"][1] == {
        "versions": "==0.13.0",
        "marker": "",
        "targets": [],
        "requires": ["torch<=2.8.0,>=2.6.0"],
        "constraints": [],
        "note": "C++ extensions built for torch 2.8.0",
    }


def test_a_projects_rules_and_ignored_ones_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "envspec.toml").write_text(SPEC)
    assert rules(tmp_path, "lib") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"envspec's built-in rules {VERSION}; 1 project rule",
        "app-lib (project): app",
        "  <2 where sys_platform == \"linux\": requires lib>=1.2,<2",
        "  why: app 1.x crashes with lib 2",
        "  source: https://example.com/app/issues/1",
    ]
    assert rules(tmp_path, "triton-windows", "--json") == 0
    listed = {e["id"]: e["ignored"] for e in events(capsys.readouterr().out)}
    assert listed == {"torch-triton-windows": True, "triton-windows-torch": False}
    assert "torch-triton-windows (built-in, ignored by [resolution] ignore-rules): torch" in (
        main_text(tmp_path, "triton-windows")
    )


def test_a_name_no_rule_is_about_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rules(tmp_path, "nump") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"envspec's built-in rules {VERSION}",
        "no compatibility rule is about nump",
        "hint: did you mean 'numpy'?",
    ]


def test_an_invalid_spec_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "envspec.toml").write_text(SPEC.replace('"torch-triton-windows"', '"torch-triton"'))
    assert rules(tmp_path) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path}/envspec.toml: resolution.ignore-rules[0]: unknown rule 'torch-triton'",
        "hint: did you mean 'torch-triton-windows'?",
    ]


def test_lock_records_a_project_rule_and_check_names_it_when_it_changes(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    index_server.add_wheel("app", "1.0", requires_dist=["lib"])
    index_server.add_wheel("lib", "1.5")
    index_server.add_wheel("lib", "2.0")
    spec = tmp_path / "envspec.toml"
    text = SPEC.replace('name = "main"', 'name = "main"\nindex = "local"').replace(
        "[resolution]", f'[indexes]\nlocal = "{index_server.url}"\n\n[resolution]'
    )
    spec.write_text(text)

    def lock(*args: str) -> int:
        return main(["lock", "--project", str(tmp_path), "--cache-dir", str(tmp_path / "c"), *args])

    assert lock("--json") == 0
    [event] = [e for e in events(capsys.readouterr().out) if e["event"] == "lock"]
    assert (event["packages"], event["rules"]) == (2, ["app-lib"])
    assert main_text(tmp_path, "app")[-1] == "  in locks: linux-x86_64"
    spec.write_text(text.replace('"lib>=1.2,<2"', '"lib>=1.2,<1.9"'))
    assert lock("--check") == 3
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: locks out of date: linux-x86_64 (stale: rule app-lib changed)"
    )
    spec.write_text(text.replace('package = "app"', 'package = "other"'))  # about no locked package
    assert lock("--check") == 3
    assert "(stale: rule app-lib no longer applies)" in capsys.readouterr().err


def test_a_lock_recording_an_older_version_of_a_rule_is_named_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was listed "in locks" as if it recorded the rule in force (lock --check calls it
    stale: rule torch-numpy-windows changed)."""
    shutil.copy(REPO / "envspec.toml", tmp_path / "envspec.toml")
    shutil.copytree(REPO / "locks", tmp_path / "locks")
    lock = tmp_path / "locks" / "pylock.windows-x86_64-cu121.toml"
    text = lock.read_text()
    old = '{id = "torch-numpy-windows", sha256 = "'
    start = text.index(old) + len(old)
    lock.write_text(text[:start] + "0" * 16 + text[start + 16 :])
    assert rules(tmp_path, "torch") == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("torch-numpy-windows (built-in): torch")
    block = lines[start + 1 : lines.index("torch-triton-windows (built-in): torch")]
    assert [line for line in block if "in locks" in line] == [
        "  in locks: windows-x86_64.cpu",
        "  an older version in locks: windows-x86_64.cu121 (relock them)",
    ]
