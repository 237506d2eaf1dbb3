"""`envspec sync --bundle PATH|URL` and `rollback --bundle`: every file from the bundle (a folder,
or a plain static server) and no other host, the lock's hashes the authority; a missing or
damaged file, a git source or an sdist is an error with nothing changed."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from envspec.cli import main
from support.envproject import TARGET, EnvProject, events
from support.gitrepo import make_git_package
from support.index_server import IndexServer
from support.static_server import StaticServer

PHASES = [
    {"name": "one", "requirements": ["alpha"]},
    {"name": "two", "requirements": ["beta"]},
]
ALPHA = "alpha-1.0-py3-none-any.whl"
BETA = "beta-1.0-py3-none-any.whl"
RETRY = "hint: nothing was changed; run the command again to retry (a partial download resumes)"


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.setenv("ENVSPEC_CONFIG", str(tmp_path / "no-config.toml"))
    index_server.add_wheel("alpha", "1.0", pad_bytes=50_000)
    index_server.add_wheel("beta", "1.0")
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    project.write_spec(PHASES)
    project.lock()
    return project


def make_bundle(proj: EnvProject, dest: Path) -> Path:
    args = ["--project", str(proj.project), "--cache-dir", str(proj.cache)]
    assert main(["bundle", str(dest), *args]) == 0
    proj.server.reset_counters()
    return dest


def sync(proj: EnvProject, bundle: str | Path, *rest: str, cache: Path | None = None) -> int:
    """A sync with a store of its own (a machine that never saw the index)."""
    cache = cache or proj.project.parent / "machine-cache"
    return main(
        ["sync", "--project", str(proj.project), "--python", str(proj.env),
         "--cache-dir", str(cache), "--bundle", str(bundle), *rest]
    )  # fmt: skip


def _unchanged(proj: EnvProject) -> None:
    assert proj.freeze() == ""
    assert proj.snapshot_ids() == []


def test_a_sync_from_a_bundle_folder_asks_no_index(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path
) -> None:
    dest = make_bundle(proj, tmp_path / "bundle")
    assert sync(proj, dest) == 0
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"
    assert index_server.requests == []


def test_a_sync_from_a_static_server_fetches_the_manifest_and_each_file_once(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path
) -> None:
    dest = make_bundle(proj, tmp_path / "bundle")
    alpha, beta = index_server.entry(ALPHA), index_server.entry(BETA)
    with StaticServer(dest) as server:
        assert sync(proj, server.url) == 0
        assert sorted(server.paths) == sorted(
            ["/bundle.json", f"/files/{alpha.sha256}/{ALPHA}", f"/files/{beta.sha256}/{BETA}"]
        )
        assert sync(proj, server.url) == 0  # nothing to do: the bundle is not even asked
        assert len(server.paths) == 3
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"
    assert index_server.requests == []


def test_offline_works_from_a_folder_and_is_refused_for_a_url(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = make_bundle(proj, tmp_path / "bundle")
    capsys.readouterr()
    assert sync(proj, "http://127.0.0.1:9/", "--offline") == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --bundle: --offline cannot reach the bundle at http://127.0.0.1:9/",
        "hint: give the bundle's folder, or leave out --offline",
    ]
    assert sync(proj, dest, "--offline") == 0
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"


def test_a_file_missing_from_the_bundle_fails_the_sync_before_anything_changes(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = make_bundle(proj, tmp_path / "bundle")
    beta = index_server.entry(BETA)
    (dest / "files" / beta.sha256 / BETA).unlink()
    with StaticServer(dest) as server:
        capsys.readouterr()
        assert sync(proj, server.url) == 1
        assert capsys.readouterr().err.splitlines()[-2:] == [
            f"error: cannot download {BETA}: GET {server.url}files/{beta.sha256}/{BETA} failed: "
            "HTTP 404",
            RETRY,
        ]
    _unchanged(proj)
    assert index_server.requests == []


def test_a_damaged_file_in_the_bundle_fails_the_sync_before_anything_changes(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = make_bundle(proj, tmp_path / "bundle")
    beta = index_server.entry(BETA)
    data = b"PK\x03\x04 not the locked file"
    (dest / "files" / beta.sha256 / BETA).write_bytes(data)
    capsys.readouterr()
    assert sync(proj, dest) == 1
    url = f"{dest.as_uri()}/files/{beta.sha256}/{BETA}"
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: cannot download {BETA}: {url} has sha256 {hashlib.sha256(data).hexdigest()}, "
        f"the bundle's manifest records {beta.sha256}: the bundle is damaged (check it with "
        "'envspec bundle DIR --check')",
        RETRY,
    ]
    _unchanged(proj)


def test_a_bundle_whose_manifest_agrees_with_its_other_file_names_the_bundle(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rebuilt bundle (manifest and file agree, the lock does not): the error named the
    lock's URL on the index, sending the operator to PyPI for bytes the bundle served."""
    dest = make_bundle(proj, tmp_path / "bundle")
    beta = index_server.entry(BETA)
    data = b"PK\x03\x04 not the locked file"
    other = hashlib.sha256(data).hexdigest()
    (dest / "files" / other).mkdir()
    (dest / "files" / beta.sha256 / BETA).rename(dest / "files" / other / BETA)
    manifest = dest / "bundle.json"
    manifest.write_text(manifest.read_text().replace(beta.sha256, other))
    (dest / "files" / other / BETA).write_bytes(data)
    capsys.readouterr()
    assert sync(proj, dest) == 1
    url = f"{dest.as_uri()}/files/{other}/{BETA}"
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {BETA} from {url} has sha256 {other}, the lock records {beta.sha256}",
        "hint: the server sent another file than the one locked; nothing was changed",
    ]
    _unchanged(proj)


def test_a_bundle_made_from_another_lock_lacks_the_file_and_says_so(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = make_bundle(proj, tmp_path / "bundle")
    index_server.add_wheel("beta", "2.0")
    proj.lock("--upgrade")
    index_server.reset_counters()
    capsys.readouterr()
    assert sync(proj, dest) == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: cannot download beta-2.0-py3-none-any.whl: the bundle at {dest.as_uri()}/ does "
        f"not have it (it was made from locks/pylock.{TARGET}.toml): make it again from this "
        "lock",
        RETRY,
    ]
    _unchanged(proj)
    assert index_server.requests == []


def test_what_is_no_bundle_is_named(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    assert sync(proj, empty) == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: no bundle at {empty.as_uri()}/: bundle.json is missing",
        "hint: make one with 'envspec bundle DIR' and serve DIR, or give its folder",
    ]
    assert sync(proj, tmp_path / "nowhere") == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --bundle: no bundle folder at {tmp_path / 'nowhere'}",
        "hint: give the folder 'envspec bundle' wrote, or the URL it is served at",
    ]
    assert sync(proj, "ftp://example.com/b") == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: --bundle: 'ftp://example.com/b' is neither a folder nor an http(s) or file URL"
    )
    _unchanged(proj)


def test_a_bundle_behind_basic_auth_and_its_password_shown_nowhere(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = make_bundle(proj, tmp_path / "bundle")
    with StaticServer(dest, auth=("fleet", "s3cret")) as server:
        capsys.readouterr()
        assert sync(proj, server.url_with_auth("fleet", "wrong"), "--json") == 1
        out, err = capsys.readouterr()
        assert "wrong" not in out + err
        assert events(out)[-1] == {
            "event": "error",
            "message": f"GET {server.url}bundle.json failed: HTTP 401",
            "hint": "give credentials in the index URL, in netrc, or as "
            "ENVSPEC_INDEX_BUNDLE_USERNAME/_PASSWORD",
            "exit_code": 1,
        }
        _unchanged(proj)
        assert sync(proj, server.url_with_auth("fleet", "s3cret"), "--json") == 0
        assert "s3cret" not in "".join(capsys.readouterr())
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"


def test_a_git_source_in_a_required_phase_is_refused_before_anything_changes(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    commit = make_git_package(repo, "gitpkg", "0.1", static=True)
    proj.write_spec([*PHASES, {"name": "ext", "requirements": [f"gitpkg @ git+file://{repo}"]}])
    proj.lock()
    dest = make_bundle(proj, tmp_path / "bundle")
    capsys.readouterr()
    assert sync(proj, dest) == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {dest.as_uri()}/: cannot install gitpkg 0.1 (phase ext) from a bundle: it is a "
        f"git source (git+file://{repo}@{commit}), which a bundle cannot carry",
        "hint: sync without --bundle where its git host can be reached, or only up to an "
        "earlier phase (--phase); nothing was changed",
    ]
    _unchanged(proj)
    assert sync(proj, dest, "--phase", "two") == 0
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"


def test_an_sdist_is_refused_and_a_url_package_comes_from_the_bundle(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gamma = index_server.add_sdist("gamma", "1.0")
    delta = index_server.add_wheel("delta", "1.0")
    url = index_server.file_url(delta.name)
    proj.write_spec(
        [*PHASES, {"name": "url", "requirements": [f"delta @ {url}"]},
         {"name": "src", "requirements": ["gamma"]}]
    )  # fmt: skip
    proj.lock()
    dest = make_bundle(proj, tmp_path / "bundle")
    capsys.readouterr()
    assert sync(proj, dest) == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {dest.as_uri()}/: cannot install gamma 1.0 (phase src) from a bundle: it is "
        f"locked as an sdist ({gamma.name}), which must be built, and a build needs its build "
        "requirements from an index",
        'hint: lock a wheel of it (add "gamma" to [resolution] no-build), or sync without '
        "--bundle; nothing was changed",
    ]
    _unchanged(proj)
    assert sync(proj, dest, "--phase", "url") == 0
    assert index_server.requests == []
    stored = proj.project.parent / "machine-cache" / "store" / "sha256"
    assert f"delta @ {next(stored.rglob(delta.name)).as_uri()}\n" in proj.freeze()


def test_rollback_restores_from_the_bundle(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = make_bundle(proj, tmp_path / "first")
    assert sync(proj, first) == 0
    synced = proj.freeze()
    index_server.add_wheel("beta", "2.0")
    proj.lock("--upgrade")
    second = make_bundle(proj, tmp_path / "second")
    assert sync(proj, second) == 0
    assert proj.freeze() == "alpha==1.0\nbeta==2.0\n"
    machine = proj.project.parent / "machine-cache"
    shutil.rmtree(machine / "store")  # the machine kept nothing: the bundle must serve it
    shutil.rmtree(machine / "uv")
    rollback = [
        "rollback", "2", "--project", str(proj.project), "--python", str(proj.env),
        "--cache-dir", str(machine),
    ]  # fmt: skip
    capsys.readouterr()
    assert main([*rollback, "--bundle", str(second)]) == 1  # snapshot 2 holds beta 1.0
    err = capsys.readouterr().err.splitlines()
    assert err[-2].startswith(
        f"error: {proj.env}: cannot restore snapshot 2: cannot download {BETA}: the bundle at "
        f"{second.as_uri()}/ does not have it"
    )
    assert err[-1] == "hint: nothing was changed"
    assert proj.freeze() == "alpha==1.0\nbeta==2.0\n"
    assert main([*rollback, "--bundle", str(first), "--offline"]) == 0
    assert proj.freeze() == synced
    assert index_server.requests == []


@pytest.mark.parametrize(
    "case",
    [
        ("{", "not a bundle manifest (Expecting property name enclosed in double quotes: "
         "line 1 column 2 (char 1))", "make the bundle again with 'envspec bundle DIR'"),
        ('{"format": 1, "locks": []}', "not a bundle manifest (missing key 'files')",
         "make the bundle again with 'envspec bundle DIR'"),
        ('{"format": 2}', "bundle format 2 is newer than this envspec reads (1)",
         "upgrade envspec, or make the bundle with this one"),
    ],
)  # fmt: skip
def test_a_damaged_manifest_is_named_and_changes_nothing(
    proj: EnvProject,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, str, str],
) -> None:
    text, message, hint = case
    dest = make_bundle(proj, tmp_path / "bundle")
    (dest / "bundle.json").write_text(text)
    capsys.readouterr()
    assert sync(proj, dest) == 1
    where = f"{dest.as_uri()}/bundle.json"
    err = capsys.readouterr().err.splitlines()
    assert err[-2:] == [f"error: {where}: {message}", f"hint: {hint}"]
    _unchanged(proj)
    assert main(["bundle", str(dest), "--check"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {dest / 'bundle.json'}: {message}", f"hint: {hint}"
    ]


def test_a_stale_lock_is_refused_from_a_bundle_and_frozen_installs_it(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = make_bundle(proj, tmp_path / "bundle")
    proj.write_spec([*PHASES, {"name": "three", "requirements": ["gamma"]}])
    capsys.readouterr()
    assert sync(proj, dest) == 3  # relocking would ask the index: the bundle is all there is
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {proj.lock_file}: the lock for {TARGET} is out of date with envspec.toml: "
        "phase three added",
        "hint: a sync from a bundle cannot relock: run 'envspec lock' where the indexes can be "
        "reached, or sync with --frozen to install the lock as it is",
    ]
    _unchanged(proj)
    assert sync(proj, dest, "--frozen") == 0
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"
    assert index_server.requests == []
