"""Direct references and source builds while locking, beyond the scenario files: git over the
git protocol (a `git daemon` on 127.0.0.1), archive URLs and local archives, caches keyed by
commit and by sdist hash, credentials kept out of locks, and the exact messages of bad input
(each leaving nothing written)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from envspec.cli import main
from envspec.errors import MetadataError
from envspec.index.cache import Cache
from envspec.index.direct import parse_direct
from envspec.index.project import load_static_metadata
from support.envproject import clean_environ
from support.gitrepo import git_daemon, make_backend_sdist, make_git_package
from support.index_server import IndexServer

LINUX = "linux-x86_64"


def write_spec(
    root: Path, url: str, requirements: list[str], extra: str = "", *, more: list[str] = ()
) -> Path:
    """A one-target spec: phase `main` with `requirements`, phase `more` when given."""
    project = root / "project"
    project.mkdir(exist_ok=True)
    text = (
        f'[environment]\nname = "t"\npython = "3.11"\ntargets = ["{LINUX}"]\n\n'
        f'[indexes]\npypi = "{url}"\n'
    )
    for name, reqs in (("main", requirements), ("more", more)):
        if reqs:
            listed = ", ".join(f"'{r}'" for r in reqs)
            text += f'\n[[phases]]\nname = "{name}"\nrequirements = [{listed}]\n'
    (project / "envspec.toml").write_text(text + extra)
    return project


def lock(project: Path, *args: str) -> int:
    return main(["lock", "--project", str(project), "--cache-dir", str(project / ".cache"), *args])


def packages(project: Path) -> dict[str, dict[str, Any]]:
    doc = tomllib.loads((project / "locks" / f"pylock.{LINUX}.toml").read_text())
    return {p["name"]: p for p in doc["packages"]}


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(("error:", "hint:"))]


# -- git --------------------------------------------------------------------------------------


def test_git_protocol_tag_locks_the_tagged_commit(
    tmp_path: Path, index_server: IndexServer
) -> None:
    index_server.add_wheel("six", "1.16.0")
    repos = tmp_path / "served"
    tagged = make_git_package(
        repos / "pkg", "pkg", "1.0", static=True, dependencies=["six"], tag="v1.0"
    )
    make_git_package(repos / "pkg", "pkg", "1.1", static=True)  # the branch moves on
    with git_daemon(repos) as base:
        project = write_spec(tmp_path, index_server.url, [f"pkg @ git+{base}pkg@v1.0"])
        assert lock(project) == 0
    pkg = packages(project)["pkg"]
    assert pkg["version"] == "1.0"
    assert pkg["vcs"] == {
        "type": "git",
        "url": f"{base}pkg",
        "requested-revision": "v1.0",
        "commit-id": tagged,
    }
    assert "index" not in pkg and set(packages(project)) == {"pkg", "six"}


def test_git_protocol_missing_repository(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "served").mkdir()
    with git_daemon(tmp_path / "served") as base:
        project = write_spec(tmp_path, index_server.url, [f"pkg @ git+{base}nothing"])
        assert lock(project) == 1
    assert errors(capsys.readouterr().err) == [
        f"error: phases[0].requirements[0]: git+{base}nothing: cannot read the repository: "
        "remote error: no such repository: /nothing",
        "hint: check the URL and that you have access to it",
    ]
    assert not (project / "locks").exists()


def test_metadata_and_checkout_are_cached_by_commit(
    tmp_path: Path, index_server: IndexServer
) -> None:
    repo = tmp_path / "repo"
    commit = make_git_package(repo, "pkg", "1.0")  # dynamic: a build
    project = write_spec(tmp_path, index_server.url, [f"pkg @ git+file://{repo}@{commit}"])
    assert lock(project) == 0
    assert (project / ".cache" / "v1" / "git" / commit / "backend.py").is_file()
    assert Cache(project / ".cache").load_metadata(f"git-built:{commit}") is not None
    shutil.rmtree(repo)  # neither the repository nor a build is needed again
    shutil.rmtree(project / "locks")
    assert lock(project) == 0
    assert packages(project)["pkg"]["vcs"]["commit-id"] == commit


def test_build_failure_hint_carries_the_backend_output(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    commit = make_git_package(repo, "pkg", "1.0", fail="no compiler found")
    project = write_spec(tmp_path, index_server.url, [f"pkg @ git+file://{repo}"])
    assert lock(project) == 1
    err = capsys.readouterr().err.splitlines()
    start = err.index("hint: backend output (last lines):")
    assert err[start - 1] == (
        f"error: phases[0].requirements[0]: git+file://{repo} ({commit[:12]}): "
        "metadata build failed: RuntimeError: no compiler found"
    )
    assert "    raise RuntimeError(FAIL)" in err[start + 1 :]
    assert err[-1] == "RuntimeError: no compiler found"
    assert not (project / "locks").exists()


def test_a_backends_warnings_are_logged_for_debugging_not_printed(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """setuptools' license-classifier notice, which pyproject-hooks gives again in the caller,
    was printed on stderr before the summary, with its source line."""
    repo = tmp_path / "repo"
    commit = make_git_package(repo, "pkg", "1.0", warn="License classifiers are deprecated.")
    project = write_spec(tmp_path, index_server.url, [f"pkg @ git+file://{repo}"])
    cache = str(project / ".cache")
    done = subprocess.run(  # as users run it: pytest would catch a warning printed in-process
        [sys.executable, "-m", "envspec", "lock", "--project", str(project), "--cache-dir", cache],
        capture_output=True, text=True, env=clean_environ(), check=False,
    )  # fmt: skip
    assert done.returncode == 0
    assert re.sub(r"in \d+\.\d+s", "in Ns", done.stderr) == (
        "linux-x86_64: 1 package (new lock), wrote locks/pylock.linux-x86_64.toml in Ns\n"
    )  # nothing before the summary
    shutil.rmtree(project / ".cache")
    shutil.rmtree(project / "locks")
    assert lock(project, "-vv") == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "deprecated" in line]
    assert warned == [
        f"DEBUG: git+file://{repo} ({commit[:12]}): the build backend warned: License classifiers "
        "are deprecated."
    ]


def test_credentials_in_a_git_url_never_reach_the_lock(
    tmp_path: Path, index_server: IndexServer
) -> None:
    sha = "015bdef0d94a241bcd94eec7a405b1700632180d"
    url = f"git+https://user:s3cret@127.0.0.1:9/org/pkg.git@{sha}"
    declared = (
        '\n[[resolution.dependency-metadata]]\nname = "pkg"\nversion = "1.0"\nrequires-dist = []\n'
    )
    project = write_spec(tmp_path, index_server.url, [f"pkg @ {url}"], declared)
    assert lock(project) == 0
    assert packages(project)["pkg"]["vcs"]["url"] == "https://127.0.0.1:9/org/pkg.git"
    assert "s3cret" not in (project / "locks" / f"pylock.{LINUX}.toml").read_text()


def test_a_branch_needs_the_network_when_offline(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    make_git_package(repo, "pkg", "1.0", static=True)
    project = write_spec(tmp_path, index_server.url, [f"pkg @ git+file://{repo}@main"])
    assert lock(project, "--offline") == 1
    assert errors(capsys.readouterr().err) == [
        f"error: phases[0].requirements[0]: offline: git+file://{repo}@main needs "
        "'git ls-remote' to find its commit",
        "hint: run without --offline",
    ]


def test_one_name_from_two_urls(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_git_package(a, "pkg", "1.0", static=True)
    make_git_package(b, "pkg", "1.0", static=True)
    project = write_spec(
        tmp_path, index_server.url, [f"pkg @ git+file://{a}"], more=[f"pkg[x] @ git+file://{b}"]
    )
    assert lock(project) == 1
    assert errors(capsys.readouterr().err) == [
        f"error: pkg is required from two URLs: git+file://{a} (phases[0].requirements[0]) "
        f"and git+file://{b} (phases[1].requirements[0])",
        "hint: require it from one URL in every phase",
    ]


def test_a_repository_holding_another_package(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    make_git_package(repo, "other", "2.0", static=True)
    project = write_spec(tmp_path, index_server.url, [f"pkg @ git+file://{repo}"])
    assert lock(project) == 1
    assert errors(capsys.readouterr().err) == [
        f"error: phases[0].requirements[0]: git+file://{repo} holds other 2.0, not pkg"
    ]


# -- archives and sdists ----------------------------------------------------------------------


def test_archive_urls_lock_their_files(tmp_path: Path, index_server: IndexServer) -> None:
    index_server.add_wheel("six", "1.16.0")
    wheel = index_server.add_wheel("tool", "2.0", requires_dist=["six"])
    local = make_backend_sdist(tmp_path / "dists", "legacy", "0.5", dependencies=["six"])
    url = index_server.file_url(wheel.name)
    project = write_spec(
        tmp_path, index_server.url, [f"tool @ {url}", f"legacy @ {local.as_uri()}"]
    )
    assert lock(project) == 0
    found = packages(project)
    assert set(found) == {"tool", "legacy", "six"}
    assert found["tool"]["wheels"][0]["url"] == url
    assert found["tool"]["wheels"][0]["hashes"]["sha256"] == index_server.entry(wheel.name).sha256
    assert "index" not in found["tool"]
    assert found["legacy"]["sdist"]["url"] == local.as_uri()
    assert found["legacy"]["tool"]["envspec"]["required-by"] == ["<spec>"]


def test_an_archive_named_otherwise_than_name_version_locks_and_loads(
    tmp_path: Path, index_server: IndexServer
) -> None:
    """A direct reference's archive keeps its own file name (a GitHub `archive/main.tar.gz`,
    a `.tar.bz2`): the lock holds it, and every command reads that lock back."""
    index_server.add_wheel("six", "1.16.0")
    built = make_backend_sdist(tmp_path / "dists", "legacy", "0.5", dependencies=["six"])
    archive = built.rename(built.with_name("main.tar.gz"))
    project = write_spec(tmp_path, index_server.url, [f"legacy @ {archive.as_uri()}"])
    assert lock(project) == 0
    assert packages(project)["legacy"]["sdist"]["name"] == "main.tar.gz"
    assert lock(project, "--check") == 0  # loads the lock


def test_a_local_folder_is_refused(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    project = write_spec(tmp_path, index_server.url, [f"pkg @ {folder.as_uri()}"])
    assert lock(project) == 1
    assert errors(capsys.readouterr().err) == [
        f"error: phases[0].requirements[0]: {folder.as_uri()}: local folders cannot be locked "
        "(their content has no hash)",
        "hint: use git+file://… for a repository, or the URL of a built wheel or sdist",
    ]


def test_sdist_build_is_cached_by_its_hash(tmp_path: Path, index_server: IndexServer) -> None:
    index_server.add_wheel("six", "1.16.0")
    index_server.add(make_backend_sdist(tmp_path / "dists", "legacy", "1.0", dependencies=["six"]))
    project = write_spec(tmp_path, index_server.url, ["legacy"])
    assert lock(project) == 0
    assert set(packages(project)) == {"legacy", "six"}
    sha256 = index_server.entry("legacy-1.0.tar.gz").sha256
    assert Cache(project / ".cache").load_metadata(f"pep517:{sha256}") is not None


def test_missing_build_requirement(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sdist = make_backend_sdist(
        tmp_path / "dists", "broken", "1.0", backend="nosuch.api", requires=["nosuch-backend"]
    )
    index_server.add(sdist)
    project = write_spec(tmp_path, index_server.url, ["broken"])
    assert lock(project) == 1
    assert errors(capsys.readouterr().err)[0] == (
        "error: broken-1.0.tar.gz: cannot install its build requirements (nosuch-backend): "
        "Because nosuch-backend was not found in the package registry and you require "
        "nosuch-backend, we can conclude that your requirements are unsatisfiable."
    )
    assert not (project / "locks").exists()


def test_missing_backend_is_named_with_where_it_was_looked_for(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sdist = make_backend_sdist(tmp_path / "dists", "broken", "1.0", backend="missing.api")
    index_server.add(sdist)
    project = write_spec(tmp_path, index_server.url, ["broken"])
    assert lock(project) == 1
    assert errors(capsys.readouterr().err) == [
        "error: broken-1.0.tar.gz: build backend 'missing.api' is not available",
        "hint: it is looked for in its backend-path .",
    ]
    assert not (project / "locks").exists()


# -- pure parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "location", "revision"),
    [
        ("git+https://github.com/org/repo.git", "https://github.com/org/repo.git", None),
        ("git+https://github.com/org/repo.git@v1.2", "https://github.com/org/repo.git", "v1.2"),
        ("git+ssh://git@github.com/org/repo.git@main", "ssh://git@github.com/org/repo.git", "main"),
        ("git+file:///srv/repo@feature/x#egg=repo", "file:///srv/repo", "feature/x"),
    ],
)
def test_git_urls_parse(url: str, location: str, revision: str | None) -> None:
    ref = parse_direct(url)
    assert (ref.kind, ref.location, ref.revision) == ("git", location, revision)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("hg+https://x.org/repo", "hg+https://x.org/repo: only git sources are supported"),
        (
            "git+https://example.com/repo#subdirectory=pkg",
            "git+https://example.com/repo#subdirectory=pkg: git subdirectories are not supported",
        ),
        ("ftp://example.com/x.whl", "ftp://example.com/x.whl: unsupported URL scheme 'ftp'"),
        (
            "https://example.com/download",
            "https://example.com/download: not a wheel or an sdist (expected one of .whl, "
            ".tar.gz, .zip, .tgz, .tar.bz2, .tar.xz)",
        ),
    ],
)
def test_unsupported_urls(url: str, message: str) -> None:
    with pytest.raises(MetadataError) as caught:
        parse_direct(url)
    assert caught.value.message == message


def test_static_metadata_guards_extras_with_markers(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "Pkg"\nversion = "1.0"\nrequires-python = ">=3.9"\n'
        'dependencies = ["six"]\n[project.optional-dependencies]\n'
        'Colab_New = ["pkg[triton]", "tyro; python_version >= \'3.10\'"]\n'
    )
    data = load_static_metadata(tmp_path, "pkg")
    assert data is not None
    text = data.decode()
    assert "provides-extra: colab-new" in text
    assert 'requires-dist: pkg[triton]; extra == "colab-new"' in text
    assert 'requires-dist: tyro; python_version >= "3.10" and extra == "colab-new"' in text
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "pkg"\nversion = "1.0"\ndynamic = ["dependencies"]\n'
    )
    assert load_static_metadata(tmp_path, "pkg") is None
