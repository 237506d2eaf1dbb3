"""`envspec add` and `envspec remove`: the spec edited with its comments and layout kept, every
target relocked keeping the other pins, nothing written unless the relock succeeds, `--sync`
installing into a real `uv venv` environment; bad input refused with exact messages. Real
wheels over a loopback index."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import filelock
import pytest

from envspec.cli import main
from support.envproject import EnvProject, clean_environ
from support.index_server import IndexServer

SPEC = """\
# the project's environment
[environment]
name = "t"
python = "3.11"
targets = ["linux-x86_64", "windows-x86_64"]

[indexes]
pypi = "{url}"
cu = {{ url = "{url}", explicit = true }}

[[phases]]
name = "numpy"
requirements = ["numpy<2"]  # held for every later phase

[[phases]]
name = "app"
# what the app needs
requirements = [
    "app",      # ours
    "six",
]

[checks]
imports = ["numpy"]
"""


@pytest.fixture
def project(tmp_path: Path, index_server: IndexServer) -> Path:
    index_server.add_wheel("numpy", "1.25.0")
    index_server.add_wheel("app", "1.0", requires_dist=["numpy>=1.20"])
    index_server.add_wheel("six", "1.16.0")
    index_server.add_wheel("rich", "13.7.0")
    index_server.add_wheel("torch", "2.4.0")
    root = tmp_path / "project"
    root.mkdir()
    (root / "envspec.toml").write_text(SPEC.format(url=index_server.url))
    assert run(root, "lock") == 0
    index_server.add_wheel("numpy", "1.26.4")  # a newer release the relock must not take
    return root


def run(project: Path, command: str, *args: str) -> int:
    return main([command, *args, "--project", str(project), "--cache-dir", str(project / ".c")])


def spec(project: Path) -> str:
    return (project / "envspec.toml").read_text()


def pins(project: Path, target: str = "linux-x86_64") -> dict[str, str]:
    doc = tomllib.loads((project / "locks" / f"pylock.{target}.toml").read_text())
    return {p["name"]: p["version"] for p in doc["packages"]}


def state(project: Path) -> dict[str, bytes]:
    files = [project / "envspec.toml", *sorted((project / "locks").iterdir())]
    return {p.name: p.read_bytes() for p in files}


def test_add_keeps_comments_and_layout_and_other_pins(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = spec(project)
    capsys.readouterr()
    assert run(project, "add", "rich>=13") == 0
    assert spec(project) == before.replace('    "six",\n', '    "six",\n    "rich>=13",\n')
    assert pins(project) == {"numpy": "1.25.0", "app": "1.0", "six": "1.16.0", "rich": "13.7.0"}
    assert pins(project, "windows-x86_64")["rich"] == "13.7.0"
    err = re.sub(r" in \d+\.\d\ds$", " in Ns", capsys.readouterr().err, flags=re.M)
    assert err.splitlines() == [
        "envspec.toml: added 'rich>=13' to phase app",
        "linux-x86_64: 4 packages (1 added), wrote locks/pylock.linux-x86_64.toml in Ns",
        "windows-x86_64: 4 packages (1 added), wrote locks/pylock.windows-x86_64.toml in Ns",
    ]
    assert run(project, "lock", "--check") == 0


def test_add_to_a_phase_replaces_an_existing_requirement_and_routes_to_an_index(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(project, "add", "numpy<1.26", "six==1.16.0", "--phase", "numpy") == 2
    assert capsys.readouterr().err == (
        "error: --phase: 'six' is already required in another phase ('six' in phase app)\n"
        "hint: remove it there first ('envspec remove six'), or leave out --phase\n"
    )
    assert run(project, "add", "numpy<1.26") == 0
    text = spec(project)
    assert 'requirements = ["numpy<1.26"]  # held for every later phase\n' in text
    assert "envspec.toml: replaced 'numpy<2' with 'numpy<1.26' in phase numpy" in (
        capsys.readouterr().err
    )
    before = spec(project)
    assert run(project, "add", "torch", "rich", "--index", "cu") == 0
    new_phase = '[[phases]]\nname = "torch"\nindex = "cu"\nrequirements = ["torch", "rich"]\n\n'
    assert spec(project) == before.replace("[checks]\n", new_phase + "[checks]\n")
    assert pins(project)["torch"] == "2.4.0"
    assert run(project, "remove", "torch", "rich") == 0
    assert spec(project) == before  # the phase went with its requirements, blank lines too


def test_add_replaces_the_requirement_under_the_same_marker_and_keeps_the_others(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As uv's `add`: the requirement on the name with the same marker is replaced; one with a
    new marker goes beside the others (it replaced the first, and windows lost numpy)."""
    win, other = "numpy<2; sys_platform == 'win32'", "numpy<1.26; sys_platform != 'win32'"
    path = project / "envspec.toml"
    path.write_text(spec(project).replace('["numpy<2"]', f'["{win}", "{other}"]'))
    assert run(project, "lock") == 0
    capsys.readouterr()
    assert run(project, "add", "numpy<1.25.1; sys_platform != 'win32'") == 0
    assert f'["{win}", "numpy<1.25.1; sys_platform != \'win32\'"]' in spec(project)
    assert capsys.readouterr().err.splitlines()[0] == (
        f"envspec.toml: replaced '{other}' with 'numpy<1.25.1; sys_platform != 'win32'' in "
        "phase numpy"
    )
    assert pins(project, "windows-x86_64")["numpy"] == "1.25.0"  # kept, as every pin
    assert run(project, "add", "numpy; sys_platform == 'darwin'") == 0
    assert (
        f'["{win}", "numpy<1.25.1; sys_platform != \'win32\'", "numpy; sys_platform == '
        "'darwin'\"]"
    ) in spec(project)
    assert capsys.readouterr().err.splitlines()[0] == (
        "envspec.toml: added 'numpy; sys_platform == 'darwin'' to phase numpy"
    )
    assert pins(project, "windows-x86_64")["numpy"] == "1.25.0"  # kept, as every pin


def test_a_new_phase_at_the_end_of_the_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project / "envspec.toml"
    path.write_text(spec(project).replace('\n[checks]\nimports = ["numpy"]\n', ""))
    before = spec(project)
    assert run(project, "add", "torch", "--index", "cu") == 0
    assert spec(project) == (
        before + '\n[[phases]]\nname = "torch"\nindex = "cu"\nrequirements = ["torch"]\n'
    )


def test_remove_edits_and_relocks(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(project, "remove", "SIX") == 0
    assert '    "app",      # ours\n]\n' in spec(project)
    assert pins(project) == {"numpy": "1.25.0", "app": "1.0"}
    assert capsys.readouterr().err.splitlines()[0] == "envspec.toml: removed 'six' from phase app"
    assert run(project, "remove", "numpy", "--phase", "numpy", "--json") == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert next(e for e in events if e["event"] == "edited") == {
        "event": "edited",
        "path": str(project / "envspec.toml"),
        "command": "remove",
        "changes": [
            "removed 'numpy<2' from phase numpy",
            "removed phase numpy (no requirements left)",
        ],
    }
    assert 'name = "numpy"' not in spec(project)
    assert pins(project) == {"numpy": "1.25.0", "app": "1.0"}  # app still needs it


@pytest.mark.parametrize(
    ("command", "args", "message", "hint"),
    [
        (
            "add",
            ["numpy<<2"],
            "invalid requirement 'numpy<<2': expected semicolon (after name with no version "
            "specifier) or end",
            "write a PEP 508 requirement, e.g. 'numpy<2' or 'name @ git+https://…'",
        ),
        ("add", ["rich", "--phase", "ap"], "--phase: unknown phase 'ap'", "did you mean 'app'?"),
        ("add", ["rich", "--phase", "x"], "--phase: unknown phase 'x'", "phases: numpy, app"),
        ("add", ["rich", "--index", "cuu"], "--index: unknown index 'cuu'", "did you mean 'cu'?"),
        (
            "add",
            ["rich", "--index", "cu", "--phase", "app"],
            "--index: phase 'app' takes its names from the default indexes, not 'cu'",
            "leave out --phase to add it to a phase routed to that index (or a new one)",
        ),
        ("remove", ["sx"], "package 'sx' is not in the spec", "did you mean 'six'?"),
        (
            "remove",
            ["six", "--phase", "numpy"],
            "package 'six' is not in phase 'numpy'",
            "it is in phase app: leave out --phase, or give that phase",
        ),
        (
            "remove",
            ["rich", "--phase", "app"],
            "package 'rich' is not in phase 'app'",
            "phase app requires: app, six",
        ),
    ],
)
def test_bad_input_writes_nothing(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    command: str,
    args: list[str],
    message: str,
    hint: str,
) -> None:
    before = state(project)
    capsys.readouterr()
    assert run(project, command, *args) == 2
    assert capsys.readouterr().err == f"error: {message}\nhint: {hint}\n"
    assert state(project) == before


def test_add_takes_a_requirements_files_lines(
    project: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`envspec add -r FILE`, as `uv add -r`: the file's requirement lines (includes
    followed, comments and an index URL the spec has already dropped) join the REQs."""
    (project / "base.txt").write_text("six==1.16.0  # pinned\n")
    (project / "more.txt").write_text(f"-i {index_server.url}\n-r base.txt\nrich>=13\n")
    capsys.readouterr()
    assert run(project, "add", "torch", "-r", str(project / "more.txt")) == 0
    assert "requirements = [\n    \"app\",      # ours\n    \"six==1.16.0\",\n" in spec(project)
    assert pins(project)["rich"] == "13.7.0" and pins(project)["torch"] == "2.4.0"
    assert capsys.readouterr().err.splitlines()[:3] == [
        "envspec.toml: added 'torch' to phase app",
        "envspec.toml: replaced 'six' with 'six==1.16.0' in phase app",
        "envspec.toml: added 'rich>=13' to phase app",
    ]


def test_add_takes_a_file_whose_index_url_is_the_specs_through_a_variable(
    project: Path,
    index_server: IndexServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`-i ${INDEX}` was compared unexpanded with the spec's URLs: refused as another index."""
    monkeypatch.setenv("MY_INDEX", index_server.url)
    (project / "more.txt").write_text("-i ${MY_INDEX}\nrich>=13\n")
    capsys.readouterr()
    assert run(project, "add", "-r", str(project / "more.txt")) == 0
    assert pins(project)["rich"] == "13.7.0"


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            "--pre\n-f ./wheels\nrich\n",
            "{f}: add takes a file's requirements only, not its -f/--find-links, --pre",
            "'envspec add --index NAME' takes them from a spec index; 'envspec init --from "
            "FILE' maps a whole file's options",
        ),
        ("# nothing\n", "{f}: no requirements in the file", ""),
        ("rich==${NO_SUCH_VARIABLE}\n", "{f}:1: undefined environment variable "
         "'NO_SUCH_VARIABLE'", "set NO_SUCH_VARIABLE, or write its value in the file"),
        (None, "{f}: no such requirements file", ""),
    ],
)
def test_add_refuses_a_requirements_file_it_cannot_take_and_writes_nothing(
    project: Path, capsys: pytest.CaptureFixture[str], text: str | None, message: str, hint: str
) -> None:
    file = project.parent / "reqs.txt"
    if text is not None:
        file.write_text(text)
    before = state(project)
    capsys.readouterr()
    assert run(project, "add", "-r", str(file)) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {message.format(f=file)}", *([f"hint: {hint}"] if hint else [])
    ]
    assert state(project) == before


def test_add_with_nothing_to_add_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert run(project, "add") == 2
    assert capsys.readouterr().err == "error: nothing to add\nhint: name requirements, or -r FILE\n"


def test_a_failed_relock_writes_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = state(project)
    capsys.readouterr()
    assert run(project, "add", "rich>=14") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: target linux-x86_64: no version of rich matches rich>=14")
    assert state(project) == before
    assert run(project, "add", "six>=2", "--json") == 1
    assert state(project) == before


def test_a_lock_that_cannot_be_written_leaves_the_spec_and_every_lock_as_they_were(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills as the second lock is written: the first lock and the spec get their old
    bytes back, exit 1 (it was exit 2, the code of an invalid lock, with the spec edited)."""
    before = state(project)
    windows = project / "locks" / "pylock.windows-x86_64.toml"
    monkeypatch.setattr(os, "replace", _failing_for(windows, os.replace))
    capsys.readouterr()
    assert run(project, "add", "rich") == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {windows}: cannot write the lock: No space left on device"
    )
    assert state(project) == before
    assert run(project, "lock", "--upgrade") == 1  # a plain relock: all locks or none, too
    assert state(project) == before


def _failing_for(path: Path, replace: Callable[..., None]) -> Callable[..., None]:
    """`os.replace`, failing as a full disk would for `path` (the fault, at the OS's edge)."""

    def failing(source: Any, destination: Any) -> None:
        if Path(destination) == path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        replace(source, destination)

    return failing


def test_sync_installs_through_the_sync_command(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    index_server.add_wheel("alpha", "1.0")
    index_server.add_wheel("beta", "2.0", requires_dist=["alpha"])
    env = EnvProject(tmp_path, index_server)
    env.write_spec([{"name": "main", "requirements": ["alpha"]}])
    env.lock()
    env.make_env()
    assert env.run("add", "beta", "--sync") == 0
    assert env.freeze().split() == ["alpha==1.0", "beta==2.0"]
    assert "Synced." in capsys.readouterr().err
    assert env.run("remove", "beta", "--sync", "--json") == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert next(e["event"] for e in events if e["event"] in ("edited", "lock")) == "edited"
    assert events[-1]["event"] == "done" and events[-1]["command"] == "sync"


class _ReaderGoneAfter(io.StringIO):
    """A stdout whose reader reads `lines` lines and goes (`envspec add --json | head -2`)."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.left = lines

    def write(self, text: str) -> int:
        if self.left == 0:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        self.left -= text.count("\n")
        return super().write(text)


@pytest.mark.parametrize("lines", [0, 1, 2, 3])
def test_a_reader_gone_mid_command_leaves_the_spec_and_locks_agreeing(
    project: Path, monkeypatch: pytest.MonkeyPatch, lines: int
) -> None:
    """The reader of `--json` went after the spec was written: the broken pipe unwound the
    command with the locks written, and the spec was put back without 'rich' while the lock
    kept it ('locks out of date' after). The command ends what it began, then exits 141."""
    monkeypatch.setattr("sys.stdout", _ReaderGoneAfter(lines))
    assert run(project, "add", "rich>=13", "--json") == 141
    monkeypatch.undo()
    assert '"rich>=13"' in spec(project) and pins(project)["rich"] == "13.7.0"
    assert run(project, "lock", "--check") == 0


def test_add_fills_in_the_empty_phase_init_writes(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`envspec init` then `envspec add six`, as `uv init` then `uv add`: add refused the
    starter spec ('phase has no requirements'), which only a hand edit could fix."""
    index_server.add_wheel("six", "1.16.0")
    root = tmp_path / "new"
    root.mkdir()
    assert main(["init", "--project", str(root), "--target", "linux-x86_64"]) == 0
    spec_file = root / "envspec.toml"
    spec_file.write_text(
        spec_file.read_text().replace("https://pypi.org/simple", index_server.url)
    )
    capsys.readouterr()
    assert run(root, "lock") == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {spec_file}: phases[0].requirements: phase has no requirements",
        "hint: add some with 'envspec add REQ --phase main', or remove the phase",
    ]
    assert run(root, "add", "six") == 0
    assert pins(root) == {"six": "1.16.0"}


def test_two_adds_at_once_keep_both_requirements(project: Path) -> None:
    """Each read the spec, and the second write dropped the first one's requirement, both
    exit 0 (10 runs in 10): add and remove now take the spec's edit lock."""
    argv = [sys.executable, "-m", "envspec", "add", "--project", str(project),
            "--cache-dir", str(project / ".c"), "-q"]  # fmt: skip
    procs = [
        subprocess.Popen([*argv, name], stderr=subprocess.PIPE, text=True, env=clean_environ())
        for name in ("rich", "torch")
    ]
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0, 0], [p.stderr.read() for p in procs if p.stderr]
    assert '"rich"' in spec(project) and '"torch"' in spec(project)
    assert {"rich", "torch"} <= set(pins(project))
    assert run(project, "lock", "--check") == 0


def test_an_add_gives_up_on_a_spec_another_command_is_editing(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("envspec.cli_edit.EDIT_WAIT", 0.3)  # 60 s for users
    digest = hashlib.sha256(os.path.realpath(project).encode()).hexdigest()[:24]
    held = project / ".c" / "locks" / f"{digest}.edit.lock"
    held.parent.mkdir(parents=True, exist_ok=True)
    before = state(project)
    capsys.readouterr()
    with filelock.FileLock(held):
        assert run(project, "add", "rich") == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {project / 'envspec.toml'}: another envspec command is editing this spec; "
        "gave up after 0.3s",
        "hint: wait for it to finish, then run the command again",
    ]
    assert state(project) == before
