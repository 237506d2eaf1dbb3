"""A lock entry that cannot be verified is refused when the lock is loaded, by every command
that reads it (exit 2, the entry's path in the lock, the exact message, nothing changed), and
no index or archive artifact is ever installed without its hash being checked."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from envspec.apply import uv
from envspec.apply.environment import Location, open_environment
from envspec.apply.events import Reporter
from envspec.apply.store import Files, store_at
from envspec.apply.sync import SyncSettings, sync
from envspec.cli import main
from envspec.errors import ApplyError
from envspec.index.download import LockedFiles
from envspec.lockfile import load_lock
from envspec.model import Index, LockedPackage, VcsSource
from support.envproject import EnvProject, corrupt
from support.gitrepo import make_git_package
from support.index_server import IndexServer

PHASES = [
    {"name": "one", "requirements": ["alpha"]},
    {"name": "two", "requirements": ["beta"]},
]
DAMAGED = "the lock was edited or damaged: restore it, or delete it and run 'envspec lock'"


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    """alpha synced (phase one); beta (phase two) locked, not yet installed."""
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    index_server.add_wheel("alpha", "1.0")
    index_server.add_wheel("beta", "1.0")
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    project.write_spec(PHASES)
    project.lock()
    assert project.run("sync", "--phase", "one") == 0
    return project


def _tamper(proj: EnvProject, old: str, new: str) -> None:
    text = proj.lock_file.read_text()
    assert text.count(old) == 1, old
    proj.lock_file.write_text(text.replace(old, new))


def _beta_sha(proj: EnvProject) -> str:
    package = load_lock(proj.lock_file).package("beta")
    assert package is not None and package.artifact is not None
    assert package.artifact.sha256 is not None
    return package.artifact.sha256


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        pytest.param(
            ('"SHA"', '""'),
            "packages[1].wheels[0].hashes.sha256: empty hash (expected 64 hexadecimal digits)",
            id="empty sha256",
        ),
        pytest.param(
            ('"SHA"', '"SHA0"'),
            "packages[1].wheels[0].hashes.sha256: invalid sha256 hash 'SHA0' (expected 64 "
            "hexadecimal digits)",
            id="65 digits",
        ),
        pytest.param(
            ('"http://HOST/files/beta', '"ftp://HOST/files/beta'),
            "packages[1].wheels[0].url: URL 'ftp://HOST/files/beta-1.0-py3-none-any.whl' has "
            "scheme 'ftp' (expected an http, https or file URL)",
            id="ftp",
        ),
    ],
)
def test_an_unverifiable_entry_is_refused_by_sync_check_and_export(
    proj: EnvProject,
    index_server: IndexServer,
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, str],
    refusal: str,
) -> None:
    host = index_server.url.split("//", 1)[1].split("/", 1)[0]
    sha = _beta_sha(proj)

    def fill(text: str) -> str:
        return text.replace("SHA", sha).replace("HOST", host)

    _tamper(proj, fill(change[0]), fill(change[1]))
    corrupt(index_server, "beta-1.0-py3-none-any.whl")  # what a server could send instead
    expected = [f"error: {proj.lock_file}: {fill(refusal)}", f"hint: {DAMAGED}"]
    freeze, snapshots = proj.freeze(), proj.snapshot_ids()
    output = proj.project / "exported.txt"
    capsys.readouterr()
    for command, *rest in (["sync"], ["check"], ["export", "-o", str(output)]):
        args = rest if command == "export" else ["--python", str(proj.env), *rest]
        code = main([command, "--project", str(proj.project), *args])
        assert code == 2, command
        assert capsys.readouterr().err.splitlines()[-2:] == expected, command
    assert proj.freeze() == freeze
    assert proj.snapshot_ids() == snapshots
    assert not output.exists()


def test_artifacts_are_installed_under_require_hashes_even_beside_a_git_source(
    proj: EnvProject, tmp_path: Path
) -> None:
    """A hand-built lock whose wheel has no hash, in a phase with a git source (which has
    none either): the sync refuses it before anything is changed, since the file cannot be
    verified. (Before, the phase ran without --require-hashes and installed whatever was
    served.)"""
    commit = make_git_package(tmp_path / "repo", "gitpkg", "0.1")
    lock = load_lock(proj.lock_file)
    beta = lock.package("beta")
    assert beta is not None and beta.artifact is not None
    unhashed = dataclasses.replace(beta, artifact=beta.artifact.with_(sha256=None))
    git = LockedPackage(
        name=canonicalize_name("gitpkg"), version=Version("0.1"), phase="two",
        required_by=("<spec>",),
        vcs=VcsSource(url=f"file://{tmp_path / 'repo'}", requested_revision=None,
                      commit_id=commit),
    )  # fmt: skip
    others = tuple(p for p in lock.packages if p.name != "beta")
    environ = dict(os.environ)
    env = open_environment(
        Location(root=proj.env, python=proj.python, creatable=False, source="--python"), environ
    )
    before = proj.freeze()
    options = uv.UvOptions(environ=environ, cache_dir=proj.cache / "uv")
    indexes = (Index(name="local", url=proj.server.url),)
    files = Files(
        store=store_at(proj.cache), downloader=lambda: LockedFiles(indexes, {}), offline=False
    )
    snapshots = sorted((proj.env / ".envspec" / "snapshots").glob("*.json"))
    with pytest.raises(ApplyError) as caught:
        bad = dataclasses.replace(lock, packages=(*others, unhashed, git))
        sync(env, bad, SyncSettings(), options, files=files, reporter=Reporter())
    assert caught.value.message == (
        "'beta-1.0-py3-none-any.whl' has no sha256 in the lock: it cannot be verified"
    )
    assert proj.freeze() == before
    assert sorted((proj.env / ".envspec" / "snapshots").glob("*.json")) == snapshots
    good = dataclasses.replace(lock, packages=(*others, beta, git))
    sync(env, good, SyncSettings(), options, files=files, reporter=Reporter())  # wheel + git
    assert [line.split(" ")[0].split("==")[0] for line in proj.freeze().splitlines()] == [
        "alpha", "beta", "gitpkg",
    ]  # fmt: skip
