"""`envspec why NAME`: chains from the spec to a package on each target, from locks made in the
test by `envspec lock` against an index on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envspec.cli import main
from envspec.lockfile import lock_path
from support.index_server import IndexServer
from support.lockproject import lock, spec_text


@pytest.fixture
def project(tmp_path: Path, index_server: IndexServer) -> Path:
    index_server.add_wheel("numpy", "1.26.4")
    index_server.add_wheel(
        "app", "1.0", requires_dist=["numpy>=1.20", "helper", "winonly; sys_platform == 'win32'"]
    )
    index_server.add_wheel("helper", "2.0", requires_dist=["six"])
    index_server.add_wheel("six", "1.16.0")
    index_server.add_wheel("winonly", "0.5")
    root = tmp_path / "project"
    root.mkdir()
    phases = [
        {"name": "numpy", "requirements": ["numpy<2"]},
        {"name": "app", "requirements": ["app"]},
    ]
    (root / "envspec.toml").write_text(spec_text({"pypi": index_server.url}, phases))
    assert lock(root) == 0
    return root


def why(project: Path, *args: str) -> int:
    return main(["why", "--project", str(project), *args])


def test_chains_on_every_target(
    project: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert why(project, "NumPy") == 0
    block = (
        "numpy 1.26.4, phase numpy\n"
        f"  from index {index_server.url}, file numpy-1.26.4-py3-none-any.whl\n"
        "  phase numpy: numpy<2 → numpy 1.26.4\n"
        "  phase app: app → app 1.0 requires numpy>=1.20 → numpy 1.26.4\n"
    )
    captured = capsys.readouterr()
    assert captured.out == f"linux-x86_64: {block}windows-x86_64: {block}"
    assert captured.err == ""


def test_a_deep_chain_on_one_target(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert why(project, "six", "--target", "windows-x86_64") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "windows-x86_64: six 1.16.0, phase app"
    assert out.splitlines()[2:] == [
        "  phase app: app → app 1.0 requires helper → helper 2.0 requires six → six 1.16.0"
    ]


def test_a_package_on_one_target_only(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert why(project, "winonly") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "linux-x86_64: winonly is not locked on this target"
    assert lines[1] == "windows-x86_64: winonly 0.5, phase app"
    assert lines[3] == "  phase app: app → app 1.0 requires winonly → winonly 0.5"


def test_json_event(
    project: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert why(project, "helper", "--target", "linux-x86_64", "--json") == 0
    event = json.loads(capsys.readouterr().out)
    assert event == {
        "event": "why",
        "name": "helper",
        "targets": [
            {
                "target": "linux-x86_64",
                "locked": True,
                "version": "2.0",
                "phase": "app",
                "index": index_server.url,
                "source": f"index {index_server.url}, file helper-2.0-py3-none-any.whl",
                "chains": [
                    {
                        "phase": "app",
                        "requirement": "app",
                        "path": [["app", "1.0"], ["helper", "2.0"]],
                        "requires": ["helper"],
                    }
                ],
                "more-chains": 0,
                "constraints": [],
            }
        ],
    }


def test_each_edge_shows_the_specifier_its_parent_declares(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Several requirements of one parent on a name (under markers) are shown combined, and
    a lock made before `required-as` still explains its chains, without specifiers."""
    index_server.add_wheel("huggingface-hub", "0.36.0")
    index_server.add_wheel(
        "transformers",
        "5.5.0",
        requires_dist=[
            "huggingface-hub<1.0,>=0.34",
            "huggingface_hub!=0.35.0; python_version >= '3.8'",
        ],
    )
    root = tmp_path / "hub"
    root.mkdir()
    phases = [{"name": "transformers", "requirements": ["transformers>=4.40"]}]
    (root / "envspec.toml").write_text(spec_text({"pypi": index_server.url}, phases))
    assert lock(root) == 0
    capsys.readouterr()
    assert why(root, "huggingface-hub", "--target", "linux-x86_64") == 0
    assert capsys.readouterr().out.splitlines()[2] == (
        "  phase transformers: transformers>=4.40 → transformers 5.5.0 requires "
        "huggingface-hub!=0.35.0,<1.0,>=0.34 → huggingface-hub 0.36.0"
    )
    path = lock_path(root, "linux-x86_64")
    text = path.read_text()
    table = (
        "[packages.tool.envspec.required-as]\n"
        'transformers = "huggingface-hub!=0.35.0,<1.0,>=0.34"\n'
    )
    assert table in text
    path.write_text(text.replace(table, ""))
    assert why(root, "huggingface-hub", "--target", "linux-x86_64") == 0
    assert capsys.readouterr().out.splitlines()[2] == (
        "  phase transformers: transformers>=4.40 → transformers 5.5.0 → huggingface-hub 0.36.0"
    )


# --- bad input -----------------------------------------------------------------------------


def test_an_override_is_named_where_it_replaced_what_was_declared(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lock records what app declares (it recorded the override as app's own), and `why`
    names the override on each edge it replaced, as uv's `# via --override`."""
    index_server.add_wheel("lib", "1.0")
    index_server.add_wheel("lib", "2.0")
    index_server.add_wheel("app", "1.0", requires_dist=["lib<2"])
    root = tmp_path / "project"
    root.mkdir()
    phases = [{"name": "main", "requirements": ["app", "lib>=0.5"]}]
    text = spec_text({"pypi": index_server.url}, phases, targets=("linux-x86_64",))
    (root / "envspec.toml").write_text(text + '\n[resolution]\noverrides = ["lib>=2"]\n')
    assert lock(root) == 0
    locked = (root / "locks" / "pylock.linux-x86_64.toml").read_text()
    assert '[packages.tool.envspec.required-as]\napp = "lib<2"\n' in locked
    capsys.readouterr()
    assert why(root, "lib") == 0
    assert capsys.readouterr().out.splitlines()[2:] == [
        "  phase main: lib>=0.5 (overridden: lib>=2) → lib 2.0",
        "  phase main: app → app 1.0 requires lib<2 (overridden: lib>=2) → lib 2.0",
    ]


def test_the_constraints_that_bound_a_pin_are_named(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A divergence warning sends the user to `why`, which said nothing of the constraint
    holding the pin."""
    index_server.add_wheel("lib", "1.0")
    index_server.add_wheel("lib", "2.0")
    root = tmp_path / "project"
    root.mkdir()
    phases = [{"name": "main", "requirements": ["lib"]}]
    text = spec_text({"pypi": index_server.url}, phases, targets=("linux-x86_64",))
    constraints = "constraints = [\"lib<2; sys_platform == 'linux'\"]"
    (root / "envspec.toml").write_text(text + f"\n[resolution]\n{constraints}\n")
    assert lock(root) == 0
    capsys.readouterr()
    assert why(root, "lib") == 0
    assert capsys.readouterr().out.splitlines()[2:] == [
        "  phase main: lib → lib 1.0",
        "  bounded by [resolution] constraints: lib<2; sys_platform == \"linux\"",
    ]


def test_name_not_in_any_lock(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert why(project, "nump") == 2
    assert capsys.readouterr().err == (
        "error: locks: package 'nump' is not in any lock\nhint: did you mean 'numpy'?\n"
    )


def test_name_not_in_the_targets_lock(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert why(project, "winonly", "--target", "linux-x86_64") == 2
    assert capsys.readouterr().err == (
        "error: locks/pylock.linux-x86_64.toml: package 'winonly' is not in the lock for "
        "linux-x86_64\nhint: see the locks' [[packages]] for the locked names\n"
    )


def test_unknown_target(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert why(project, "numpy", "--target", "macos-arm64") == 2
    assert capsys.readouterr().err == (
        "error: --target: target 'macos-arm64' is not in the spec\n"
        "hint: spec targets: linux-x86_64, windows-x86_64\n"
    )


def test_missing_lock(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = lock_path(project, "linux-x86_64")
    path.unlink()
    capsys.readouterr()
    assert why(project, "numpy") == 3
    assert capsys.readouterr().err == (
        f"error: {path}: no lock file\nhint: run 'envspec lock' to write it\n"
    )


@pytest.mark.parametrize("command", ["why", "export"])
def test_a_file_holding_another_targets_lock_is_stale(
    project: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """The Windows lock copied over the Linux one: 'export --target linux-x86_64' handed out
    Windows pins and 'why' dropped the Linux target, both exit 0 (lock --check said 3)."""
    path = lock_path(project, "linux-x86_64")
    path.write_bytes(lock_path(project, "windows-x86_64").read_bytes())
    capsys.readouterr()
    args = ["numpy"] if command == "why" else []
    argv = [command, "--project", str(project), *args, "--target", "linux-x86_64"]
    assert main(argv) == 3
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}: the file holds the lock of windows-x86_64",
        "hint: run 'envspec lock' to write this target's lock",
    ]
