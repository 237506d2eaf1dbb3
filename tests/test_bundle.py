"""`envspec bundle DIR`: a static index of exactly the files the chosen locks name — PEP 503 and
PEP 691 pages, PEP 658 sidecars, the files, the locks and a manifest — made the same twice,
completed rather than redone, checked with `--check`, and taken through the artifact store and
the indexes' mirrors like a sync's files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import filelock
import pytest

from envspec.cli import main
from envspec.index.simple import parse_html, parse_json
from support.envproject import TARGET, EnvProject, clean_environ, events
from support.gitrepo import make_backend_sdist, make_git_package
from support.index_server import IndexServer

OTHER = "macos-arm64" if TARGET != "macos-arm64" else "linux-x86_64"
ALPHA = "alpha-1.0-py3-none-any.whl"
TAGS = {
    "linux-x86_64": "py3-none-manylinux_2_17_x86_64",
    "macos-arm64": "py3-none-macosx_11_0_arm64",
}
PHASES = [
    {"name": "base", "requirements": ["alpha", "native"]},
    {"name": "tools", "requirements": ["gamma", "delta"]},
]


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    monkeypatch.setenv("ENVSPEC_CONFIG", str(tmp_path / "no-config.toml"))
    index_server.add_wheel("alpha", "1.0", requires_python=">=3.8")
    for target in (TARGET, OTHER):
        index_server.add_wheel("native", "2.0", tag=TAGS[target])
    index_server.add_sdist("gamma", "1.0")  # Metadata-Version 2.2, nothing dynamic: static
    # Metadata-Version 2.1: a build tells its metadata (the in-tree backend needs no index)
    index_server.add(make_backend_sdist(tmp_path / "sdists", "delta", "1.0"))
    project = EnvProject(tmp_path, index_server)
    project.write_spec(PHASES, targets=(TARGET, OTHER))
    project.lock()
    index_server.reset_counters()
    return project


def bundle(proj: EnvProject, dest: Path, *rest: str) -> int:
    return main(
        ["bundle", str(dest), "--project", str(proj.project), "--cache-dir", str(proj.cache), *rest]
    )


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def manifest(dest: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((dest / "bundle.json").read_text())
    return data


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_bundle_holds_the_locked_files_their_pages_sidecars_the_locks_and_a_manifest(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path
) -> None:
    dest = tmp_path / "bundle"
    assert bundle(proj, dest) == 0
    files = {f"files/{e.sha256}/{e.filename}": e for e in index_server.entries.values()}
    got = tree(dest)
    for path, entry in files.items():
        assert got[path] == entry.path.read_bytes()
    alpha = index_server.entry(ALPHA)
    with zipfile.ZipFile(alpha.path) as zf:
        metadata = zf.read("alpha-1.0.dist-info/METADATA")
    assert got[f"files/{alpha.sha256}/{ALPHA}.metadata"] == metadata  # PEP 658: as in the wheel
    gamma = index_server.entry("gamma-1.0.tar.gz")
    assert f"files/{gamma.sha256}/gamma-1.0.tar.gz.metadata" in got  # static PKG-INFO
    delta = index_server.entry("delta-1.0.tar.gz")
    assert f"files/{delta.sha256}/delta-1.0.tar.gz.metadata" not in got
    for target in (TARGET, OTHER):
        assert got[f"locks/pylock.{target}.toml"] == (
            proj.project / "locks" / f"pylock.{target}.toml"
        ).read_bytes()
    entries = {f["filename"]: f for f in manifest(dest)["files"]}  # type: ignore[attr-defined]
    both = sorted(f"locks/pylock.{t}.toml" for t in (TARGET, OTHER))
    assert entries[ALPHA]["locks"] == both  # one file serving both locks: bundled once
    native = [name for name in entries if name.startswith("native-")]
    assert sorted(entries[n]["locks"][0] for n in native) == both
    assert entries[ALPHA]["requires-python"] == ">=3.8"
    assert entries[ALPHA]["url"] == index_server.file_url(ALPHA)  # the canonical URL
    assert entries["delta-1.0.tar.gz"]["metadata"] is None
    assert entries["delta-1.0.tar.gz"]["no-metadata"] == (
        "delta-1.0.tar.gz has Metadata-Version 2.1 (< 2.2); it needs a PEP 517 build"
    )
    assert sorted(p for p in got if p.startswith("simple/")) == sorted(
        [f"simple/{name}/index.{ext}" for name in ("alpha", "delta", "gamma", "native")
         for ext in ("html", "json")] + ["simple/index.html", "simple/index.json"]
    )  # fmt: skip


def test_the_pages_are_pep_503_and_691_as_envspec_itself_reads_them(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path
) -> None:
    dest = tmp_path / "bundle"
    assert bundle(proj, dest) == 0
    alpha = index_server.entry(ALPHA)
    page = (dest / "simple" / "alpha" / "index.html").read_bytes()
    meta = _sha((dest / "files" / alpha.sha256 / f"{ALPHA}.metadata").read_bytes())
    href = f"../../files/{alpha.sha256}/{ALPHA}#sha256={alpha.sha256}"
    assert page.decode().splitlines() == [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        '<meta name="pypi:repository-version" content="1.1">',
        "<title>Links for alpha</title>",
        "</head>",
        "<body>",
        f'<a href="{href}" data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256={meta}"'
        f' data-core-metadata="sha256={meta}">{ALPHA}</a><br>',
        "</body>",
        "</html>",
    ]
    base = (dest / "simple" / "alpha").as_uri() + "/"
    from_html = parse_html(page, base)
    from_json = parse_json((dest / "simple" / "alpha" / "index.json").read_bytes(), base)
    for artifact in (*from_html, *from_json):
        assert artifact.filename == ALPHA
        assert artifact.sha256 == alpha.sha256
        assert artifact.requires_python == ">=3.8"
        assert artifact.metadata_sha256 == meta
        assert artifact.url == (dest / "files" / alpha.sha256 / ALPHA).as_uri()
    page_json = json.loads((dest / "simple" / "native" / "index.json").read_text())
    assert page_json["meta"] == {"api-version": "1.1"} and page_json["versions"] == ["2.0"]
    assert [f["filename"] for f in page_json["files"]] == sorted(
        f"native-2.0-{TAGS[t]}.whl" for t in (TARGET, OTHER)
    )
    root = json.loads((dest / "simple" / "index.json").read_text())
    assert [p["name"] for p in root["projects"]] == ["alpha", "delta", "gamma", "native"]


def test_bundling_twice_gives_the_same_bytes_and_downloads_each_file_once(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    assert bundle(proj, first) == 0
    assert sorted(index_server.paths_requested()) == sorted(
        f"/files/{name}" for name in index_server.entries
    )  # each once, though alpha, gamma and delta serve both locks
    capsys.readouterr()
    assert bundle(proj, first, "--json") == 0
    done = events(capsys.readouterr().out)[-1]
    assert (done["event"], done["added"], done["removed"]) == ("bundle", 0, 0)
    assert bundle(proj, second) == 0
    assert tree(first) == tree(second)
    assert len(index_server.paths_requested()) == len(index_server.entries)  # from the store


def test_running_again_copies_only_what_is_missing_or_wrong(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "bundle"
    assert bundle(proj, dest) == 0
    made = tree(dest)
    alpha, gamma = index_server.entry(ALPHA), index_server.entry("gamma-1.0.tar.gz")
    (dest / "files" / alpha.sha256 / ALPHA).unlink()
    damaged = dest / "files" / gamma.sha256 / "gamma-1.0.tar.gz"
    damaged.write_bytes(b"x" * damaged.stat().st_size)  # same size, other bytes
    (dest / "simple" / "alpha" / "index.html").write_text("edited")
    index_server.reset_counters()
    capsys.readouterr()
    assert bundle(proj, dest, "--json") == 0
    done = events(capsys.readouterr().out)[-1]
    assert (done["added"], done["added_bytes"]) == (2, alpha.size + gamma.size)
    assert tree(dest) == made
    assert index_server.requests == []  # both were in the artifact store


def test_check_names_every_missing_or_wrong_file_and_exits_1(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "bundle"
    assert bundle(proj, dest) == 0
    capsys.readouterr()
    assert main(["bundle", str(dest), "--check"]) == 0
    size = sum(e.size for e in index_server.entries.values())
    assert capsys.readouterr().err.startswith(f"Bundle {dest}: 5 files (")
    alpha, gamma = index_server.entry(ALPHA), index_server.entry("gamma-1.0.tar.gz")
    (dest / "files" / alpha.sha256 / ALPHA).unlink()
    damaged = dest / "files" / gamma.sha256 / "gamma-1.0.tar.gz"
    damaged.write_bytes(b"x" * gamma.size)
    (dest / "simple" / "native" / "index.json").write_text("{}")
    lock = dest / "locks" / f"pylock.{TARGET}.toml"
    before = lock.read_bytes()
    edited = before + b"# edited\n"
    lock.write_bytes(edited)  # a wrong lock hid the wrong page: 1 problem was told
    assert main(["bundle", str(dest), "--check", "--json"]) == 1
    got = events(capsys.readouterr().out)
    wrong = (
        f"wrong sha256: files/{gamma.sha256}/gamma-1.0.tar.gz has {_sha(b'x' * gamma.size)}, "
        f"the manifest records {gamma.sha256}"
    )
    problems = [
        wrong,
        f"missing: files/{alpha.sha256}/{ALPHA}",
        f"wrong sha256: locks/pylock.{TARGET}.toml has {_sha(edited)}, the "
        f"manifest records {_sha(before)}",
        "changed: simple/native/index.json is not what the manifest makes",
    ]
    listed = got[0].pop("problems")
    assert sorted(listed) == sorted(problems)  # in the manifest's order
    assert got[0] == {
        "event": "bundle_checked", "path": str(dest), "files": 5, "bytes": size, "ok": False
    }  # fmt: skip
    assert got[1] == {
        "event": "error",
        "message": f"{dest}: 4 problems in the bundle: {listed[0]} and 3 more (above)",
        "hint": "run 'envspec bundle DIR' in the project again: it copies what is wrong",
        "exit_code": 1,
    }


def test_a_changed_lock_leaves_nothing_stale_in_the_bundle(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "bundle"
    assert bundle(proj, dest) == 0
    proj.write_spec([PHASES[0]], targets=(TARGET, OTHER))
    proj.lock()
    capsys.readouterr()
    assert bundle(proj, dest, "--json") == 0
    assert events(capsys.readouterr().out)[-1]["removed"] == 2  # gamma and delta
    assert sorted(p.name for p in (dest / "simple").iterdir()) == [
        "alpha", "index.html", "index.json", "native"
    ]  # fmt: skip
    assert len(list((dest / "files").iterdir())) == 3
    assert main(["bundle", str(dest), "--check"]) == 0


def test_targets_and_phases_choose_what_is_bundled(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path
) -> None:
    dest = tmp_path / "bundle"
    assert bundle(proj, dest, "--target", TARGET, "--phase", "base") == 0
    data = manifest(dest)
    names = sorted(f["filename"] for f in data["files"])  # type: ignore[attr-defined]
    assert names == [ALPHA, f"native-2.0-{TAGS[TARGET]}.whl"]
    assert data["locks"] == [
        {
            "target": TARGET,
            "path": f"locks/pylock.{TARGET}.toml",
            "sha256": _sha((proj.project / "locks" / f"pylock.{TARGET}.toml").read_bytes()),
            "phases": ["base"],
        }
    ]
    alpha, native = index_server.entry(ALPHA), index_server.entry(names[1])
    assert (dest / "install" / f"requirements.{TARGET}.txt").read_text().splitlines() == [
        f"# target {TARGET} (phases base), exported by envspec for a bundle from "
        f"locks/pylock.{TARGET}.toml",
        "# do not edit: run 'envspec bundle' again",
        "# install: pip install --index-url <bundle>/simple --require-hashes --no-deps -r FILE",
        "#      or: uv pip install --index-url <bundle>/simple --require-hashes --no-deps -r FILE",
        "",
        "# phase base",
        "alpha==1.0 \\",
        f"    --hash=sha256:{alpha.sha256}",
        "native==2.0 \\",
        f"    --hash=sha256:{native.sha256}",
    ]


@pytest.mark.parametrize(
    "case",
    [
        (["--phase", "bass"], "--phase: unknown phase 'bass'", "did you mean 'base'?"),
        (
            ["--target", "solaris-sparc"],
            "--target: target 'solaris-sparc' is not in the spec",
            f"spec targets: {TARGET}, {OTHER}",
        ),
        (
            ["--check", "--target", TARGET],
            "--check: --check verifies the whole bundle: "
            "it takes no --target, --phase or --variant",
            None,
        ),
    ],
)
def test_bad_choices_are_usage_errors_and_write_nothing(
    proj: EnvProject,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: tuple[list[str], str, str | None],
) -> None:
    args, message, hint = case
    dest = tmp_path / "bundle"
    capsys.readouterr()
    assert bundle(proj, dest, *args) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: {message}"
    assert err[1:] == ([f"hint: {hint}"] if hint else [])
    assert not dest.exists()


def test_a_folder_that_is_not_a_bundle_is_not_written_over(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep")
    capsys.readouterr()
    assert bundle(proj, dest) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {dest}: the folder is not empty and holds no bundle.json: it is not a bundle",
        "hint: give an empty or new folder, or one 'envspec bundle' wrote",
    ]
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]
    assert main(["bundle", str(dest), "--check"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {dest}: no bundle.json: not a bundle",
        "hint: make one with 'envspec bundle DIR'",
    ]


def test_a_bundle_stopped_before_its_manifest_is_finished_by_the_next_run(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path
) -> None:
    """A bundle killed between its first copied file and bundle.json left a folder the next
    run refused as 'not a bundle' (the user had to remove it by hand)."""
    index_server.add_wheel("big", "1.0", pad_bytes=30_000_000)  # a copy slow enough to catch
    proj.write_spec([*PHASES, {"name": "big", "requirements": ["big"]}], targets=(TARGET, OTHER))
    proj.lock()
    assert bundle(proj, tmp_path / "whole") == 0  # every file in the store from here on
    for attempt in range(20):
        dest = tmp_path / f"stopped-{attempt}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "envspec", "bundle", str(dest), "--project", str(proj.project),
             "--cache-dir", str(proj.cache)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_environ(),
            start_new_session=True,
        )  # fmt: skip
        while proc.poll() is None and not (dest / "files").exists():
            time.sleep(0.0005)
        with contextlib.suppress(ProcessLookupError):  # it may have finished first
            os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode in (0, -signal.SIGKILL), err
        if (dest / "files").exists() and not (dest / "bundle.json").exists():
            break
    else:
        pytest.fail("no run was stopped between its first file and bundle.json")
    assert bundle(proj, dest) == 0
    assert tree(dest) == tree(tmp_path / "whole")


def test_a_missing_lock_exits_3(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (proj.project / "locks" / f"pylock.{OTHER}.toml").unlink()
    capsys.readouterr()
    assert bundle(proj, tmp_path / "bundle") == 3
    lock = proj.project / "locks" / f"pylock.{OTHER}.toml"
    assert capsys.readouterr().err.splitlines() == [
        f"error: {lock}: no lock file",
        "hint: run 'envspec lock' to write it",
    ]


def test_a_git_source_is_left_out_and_said(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    commit = make_git_package(repo, "gitpkg", "0.1", static=True)
    index_server.add_wheel("alpha", "1.0")
    proj = EnvProject(tmp_path, index_server)
    proj.write_spec(
        [{"name": "base", "requirements": ["alpha"]},
         {"name": "ext", "requirements": [f"gitpkg @ git+file://{repo}"]}]
    )  # fmt: skip
    proj.lock()
    dest = tmp_path / "bundle"
    capsys.readouterr()
    assert bundle(proj, dest, "--json") == 0
    reason = "a git source: uv clones it when installing; a bundle carries files only"
    lock = f"locks/pylock.{TARGET}.toml"
    assert manifest(dest)["left-out"] == [
        {"lock": lock, "name": "gitpkg", "version": "0.1", "reason": reason,
         "source": f"git+file://{repo}@{commit}"}
    ]  # fmt: skip
    assert events(capsys.readouterr().out)[-1]["left_out"] == [
        {"name": "gitpkg", "version": "0.1", "lock": lock}
    ]
    text = (dest / "install" / f"requirements.{TARGET}.txt").read_text()
    assert f"# gitpkg @ git+file://{repo}@{commit}: a git source, not in bundles\n" in text


def test_files_come_through_the_mirror_as_at_sync(
    proj: EnvProject,
    index_server: IndexServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with IndexServer(tmp_path / "mirror") as mirror:
        for entry in index_server.entries.values():
            mirror.add(entry.path)
        mirror.auth = ("fleet", "s3cret")
        monkeypatch.setenv("ENVSPEC_INDEX_LOCAL_MIRROR", mirror.url)
        monkeypatch.setenv("ENVSPEC_INDEX_LOCAL_USERNAME", "fleet")
        monkeypatch.setenv("ENVSPEC_INDEX_LOCAL_PASSWORD", "s3cret")
        assert bundle(proj, tmp_path / "bundle") == 0
        assert len(mirror.paths_requested()) == len(index_server.entries)
    assert index_server.requests == []
    data = manifest(tmp_path / "bundle")
    urls = {f["url"] for f in data["files"]}  # type: ignore[index]
    assert urls == {index_server.file_url(name) for name in index_server.entries}


def test_offline_with_files_the_store_lacks_is_an_error(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert bundle(proj, tmp_path / "bundle", "--offline") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-2].startswith(
        f"error: {proj.cache / 'store'}: not in the artifact store, and --offline forbids "
        "downloading: "
    )
    assert not (tmp_path / "bundle").exists()


def test_two_bundles_into_one_folder_take_turns(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs at once mixed one's manifest with the other's files (bundle --check: '21
    problems'), both exit 0. The second now waits for the first, then gives up naming it."""
    dest = tmp_path / "shared"
    digest = hashlib.sha256(os.path.realpath(dest).encode()).hexdigest()[:24]
    held = proj.cache / "locks" / f"{digest}.bundle.lock"
    held.parent.mkdir(parents=True, exist_ok=True)
    capsys.readouterr()
    with filelock.FileLock(held):
        assert bundle(proj, dest, "--lock-timeout", "0.3") == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {dest}: another envspec command is writing this bundle; gave up after 0.3s",
        "hint: wait for it to finish, or wait longer with --lock-timeout SECONDS",
    ]
    assert not dest.exists()
    assert bundle(proj, dest) == 0


def test_a_lock_file_holding_another_targets_lock_is_refused(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was bundled under the target it records, over that target's own lock: bundle.json
    then listed one lock twice, and the bundle failed its own --check."""
    lock = proj.project / "locks" / f"pylock.{TARGET}.toml"
    lock.write_text(lock.read_text().replace(f'target = "{TARGET}"', f'target = "{OTHER}"'))
    capsys.readouterr()
    assert bundle(proj, tmp_path / "bundle") == 3
    assert capsys.readouterr().err.splitlines() == [
        f"error: {lock}: the file holds the lock of {OTHER}",
        "hint: run 'envspec lock' to write this target's lock",
    ]
    assert not (tmp_path / "bundle").exists()
