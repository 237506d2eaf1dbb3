"""`envspec lock`'s progress and summary (issue 12 point 7): on a real pseudo-terminal a live
line per target and a table (target, packages, changes, seconds, lock) with the divergences
across targets and their cause; off a terminal plain lines; with --json `resolving`, `lock`
and `diverging` events. Real wheels served on 127.0.0.1."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from envspec.cli import main
from support.index_server import IndexServer
from support.lockproject import lock, spec_text
from support.terminal import on_a_terminal

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
DIVERGENCE = (
    "macos-arm64 locks bnb 0.42.0, much older than 0.50.2 on linux-x86_64: bnb 0.50.2 has "
    "wheels for macOS 15.0+ only (macosx_15_0_arm64); macos-arm64 is locked for macOS 14.0: "
    'set [targets.macos-arm64] macos = "15.0"'
)


@pytest.fixture
def project(tmp_path: Path, index_server: IndexServer) -> Path:
    index_server.add_wheel("bnb", "0.42.0")
    index_server.add_wheel("bnb", "0.50.2", tag="py3-none-manylinux_2_24_x86_64")
    index_server.add_wheel("bnb", "0.50.2", tag="py3-none-macosx_15_0_arm64")
    index_server.add_wheel("six", "1.16.0")
    index_server.add_wheel("six", "1.16.1")  # not on macOS, by the spec: no notable divergence
    root = tmp_path / "project"
    root.mkdir()
    phases = [
        {"name": "main", "requirements": ["bnb", "six", "six<1.16.1; sys_platform == 'darwin'"]}
    ]
    text = spec_text({"pypi": index_server.url}, phases, targets=("linux-x86_64", "macos-arm64"))
    (root / "envspec.toml").write_text(text)
    return root


def test_on_a_terminal_a_live_line_per_target_then_a_table(project: Path) -> None:
    argv = [sys.executable, "-m", "envspec", "lock", "--cache-dir", str(project / ".c")]
    code, output = on_a_terminal(argv, cwd=project)
    assert code == 0, output
    screen = _ANSI.sub("", output)
    assert re.search(r"linux-x86_64 +(waiting|resolving|resolved in \d+\.\ds)", screen), screen
    lines = [line.rstrip() for line in screen.splitlines()]
    header = next(i for i, line in enumerate(lines) if line.startswith("target"))
    assert lines[header].split() == ["target", "packages", "changes", "seconds", "lock"]
    rows = [line.split() for line in lines[header + 1 : header + 3]]
    assert [row[:4] for row in rows] == [
        ["linux-x86_64", "2", "new", "lock"],
        ["macos-arm64", "2", "new", "lock"],
    ]
    assert rows[0][5:] == ["wrote", "locks/pylock.linux-x86_64.toml"]
    assert re.fullmatch(r"\d+\.\d\d", rows[0][4])
    assert lines[header + 3] == "Diverging across targets:"
    assert " ".join(lines[header + 4 :]).split() == f"{DIVERGENCE}".split()
    assert "WARNING" not in screen  # said once, in the summary


def test_off_a_terminal_plain_lines(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lock(project) == 0
    err = re.sub(r" in \d+\.\d\ds$", " in Ns", capsys.readouterr().err, flags=re.M)
    assert err.splitlines() == [
        "linux-x86_64: 2 packages (new lock), wrote locks/pylock.linux-x86_64.toml in Ns",
        "macos-arm64: 2 packages (new lock), wrote locks/pylock.macos-arm64.toml (for macOS 14.0)"
        " in Ns",
        f"WARNING: {DIVERGENCE}",
    ]
    assert lock(project, "--upgrade") == 0
    assert "linux-x86_64: 2 packages (no changes), unchanged locks/" in capsys.readouterr().err


def test_json_events(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lock(project, "--json") == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("resolving") >= 2
    first = next(e for e in events if e["event"] == "resolving")
    assert set(first) == {"event", "target", "packages", "requests"}
    assert kinds[-4:] == ["stats", "lock", "lock", "diverging"]
    linux = events[-3]
    assert linux["changes"] == {"added": 2, "removed": 0, "changed": 0, "new": True}
    assert isinstance(linux["seconds"], float)
    assert events[-1] == {
        "event": "diverging",
        "target": "macos-arm64",
        "name": "bnb",
        "version": "0.42.0",
        "newest": "0.50.2",
        "ahead": ["linux-x86_64"],
        "reason": DIVERGENCE.split(": ", 1)[1],
    }


def test_changes_count_added_removed_and_moved_pins(
    project: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lock(project) == 0
    index_server.add_wheel("six", "1.17.0")
    index_server.add_wheel("rich", "13.0")
    spec = project / "envspec.toml"
    text = spec.read_text()
    spec.write_text(text.replace('["bnb", "six", ', '["six", "rich", '))
    capsys.readouterr()
    assert main(["lock", "--project", str(project), "--cache-dir", str(project / ".c"),
                 "--upgrade-package", "six"]) == 0  # fmt: skip
    assert "linux-x86_64: 2 packages (1 added, 1 removed, 1 changed), wrote" in (
        capsys.readouterr().err
    )
