"""Sources beyond index wheels: a git package installed at its locked commit (built by a real
PEP 517 backend from a local repository), and a phase built without build isolation against
what an earlier phase installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from envspec.lockfile import write_lock
from envspec.model import Artifact, Lock, LockedPackage, LockedPhase, VcsSource
from envspec.targets import make_target
from support.envproject import PYTHON, TARGET, EnvProject
from support.gitrepo import make_git_package
from support.index_server import IndexServer


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    index_server.add_wheel("alpha", "1.0")
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    return project


def _write(proj: EnvProject, repo: Path, commit: str, *, no_build_isolation: bool) -> None:
    """The spec, and its lock built by hand (the resolver's git support is separate work)."""
    url = f"file://{repo}"
    ext: dict[str, object] = {"name": "ext", "requirements": [f"gitpkg @ git+{url}"]}
    if no_build_isolation:
        ext["no-build-isolation"] = True
    proj.write_spec([{"name": "base", "requirements": ["alpha"]}, ext])
    entry = proj.server.entry("alpha-1.0-py3-none-any.whl")
    alpha = Artifact(
        filename=entry.filename,
        url=proj.server.file_url(entry.filename),
        kind="wheel",
        sha256=entry.sha256,
        size=entry.size,
    )
    lock = Lock(
        target=TARGET,
        requires_python=f"=={PYTHON}.*",
        environments=(make_target(TARGET, PYTHON).environment_marker(),),
        phases=(LockedPhase(name="base"), LockedPhase(name="ext")),
        packages=(
            LockedPackage(
                name=canonicalize_name("alpha"),
                version=Version("1.0"),
                index=proj.server.url,
                artifact=alpha,
                phase="base",
                required_by=("<spec>",),
            ),
            LockedPackage(
                name=canonicalize_name("gitpkg"),
                version=Version("0.1"),
                vcs=VcsSource(url=url, requested_revision=None, commit_id=commit),
                phase="ext",
                required_by=("<spec>",),
            ),
        ),
        inputs={},
    )
    write_lock(proj.lock_file, lock)


def test_a_git_package_installs_at_its_locked_commit(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    first = make_git_package(repo, "gitpkg", "0.1")
    second = make_git_package(repo, "gitpkg", "0.1")  # same version, a newer commit at HEAD
    _write(proj, repo, first, no_build_isolation=False)
    assert proj.run("sync") == 0
    assert f"gitpkg @ git+file://{repo}@{first}\n" in proj.freeze()
    _write(proj, repo, second, no_build_isolation=False)
    capsys.readouterr()
    assert proj.run("sync") == 0
    assert "  phase ext: reinstall gitpkg 0.1 → 0.1" in capsys.readouterr().err.splitlines()
    assert f"gitpkg @ git+file://{repo}@{second}\n" in proj.freeze()
    assert proj.run("check") == 0


def test_no_build_isolation_builds_against_earlier_phases(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    commit = make_git_package(repo, "gitpkg", "0.1", build_imports=["alpha"])
    _write(proj, repo, commit, no_build_isolation=False)
    assert proj.run("sync") == 1  # isolated, the build cannot see alpha: rolled back
    assert "No module named 'alpha'" in capsys.readouterr().err
    assert proj.freeze() == ""
    _write(proj, repo, commit, no_build_isolation=True)
    assert proj.run("sync") == 0
    assert f"gitpkg @ git+file://{repo}@{commit}\n" in proj.freeze()
