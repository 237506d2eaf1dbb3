"""`envspec diff`: locks made in the test by `envspec lock` (and, for git sources, written
from model values), committed to a real git repository, compared through the real CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from envspec.cli import main
from envspec.lockfile import lock_path, write_lock
from envspec.model import Artifact, Lock, LockedPackage, LockedPhase, VcsSource
from envspec.review.diff import diff_locks, package_change
from envspec.review.diff_format import render_text, to_json
from support.index_server import IndexServer
from support.lockproject import commit_all, git, lock, spec_text

ROOT = Path(__file__).parent.parent
PHASES = [
    {"name": "numpy", "requirements": ["numpy<2"]},
    {"name": "app", "requirements": ["app"]},
]


@pytest.fixture
def project(tmp_path: Path, index_server: IndexServer) -> Path:
    index_server.add_wheel("numpy", "1.26.4")
    index_server.add_wheel("app", "1.0", requires_dist=["numpy>=1.20", "six"])
    index_server.add_wheel("six", "1.16.0")
    root = tmp_path / "project"
    root.mkdir()
    (root / "envspec.toml").write_text(spec_text({"pypi": index_server.url}, PHASES))
    assert lock(root) == 0
    return root


def diff(project: Path, *args: str) -> int:
    return main(["diff", "--project", str(project), *args])


def head(project: Path) -> str:
    return git(project, "rev-parse", "HEAD").strip()[:10]


def test_upgrades_additions_major_bumps_and_phase_members(
    project: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_all(project)
    index_server.add_wheel("numpy", "2.1.0")
    index_server.add_wheel("six", "1.17.0")
    index_server.add_wheel("extra", "1.0")
    spec = spec_text(
        {"pypi": index_server.url},
        [
            {"name": "numpy", "requirements": ["numpy", "six"]},
            {"name": "app", "requirements": ["app", "extra"]},
        ],
    )
    (project / "envspec.toml").write_text(spec)
    assert lock(project, "--upgrade") == 0
    capsys.readouterr()
    assert diff(project) == 0
    block = """\
  + extra 1.0  [phase app]
  ↑ numpy 1.26.4 → 2.1.0  [phase numpy]  MAJOR
  ↑ six 1.16.0 → 1.17.0  [phase numpy]
  phase numpy: +six
  phase app: +extra -six
"""
    assert capsys.readouterr().out == (
        f"HEAD ({head(project)}) → working tree: 2 targets changed, 2 added, 4 upgraded, 2 major\n"
        f"linux-x86_64: 1 added, 2 upgraded\n{block}"
        f"windows-x86_64: 1 added, 2 upgraded\n{block}"
    )


def test_exit_code_only_with_flag_and_changes(
    project: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_all(project)
    assert diff(project, "--exit-code") == 0
    assert capsys.readouterr().out == (
        f"HEAD ({head(project)}) → working tree: no changes\n"
        "linux-x86_64: unchanged\nwindows-x86_64: unchanged\n"
    )
    index_server.add_wheel("six", "1.17.0")
    assert lock(project, "--upgrade-package", "six") == 0
    assert diff(project) == 0
    assert diff(project, "--exit-code") == 1
    assert diff(project, "--exit-code", "-q") == 1
    capsys.readouterr()
    assert diff(project, "HEAD", "--exit-code", "--target", "linux-x86_64", "-q") == 1
    assert capsys.readouterr().out == ""


def test_supply_chain_swap_same_version_other_index(
    project: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_all(project)
    with IndexServer() as mirror:
        # same name and version, different bytes: what a swapped upload looks like
        mirror.add_wheel("app", "1.0", requires_dist=["numpy>=1.20", "six"], pad_bytes=64)
        spec = spec_text({"mirror": mirror.url, "pypi": index_server.url}, PHASES)
        (project / "envspec.toml").write_text(spec)
        assert lock(project) == 0
        new_url, new_file = mirror.url, mirror.file_url("app-1.0-py3-none-any.whl")
    old_sha = index_server.entry("app-1.0-py3-none-any.whl").sha256
    new_sha = mirror.entry("app-1.0-py3-none-any.whl").sha256
    capsys.readouterr()
    assert diff(project, "--target", "linux-x86_64") == 0
    assert capsys.readouterr().out == (
        f"HEAD ({head(project)}) → working tree: 1 target changed, 1 changed, "
        "1 flagged source change\n"
        "linux-x86_64: 1 changed\n"
        "  ~ app 1.0 (same version)  [phase app]  SOURCE CHANGED\n"
        f"      index: {index_server.url} → {new_url}  FLAGGED\n"
        f"      url: {index_server.file_url('app-1.0-py3-none-any.whl')} → {new_file}  FLAGGED\n"
        f"      hash: {old_sha} → {new_sha}  FLAGGED\n"
    )
    assert diff(project, "--format", "markdown", "--target", "linux-x86_64") == 0
    markdown = capsys.readouterr().out
    assert markdown.splitlines()[0] == (
        f"**envspec lock diff** `HEAD ({head(project)})` → `working tree`: 1 target changed, "
        "1 changed, 1 flagged source change"
    )
    row = next(line for line in markdown.splitlines() if "**app**" in line)
    assert row.startswith("| 🚩 | **app** | 1.0 | 1.0 | app | 🚩 index: ")
    assert diff(project, "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["flagged"] == 2
    app = data["targets"][0]["packages"][0]
    assert (app["name"], app["kind"], app["flagged"]) == ("app", "changed", True)
    assert [s["field"] for s in app["sources"]] == ["index", "url", "hash"]


def git_lock(target: str, commit: str, version: str = "2024.8") -> Lock:
    unsloth = LockedPackage(
        name=canonicalize_name("unsloth"),
        version=Version(version),
        vcs=VcsSource(
            url="https://github.com/unslothai/unsloth.git",
            requested_revision=None,
            commit_id=commit,
        ),
        phase="unsloth",
        required_by=("<spec>",),
    )
    return Lock(
        target=target,
        requires_python="==3.11.*",
        environments=(),
        packages=(unsloth,),
        phases=(LockedPhase(name="unsloth"),),
        inputs={},
    )


def test_git_commit_change_and_divergence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    one, two = "1" * 40, "2" * 40
    write_lock(lock_path(project, "linux-x86_64"), git_lock("linux-x86_64", one))
    write_lock(lock_path(project, "windows-x86_64"), git_lock("windows-x86_64", one))
    commit_all(project)
    write_lock(lock_path(project, "linux-x86_64"), git_lock("linux-x86_64", two))
    write_lock(lock_path(project, "windows-x86_64"), git_lock("windows-x86_64", two, "2026.10.9"))
    assert diff(project) == 0
    assert capsys.readouterr().out == (
        f"HEAD ({head(project)}) → working tree: 2 targets changed, 1 upgraded, 1 changed, "
        "1 major, 2 flagged source changes, 1 diverging across targets\n"
        "linux-x86_64: 1 changed\n"
        "  ~ unsloth 2024.8 (same version)  [phase unsloth]  SOURCE CHANGED\n"
        f"      commit: {one} → {two}  FLAGGED\n"
        "windows-x86_64: 1 upgraded\n"
        "  ↑ unsloth 2024.8 → 2026.10.9  [phase unsloth]  MAJOR  SOURCE CHANGED\n"
        f"      commit: {one} → {two}  FLAGGED\n"
        "across targets:\n"
        "  unsloth: 2024.8 on linux-x86_64; 2026.10.9 on windows-x86_64  (new)\n"
    )


def test_target_added_and_removed(
    project: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_all(project)
    # macOS gets a newer numpy: only that platform has a wheel of it
    index_server.add_wheel("numpy", "1.26.5", tag="cp311-cp311-macosx_11_0_arm64")
    spec = spec_text({"pypi": index_server.url}, PHASES, targets=["linux-x86_64", "macos-arm64"])
    (project / "envspec.toml").write_text(spec)
    assert lock(project) == 0
    lock_path(project, "windows-x86_64").unlink()
    capsys.readouterr()
    assert diff(project, "--exit-code") == 1
    assert capsys.readouterr().out == (
        f"HEAD ({head(project)}) → working tree: 2 targets changed, 3 added, 3 removed, "
        "1 diverging across targets\n"
        "linux-x86_64: unchanged\n"
        "macos-arm64: target added (3 packages)\n"
        "  + app 1.0  [phase app]\n"
        "  + numpy 1.26.5  [phase numpy]\n"
        "  + six 1.16.0  [phase app]\n"
        "  phase numpy: added +numpy\n"
        "  phase app: added +app +six\n"
        "windows-x86_64: target removed (3 packages)\n"
        "  - app 1.0  [phase app]\n"
        "  - numpy 1.26.4  [phase numpy]\n"
        "  - six 1.16.0  [phase app]\n"
        "  phase numpy: removed -numpy\n"
        "  phase app: removed -app -six\n"
        "across targets:\n"
        "  numpy: 1.26.4 on linux-x86_64; 1.26.5 on macos-arm64  (new)\n"
    )
    assert diff(project, "--format", "markdown") == 0
    assert capsys.readouterr().out == (
        f"**envspec lock diff** `HEAD ({head(project)})` → `working tree`: 2 targets changed, "
        "3 added, 3 removed, 1 diverging across targets\n"
        "\n"
        "### macos-arm64 — target added (3 packages)\n"
        "\n"
        "| | package | old | new | phase | notes |\n"
        "|---|---|---|---|---|---|\n"
        "| + | app |  | 1.0 | app |  |\n"
        "| + | numpy |  | 1.26.5 | numpy |  |\n"
        "| + | six |  | 1.16.0 | app |  |\n"
        "\n"
        "- phase numpy: added +numpy\n"
        "- phase app: added +app +six\n"
        "\n"
        "### windows-x86_64 — target removed (3 packages)\n"
        "\n"
        "| | package | old | new | phase | notes |\n"
        "|---|---|---|---|---|---|\n"
        "| - | app | 1.0 |  | app |  |\n"
        "| - | numpy | 1.26.4 |  | numpy |  |\n"
        "| - | six | 1.16.0 |  | app |  |\n"
        "\n"
        "- phase numpy: removed -numpy\n"
        "- phase app: removed -app -six\n"
        "\n"
        "Unchanged: linux-x86_64\n"
        "\n"
        "### Versions that differ across targets\n"
        "\n"
        "| package | linux-x86_64 | macos-arm64 | |\n"
        "|---|---|---|---|\n"
        "| numpy | 1.26.4 | 1.26.5 | new |\n"
    )


def test_two_lock_folders_and_two_files(
    project: Path, tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old-locks"
    (project / "locks").rename(old)
    index_server.add_wheel("six", "1.17.0")
    assert lock(project) == 0
    capsys.readouterr()
    new = project / "locks"
    assert diff(project, str(old), str(new)) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{old} → {new}: 2 targets changed, 2 upgraded"
    assert "  ↑ six 1.16.0 → 1.17.0  [phase app]" in out
    linux = "pylock.linux-x86_64.toml"
    assert diff(project, str(old / linux), str(new / linux), "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["target"] for t in data["targets"]] == ["linux-x86_64"]
    assert data["summary"]["upgraded"] == 1
    assert diff(project, str(old)) == 0  # one path: compared with the project's locks/
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{old} → working tree: 2 targets changed, 2 upgraded"
    )


def test_json_events_with_global_json_flag(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_all(project)
    assert diff(project, "--json") == 0
    event = json.loads(capsys.readouterr().out)
    assert (event["event"], event["changed"]) == ("diff", False)


# --- bad input -----------------------------------------------------------------------------


def test_unknown_revision(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit_all(project)
    assert diff(project, "nope") == 2
    assert capsys.readouterr().err == (
        f"error: {project}: unknown revision 'nope'\n"
        "hint: give a commit, branch or tag, e.g. HEAD~1 or main\n"
    )


def test_a_repository_without_commits_says_so(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(project, "init", "-q", "-b", "main")
    assert diff(project) == 2
    assert capsys.readouterr().err == (
        f"error: {project}: the repository has no commits yet: there is no revision 'HEAD' "
        "to compare with\n"
        "hint: commit locks/ first, or compare two lock folders or files: envspec diff OLD NEW\n"
    )


def test_not_a_git_repository(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert diff(project) == 2
    assert capsys.readouterr().err == (
        f"error: {project}: not a git repository\n"
        "hint: compare two lock folders or files instead: envspec diff OLD NEW\n"
    )


def test_unknown_target(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit_all(project)
    assert diff(project, "--target", "linux-x86") == 2
    assert capsys.readouterr().err == (
        "error: --target: unknown target 'linux-x86'\nhint: did you mean 'linux-x86_64'?\n"
    )
    # a real target no lock is of: it said "unknown target"
    assert diff(project, "--target", "linux-aarch64") == 2
    assert capsys.readouterr().err == (
        "error: --target: no lock of target 'linux-aarch64' on either side\n"
        "hint: targets in the locks: linux-x86_64, windows-x86_64\n"
    )


def test_no_locks_anywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "README").write_text("x")
    commit_all(project)
    assert diff(project) == 3
    assert capsys.readouterr().err == (
        f"error: {project / 'locks'}: no lock files\nhint: run 'envspec lock' to write them\n"
    )


def test_missing_lock_folder_argument(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gone = project / "gone"
    assert diff(project, str(gone), str(project / "locks")) == 2
    assert capsys.readouterr().err == (
        f"error: {gone}: no such lock file or folder\nhint: give a lock file or a folder\n"
    )


def test_project_in_a_subfolder_of_the_repository(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    project = repo / "envs" / "trainer"
    project.mkdir(parents=True)
    index_server.add_wheel("numpy", "1.26.4")
    index_server.add_wheel("app", "1.0", requires_dist=["numpy>=1.20", "six"])
    index_server.add_wheel("six", "1.16.0")
    (project / "envspec.toml").write_text(spec_text({"pypi": index_server.url}, PHASES))
    assert lock(project) == 0
    commit_all(repo)
    index_server.add_wheel("six", "1.17.0")
    assert lock(project, "--upgrade") == 0
    capsys.readouterr()
    assert diff(project, "--target", "linux-x86_64") == 0
    assert "  ↑ six 1.16.0 → 1.17.0  [phase app]\n" in capsys.readouterr().out


# --- the pure comparison -------------------------------------------------------------------


def pin(name: str, version: str, **fields: object) -> LockedPackage:
    return LockedPackage(name=canonicalize_name(name), version=Version(version), **fields)  # type: ignore[arg-type]


def one_lock(*packages: LockedPackage) -> Lock:
    return Lock(
        target="linux-x86_64",
        requires_python="==3.11.*",
        environments=(),
        packages=packages,
        phases=(LockedPhase(name="p"),),
        inputs={},
    )


def wheel(filename: str, sha: str, host: str = "https://files.example") -> Artifact:
    return Artifact(filename=filename, url=f"{host}/{filename}", kind="wheel", sha256=sha)


def test_a_new_wheel_tag_at_the_same_version_is_reported_not_flagged() -> None:
    old = pin("x", "1.0", index="https://i/", artifact=wheel("x-1.0-cp311-manylinux_2_17.whl", "a"))
    new = pin("x", "1.0", index="https://i/", artifact=wheel("x-1.0-cp311-manylinux_2_28.whl", "b"))
    change = package_change(old, new)
    assert change is not None
    assert (change.kind, change.flagged, [s.field for s in change.sources]) == (
        "changed",
        False,
        ["file"],
    )


def test_downgrade_and_a_switch_to_git_is_flagged() -> None:
    old = pin("x", "2.0", index="https://i/", artifact=wheel("x-2.0-py3-none-any.whl", "a"))
    vcs = VcsSource(url="https://git.example/x.git", requested_revision="main", commit_id="c" * 40)
    new = pin("x", "1.5", vcs=vcs)
    change = package_change(old, new)
    assert change is not None
    assert (change.kind, change.major, change.flagged) == ("downgraded", True, True)
    assert [s.field for s in change.sources] == ["index", "source"]


def test_an_upgrade_from_another_host_is_flagged() -> None:
    old = pin("x", "1.0", index="https://i/", artifact=wheel("x-1.0-py3-none-any.whl", "a"))
    new = pin(
        "x",
        "1.1",
        index="https://i/",
        artifact=wheel("x-1.1-py3-none-any.whl", "b", "https://evil"),
    )
    change = package_change(old, new)
    assert change is not None
    assert [(s.field, s.old, s.new) for s in change.sources] == [
        ("host", "https://files.example", "https://evil")
    ]
    same = diff_locks({"linux-x86_64": one_lock(old)}, {"linux-x86_64": one_lock(old)})
    assert not same.has_changes


def test_text_is_coloured_for_a_terminal() -> None:
    old = pin("x", "1.0", index="https://a/", artifact=wheel("x-1.0-py3-none-any.whl", "a"))
    new = pin("x", "1.0", index="https://b/", artifact=wheel("x-1.0-py3-none-any.whl", "a"))
    result = diff_locks({"linux-x86_64": one_lock(old)}, {"linux-x86_64": one_lock(new)})
    plain = render_text(result)
    coloured = render_text(result, color=True)
    assert "\x1b" not in plain
    assert "\x1b[1;31m~ x 1.0 (same version)  SOURCE CHANGED\x1b[0m" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_a_change_of_the_rules_a_lock_records_is_shown_though_no_pin_moved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """This repository's Windows lock, its rules table edited: one rule gone, one rule's text
    changed and one moved to another source, one new."""
    old, new = tmp_path / "old", tmp_path / "new"
    for folder in (old, new):
        folder.mkdir()
    name = "pylock.windows-x86_64-cu121.toml"
    text = (ROOT / "locks" / name).read_text()
    (old / name).write_text(text)
    triton = "https://github.com/woct0rdho/triton-windows/blob/66361c03af0b1e1c18f8ee2f7050a23911c949f8/README.md"
    edited = text.replace(
        '    {id = "torch-numpy-windows", sha256 = "d74174c7f4d75c2e", source = '
        '"https://github.com/pytorch/pytorch/issues/131668"},\n',
        '    {id = "new-rule", sha256 = "0123456789abcdef", source = "project"},\n',
    ).replace('sha256 = "3e36bbc0be9eeaa4"', 'sha256 = "3e36bbc0be9eeaa5"')
    edited = edited.replace(
        f'{{id = "triton-windows-torch", sha256 = "0b3fac6a1ec4a403", source = "{triton}"}}',
        '{id = "triton-windows-torch", sha256 = "0b3fac6a1ec4a403", source = "project"}',
    )
    assert edited.count('source = "project"') == 2
    (new / name).write_text(edited)
    assert main(["diff", str(old / name), str(new / name)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{old / name} → {new / name}: 1 target changed",
        "windows-x86_64.cu121: rules changed",
        "  rule new-rule: added (project)",
        "  rule torch-numpy-windows: removed (https://github.com/pytorch/pytorch/issues/131668)",
        f"  rule torch-triton-windows: changed ({triton})",
        f"  rule triton-windows-torch: changed (project, from {triton})",
    ]
    assert main(["diff", str(old / name), str(new / name), "--format", "json"]) == 0
    [target] = json.loads(capsys.readouterr().out)["targets"]
    assert target["status"] == "changed"
    assert [(r["id"], r["status"]) for r in target["rules"]] == [
        ("new-rule", "added"),
        ("torch-numpy-windows", "removed"),
        ("torch-triton-windows", "changed"),
        ("triton-windows-torch", "changed"),
    ]
    assert main(["diff", str(old / name), str(old / name)]) == 0
    assert "no changes" in capsys.readouterr().out.splitlines()[0]


def test_an_edited_marker_requires_python_and_environments_are_shown(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a relock would undo and a sync honours: a package's own marker and requires-python
    (envspec writes neither), the lock's environments and requires-python."""
    commit_all(project)
    path = lock_path(project, "linux-x86_64")
    text = path.read_text()
    edited = text.replace(
        'name = "six"\nversion = "1.16.0"\n',
        'name = "six"\nversion = "1.16.0"\nmarker = "python_version < \'3.0\'"\n'
        'requires-python = ">=3.12"\n',
    ).replace('requires-python = "==3.11.*"', 'requires-python = ">=3.11"')
    edited = edited.replace(
        "environments = [\"sys_platform == 'linux' and platform_machine == 'x86_64'\"]",
        "environments = [\"sys_platform == 'linux'\", \"sys_platform == 'darwin'\"]",
    )
    assert edited.count(">=3.1") == 2 and "darwin" in edited
    path.write_text(edited)
    assert diff(project) == 0
    assert capsys.readouterr().out == (
        f"HEAD ({head(project)}) → working tree: 1 target changed, 1 changed, "
        "4 condition changes\n"
        "linux-x86_64: 1 changed, environments and requires-python changed\n"
        "  environments: sys_platform == 'linux' and platform_machine == 'x86_64' → "
        "sys_platform == 'linux' or sys_platform == 'darwin'\n"
        "  requires-python: ==3.11.* → >=3.11\n"
        "  ~ six 1.16.0 (same version)  [phase app]  CONDITION CHANGED\n"
        "      marker: - → python_version < '3.0'\n"
        "      requires-python: - → >=3.12\n"
        "windows-x86_64: unchanged\n"
    )
    assert diff(project, "--format", "markdown") == 0
    assert capsys.readouterr().out == (
        f"**envspec lock diff** `HEAD ({head(project)})` → `working tree`: 1 target changed, "
        "1 changed, 4 condition changes\n"
        "\n"
        "### linux-x86_64 — 1 changed, environments and requires-python changed\n"
        "\n"
        "- 🚩 environments: `sys_platform == 'linux' and platform_machine == 'x86_64'` → "
        "`sys_platform == 'linux' or sys_platform == 'darwin'`\n"
        "- 🚩 requires-python: `==3.11.*` → `>=3.11`\n"
        "\n"
        "| | package | old | new | phase | notes |\n"
        "|---|---|---|---|---|---|\n"
        "| 🚩 | **six** | 1.16.0 | 1.16.0 | app | 🚩 marker: `-` → `python_version < '3.0'`"
        "<br>🚩 requires-python: `-` → `>=3.12` |\n"
        "\n"
        "Unchanged: windows-x86_64\n"
    )
    assert diff(project, "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["conditions"] == 4
    [linux] = [t for t in data["targets"] if t["target"] == "linux-x86_64"]
    assert linux["conditions"] == [
        {
            "field": "environments",
            "old": "sys_platform == 'linux' and platform_machine == 'x86_64'",
            "new": "sys_platform == 'linux' or sys_platform == 'darwin'",
        },
        {"field": "requires-python", "old": "==3.11.*", "new": ">=3.11"},
    ]
    assert linux["packages"][0]["conditions"] == [
        {"field": "marker", "old": None, "new": "python_version < '3.0'"},
        {"field": "requires-python", "old": None, "new": ">=3.12"},
    ]


def test_an_added_package_shows_its_own_conditions() -> None:
    """Only `+ six 1.17.0` was shown, though its requires-python made every sync refuse the
    lock: a package's conditions are news when it is new too."""
    old = pin("x", "1.0", index="https://i/", artifact=wheel("x-1.0-py3-none-any.whl", "a"))
    added = pin(
        "six", "1.17.0", index="https://i/", artifact=wheel("six-1.17.0-py3-none-any.whl", "b"),
        requires_python=">=3.12", phase="p",
    )  # fmt: skip
    result = diff_locks({"linux-x86_64": one_lock(old)}, {"linux-x86_64": one_lock(old, added)})
    assert render_text(result).splitlines()[1:] == [
        "linux-x86_64: 1 added",
        "  + six 1.17.0  [phase p]  CONDITION CHANGED",
        "      requires-python: - → >=3.12",
        "  phase p: +six",
    ]
    assert to_json(result)["summary"]["conditions"] == 1
