"""What the spec says about sources, beyond the scenario files: `[resolution] no-build` for
direct sdist archives and git sources (a cached build does not get around it), and optional
phases whose direct references cannot be had (skipped, except for `--offline`). Exact
messages; a failed lock writes nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from envspec.cli import main
from envspec.index.cache import Cache
from support.gitrepo import make_backend_sdist, make_git_package
from support.index_server import IndexServer

LINUX = "linux-x86_64"
NO_BUILD_HINT = (
    "hint: declare its metadata in [[resolution.dependency-metadata]] (name, version, "
    "requires-dist), so nothing is built"
)


def write_spec(root: Path, url: str, phases: list[dict[str, Any]], extra: str = "") -> Path:
    """A one-target spec with `phases` (name, requirements, optional) and `extra` appended."""
    project = root / "project"
    project.mkdir(exist_ok=True)
    text = (
        f'[environment]\nname = "t"\npython = "3.11"\ntargets = ["{LINUX}"]\n\n'
        f'[indexes]\npypi = "{url}"\n'
    )
    for phase in phases:
        listed = ", ".join(f"'{r}'" for r in phase["requirements"])
        text += f'\n[[phases]]\nname = "{phase["name"]}"\nrequirements = [{listed}]\n'
        if phase.get("optional"):
            text += "optional = true\n"
    (project / "envspec.toml").write_text(text + extra)
    return project


def lock(project: Path, *args: str) -> int:
    return main(["lock", "--project", str(project), "--cache-dir", str(project / ".cache"), *args])


def read_lock(project: Path) -> dict[str, Any]:
    return tomllib.loads((project / "locks" / f"pylock.{LINUX}.toml").read_text())


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(("error:", "hint:"))]


# -- no-build -----------------------------------------------------------------------------------


def test_no_build_refuses_a_direct_sdist_that_needs_a_build(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sdist = make_backend_sdist(tmp_path / "dists", "legacy", "0.5", dependencies=["six"])
    no_build = '\n[resolution]\nno-build = [":all:"]\n'
    main_phase = {"name": "main", "requirements": [f"legacy @ {sdist.as_uri()}"]}
    project = write_spec(tmp_path, index_server.url, [main_phase], no_build)
    assert lock(project) == 1
    assert errors(capsys.readouterr().err) == [
        f"error: phases[0].requirements[0]: legacy ({sdist.as_uri()}): its metadata needs a "
        "PEP 517 build, but [resolution] no-build lists ':all:'",
        NO_BUILD_HINT,
    ]
    assert not (project / "locks").exists()


def test_no_build_with_declared_metadata_but_no_version(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sdist = make_backend_sdist(tmp_path / "dists", "legacy", "0.5")
    declared = (
        '\n[resolution]\nno-build = ["legacy"]\n\n[[resolution.dependency-metadata]]\n'
        'name = "legacy"\nrequires-dist = []\n'
    )
    main_phase = {"name": "main", "requirements": [f"legacy @ {sdist.as_uri()}"]}
    project = write_spec(tmp_path, index_server.url, [main_phase], declared)
    assert lock(project) == 1
    assert errors(capsys.readouterr().err) == [
        f"error: phases[0].requirements[0]: legacy ({sdist.as_uri()}): its metadata needs a "
        "PEP 517 build, but [resolution] no-build lists 'legacy'",
        "hint: add its version to the [[resolution.dependency-metadata]] entry for legacy, "
        "so nothing is built",
    ]
    with_version = declared.replace('name = "legacy"\n', 'name = "legacy"\nversion = "0.5"\n')
    (project / "envspec.toml").write_text(
        (project / "envspec.toml").read_text().replace(declared, with_version)
    )
    assert lock(project) == 0
    assert [(p["name"], p["version"]) for p in read_lock(project)["packages"]] == [
        ("legacy", "0.5")
    ]


def test_no_build_of_other_names_still_builds(tmp_path: Path, index_server: IndexServer) -> None:
    index_server.add_wheel("six", "1.16.0")
    sdist = make_backend_sdist(tmp_path / "dists", "legacy", "0.5", dependencies=["six"])
    main_phase = {"name": "main", "requirements": [f"legacy @ {sdist.as_uri()}"]}
    no_build = '\n[resolution]\nno-build = ["six"]\n'
    project = write_spec(tmp_path, index_server.url, [main_phase], no_build)
    assert lock(project) == 0
    assert {p["name"] for p in read_lock(project)["packages"]} == {"legacy", "six"}


def test_no_build_is_not_bypassed_by_a_cached_build(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    index_server.add_wheel("six", "1.16.0")
    repo = tmp_path / "repo"
    commit = make_git_package(repo, "pkg", "1.0", dependencies=["six"])  # dynamic: a build
    url = f"git+file://{repo}@{commit}"
    main_phase = {"name": "main", "requirements": [f"pkg @ {url}"]}
    project = write_spec(tmp_path, index_server.url, [main_phase])
    assert lock(project) == 0
    assert Cache(project / ".cache").load_metadata(f"git-built:{commit}") is not None
    before = (project / "locks" / f"pylock.{LINUX}.toml").read_bytes()
    spec = project / "envspec.toml"
    spec.write_text(spec.read_text() + '\n[resolution]\nno-build = ["pkg"]\n')
    capsys.readouterr()
    assert lock(project) == 1
    assert errors(capsys.readouterr().err) == [
        f"error: phases[0].requirements[0]: pkg ({url}): its metadata needs a PEP 517 build, "
        "but [resolution] no-build lists 'pkg'",
        NO_BUILD_HINT,
    ]
    assert (project / "locks" / f"pylock.{LINUX}.toml").read_bytes() == before


# -- optional phases and failing sources --------------------------------------------------------


def test_optional_phase_with_an_unreachable_archive_is_skipped(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    index_server.add_wheel("six", "1.16.0")
    gone = index_server.file_url("gone-1.0-py3-none-any.whl")  # never published: HTTP 404
    phases = [
        {"name": "main", "requirements": ["six"]},
        {"name": "extra", "optional": True, "requirements": [f"gone @ {gone}"]},
    ]
    project = write_spec(tmp_path, index_server.url, phases)
    assert lock(project) == 0
    reason = f"phases[1].requirements[0]: GET {gone} failed: HTTP 404"
    assert f"WARNING: optional phase 'extra' skipped on {LINUX}: {reason}" in (
        capsys.readouterr().err.splitlines()
    )
    doc = read_lock(project)
    assert [p["name"] for p in doc["packages"]] == ["six"]
    skipped = {p["name"]: p.get("skipped") for p in doc["tool"]["envspec"]["phases"]}
    assert skipped == {"main": None, "extra": reason}


def test_offline_never_skips_an_optional_phase(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    index_server.add_wheel("six", "1.16.0")
    repo = tmp_path / "repo"
    make_git_package(repo, "pkg", "1.0", static=True)
    phases = [
        {"name": "main", "requirements": ["six"]},
        {"name": "extra", "optional": True, "requirements": [f"pkg @ git+file://{repo}@main"]},
    ]
    project = write_spec(tmp_path, index_server.url, phases)
    assert lock(project) == 0  # fills the cache for six
    (project / "locks" / f"pylock.{LINUX}.toml").unlink()
    capsys.readouterr()
    # A lock made offline must not record a phase as skipped for what the cache lacked.
    assert lock(project, "--offline") == 1
    assert errors(capsys.readouterr().err) == [
        f"error: phases[1].requirements[0]: offline: git+file://{repo}@main needs "
        "'git ls-remote' to find its commit",
        "hint: run without --offline",
    ]
    assert not (project / "locks" / f"pylock.{LINUX}.toml").exists()
