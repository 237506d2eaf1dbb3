"""Fetch, verify, then change: every file of every phase is in the artifact store, its sha256
checked, before a sync touches the environment; downloads resume with HTTP Range, come from
the index's mirror when one is set, are made once for every environment, and report progress
(JSON events, lines, a terminal's bars, nothing with -q)."""

from __future__ import annotations

import hashlib
import os
import pty
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envspec.output import size_text
from support.envproject import EnvProject, clean_environ, events
from support.index_server import IndexServer

PHASES = [
    {"name": "one", "requirements": ["alpha"]},
    {"name": "two", "requirements": ["beta"]},
]
ALPHA = "alpha-1.0-py3-none-any.whl"
BETA = "beta-1.0-py3-none-any.whl"
HINT = "hint: nothing was changed; run the command again to retry (a partial download resumes)"


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.setenv("ENVSPEC_CONFIG", str(tmp_path / "no-config.toml"))
    index_server.add_wheel("alpha", "1.0", pad_bytes=300_000)
    index_server.add_wheel("beta", "1.0", pad_bytes=300_000)
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    project.write_spec(PHASES)
    project.lock()
    index_server.reset_counters()
    return project


def _unchanged(proj: EnvProject) -> None:
    assert proj.freeze() == ""
    assert proj.snapshot_ids() == []
    assert not (proj.state / "journal.json").exists()


def _stored(proj: EnvProject) -> list[str]:
    return sorted(p.name for p in (proj.cache / "store" / "sha256").rglob("*.whl"))


def _ranges(server: IndexServer, filename: str) -> list[str | None]:
    return [h.get("Range") for m, p, h in server.requests if p == f"/files/{filename}"]


def test_a_missing_file_of_a_later_phase_fails_the_sync_before_anything_changes(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    index_server.fail(BETA, "404", times=10)
    capsys.readouterr()
    assert proj.run("sync") == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: cannot download {BETA}: GET {index_server.file_url(BETA)} failed: HTTP 404",
        HINT,
    ]
    _unchanged(proj)  # alpha, of the first phase, was not installed either
    assert BETA not in _stored(proj)


def test_a_file_whose_sha256_differs_from_the_lock_fails_the_sync_before_anything_changes(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = index_server.entry(BETA).sha256
    swapped = b"PK\x03\x04 not the locked file" * 100
    index_server.entry(BETA).path.write_bytes(swapped)
    capsys.readouterr()
    assert proj.run("sync", "--json") == 1
    got = events(capsys.readouterr().out)
    assert got[-1] == {
        "event": "error",
        "message": f"{BETA} from {index_server.file_url(BETA)} has sha256 "
        f"{hashlib.sha256(swapped).hexdigest()}, the lock records {locked}",
        "hint": "the server sent another file than the one locked; nothing was changed",
        "exit_code": 1,
    }
    assert "snapshot" not in [e["event"] for e in got]
    _unchanged(proj)
    assert not (proj.cache / "store" / "partial" / locked).exists()  # not kept to resume


def test_a_cut_download_resumes_with_range(
    proj: EnvProject, index_server: IndexServer
) -> None:
    index_server.cut_bytes = 100_000
    index_server.fail(BETA, "cut")
    assert proj.run("sync") == 0
    assert _ranges(index_server, BETA) == [None, "bytes=100000-"]
    assert index_server.file_bytes_sent(BETA) == index_server.entry(BETA).size
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"


def test_a_download_cut_off_in_a_failed_sync_resumes_in_the_next(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    index_server.cut_bytes = 120_000
    index_server.fail(BETA, "cut")
    index_server.fail(BETA, "500", times=3)  # then the server fails three times in a row
    assert proj.run("sync") == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: cannot download {BETA}: GET {index_server.file_url(BETA)} failed: HTTP 500 "
        "after 3 attempts in a row",
        HINT,
    ]
    _unchanged(proj)
    index_server.reset_counters()
    assert proj.run("sync") == 0
    assert _ranges(index_server, BETA) == ["bytes=120000-"]
    assert index_server.file_bytes_sent(BETA) == index_server.entry(BETA).size - 120_000
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"


def test_three_environments_synced_from_one_lock_download_each_file_once(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    others = [proj.env.parent / f"env-{n}" for n in (2, 3)]
    for other in others:
        proj.uv("venv", "-q", "--python", sys.executable, str(other))
    capsys.readouterr()
    fetches = []
    for env in (proj.env, *others):
        args = ["--project", str(proj.project), "--cache-dir", str(proj.cache), "--json"]
        from envspec.cli import main

        assert main(["sync", "--python", str(env), *args]) == 0
        fetches.append([e for e in events(capsys.readouterr().out) if e["event"] == "fetch"])
    sizes = index_server.entry(ALPHA).size + index_server.entry(BETA).size
    assert fetches == [
        [{"event": "fetch", "files": 2, "bytes": sizes, "stored": 0}],
        [{"event": "fetch", "files": 0, "bytes": 0, "stored": 2}],
        [{"event": "fetch", "files": 0, "bytes": 0, "stored": 2}],
    ]
    assert index_server.file_bytes_sent(ALPHA) + index_server.file_bytes_sent(BETA) == sizes
    assert len(index_server.requests) == 2  # the two files; uv asked the index for nothing


def test_two_syncs_of_two_environments_at_once_download_each_file_once(
    proj: EnvProject, index_server: IndexServer
) -> None:
    other = proj.env.parent / "env-2"
    proj.uv("venv", "-q", "--python", sys.executable, str(other))
    index_server.rate = 1_500_000  # slow enough for the two to overlap
    common = ["--project", str(proj.project), "--cache-dir", str(proj.cache), "--no-checks"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "envspec", "sync", "--python", str(env), *common],
            env=clean_environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for env in (proj.env, other)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    for name in (ALPHA, BETA):
        assert index_server.file_bytes_sent(name) == index_server.entry(name).size
    assert proj.uv("pip", "freeze", "--python", str(other)) == proj.freeze()


@pytest.mark.parametrize("where", ["variable", "config"])
def test_files_come_from_the_mirror_and_the_canonical_index_is_not_asked(
    proj: EnvProject,
    index_server: IndexServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    with IndexServer(tmp_path / "mirror") as mirror:
        for name in (ALPHA, BETA):
            mirror.add(index_server.entry(name).path)
        if where == "variable":
            monkeypatch.setenv("ENVSPEC_INDEX_LOCAL_MIRROR", mirror.url)
        else:
            config = tmp_path / "config.toml"
            config.write_text(f'[mirrors]\nlocal = "{mirror.url}"\n')
            monkeypatch.setenv("ENVSPEC_CONFIG", str(config))
        assert proj.run("sync") == 0
        assert sorted(mirror.paths_requested()) == [f"/files/{ALPHA}", f"/files/{BETA}"]
    assert index_server.requests == []
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"


def test_offline_a_file_missing_from_the_store_is_an_error(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert proj.run("sync", "--offline") == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {proj.cache / 'store'}: not in the artifact store, and --offline forbids "
        f"downloading: {ALPHA}, {BETA}",
        "hint: run without --offline; nothing was changed",
    ]
    _unchanged(proj)
    assert index_server.requests == []


def test_download_events_come_a_few_times_a_second_then_download_finished(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    big = index_server.add_wheel("big", "1.0", pad_bytes=1_500_000).name
    proj.write_spec([*PHASES, {"name": "three", "requirements": ["big"]}])
    proj.lock()
    index_server.rate = 2_000_000  # about 0.75 s for the file
    capsys.readouterr()
    assert proj.run("sync", "--json") == 0
    got = [e for e in events(capsys.readouterr().out) if e.get("name") == big]
    size = index_server.entry(big).size
    progress = [e for e in got if e["event"] == "download"]
    seconds = got[-1]["seconds"]  # at least 0.75: the server's rate sees to that
    assert 2 <= len(progress) <= seconds / 0.25 + 1  # the first at once, then one per 0.25 s
    assert all(e.keys() == {"event", "name", "bytes", "total"} for e in progress)
    assert {e["total"] for e in progress} == {size}
    assert [e["bytes"] for e in progress] == sorted(e["bytes"] for e in progress)
    assert got[-1]["event"] == "download_finished" and got[-1]["bytes"] == size
    assert [e["event"] for e in got].count("download_finished") == 1


def test_downloads_are_two_lines_off_a_terminal_and_nothing_with_quiet(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    capsys.readouterr()
    assert proj.run("sync", "--no-checks") == 0
    lines = capsys.readouterr().err.splitlines()
    size = size_text(proj.server.entry(ALPHA).size + proj.server.entry(BETA).size)
    assert lines[1:6] == [
        "Plan:",
        "  phase one: install alpha 1.0",
        "  phase two: install beta 1.0",
        f"Downloading 2 files ({size})",
        lines[5],
    ]
    assert re.fullmatch(rf"  downloaded 2 files \({size}\) in \d+\.\d\ds", lines[5])
    other = tmp_path / "quiet-env"
    proj.uv("venv", "-q", "--python", sys.executable, str(other))
    from envspec.cli import main

    args = ["--project", str(proj.project), "--cache-dir", str(tmp_path / "cache-2"), "-q"]
    assert main(["sync", "--python", str(other), *args]) == 0
    assert capsys.readouterr() == ("", "")


def test_a_terminal_shows_bytes_rate_and_time_left(
    proj: EnvProject, index_server: IndexServer
) -> None:
    big = index_server.add_wheel("big", "1.0", pad_bytes=3_000_000).name
    proj.write_spec([*PHASES, {"name": "three", "requirements": ["big"]}])
    proj.lock()
    index_server.rate = 2_000_000
    master, slave = pty.openpty()
    env = {**clean_environ(), "TERM": "xterm", "COLUMNS": "160"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "envspec", *proj.args("sync", "--no-checks")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    screen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        screen += data
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode("utf-8", "replace"))
    assert big in text
    assert re.search(r"\d+\.\d/3\.0 MB", text)  # bytes so far of the file's total
    assert re.search(r"\d+\.\d MB/s", text)  # the rate
    assert re.search(r"\d:\d\d:\d\d", text)  # the time left
    assert "Traceback" not in text


def test_a_rollback_fetches_the_files_it_needs_back_into_the_store(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from envspec.cli import main

    assert proj.run("sync") == 0
    synced = proj.freeze()
    assert proj.run("rollback") == 0  # back to the empty environment of snapshot 1
    assert main(["cache", "prune", "--older-than", "0", "--cache-dir", str(proj.cache)]) == 0
    index_server.fail(BETA, "404")
    capsys.readouterr()
    assert proj.run("rollback") == 1  # to snapshot 2, the synced state: beta cannot be had
    err = capsys.readouterr().err
    assert err.count("cannot restore snapshot 2") == 1  # it was also a "Rollback … failed" line
    assert err.splitlines()[-2:] == [
        f"error: {proj.env}: cannot restore snapshot 2: cannot download {BETA}: GET "
        f"{index_server.file_url(BETA)} failed: HTTP 404",
        "hint: nothing was changed",
    ]
    assert proj.freeze() == ""
    index_server.reset_counters()
    assert proj.run("rollback", "2") == 0
    assert proj.freeze() == synced
    assert f"/files/{BETA}" in index_server.paths_requested()  # (alpha too, unless it came whole)


def test_a_stored_file_changed_after_it_was_verified_is_fetched_again(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store trusted a file of the right size: one damaged in place failed uv's hash
    check in the middle of the sync, which rolled back, and every later sync did the same.
    A byte changed, its mtime put back: the file's inode change time still tells."""
    assert proj.run("sync") == 0
    [stored] = [p for p in (proj.cache / "store" / "sha256").rglob(BETA)]
    before = stored.stat()
    with stored.open("r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(stored, ns=(before.st_atime_ns, before.st_mtime_ns))
    other = proj.env.parent / "env-2"
    proj.uv("venv", "-q", "--python", sys.executable, str(other))
    index_server.reset_counters()
    capsys.readouterr()
    from envspec.cli import main

    args = ["--project", str(proj.project), "--cache-dir", str(proj.cache)]
    assert main(["sync", "--python", str(other), *args, "--json"]) == 0
    out, err = capsys.readouterr()
    fetch = [e for e in events(out) if e["event"] == "fetch"]
    size = index_server.entry(BETA).size
    assert fetch == [{"event": "fetch", "files": 1, "bytes": size, "stored": 1}]
    assert err.splitlines()[0] == (
        f"WARNING: {stored}: changed since its sha256 was checked, and it no longer matches: "
        "downloading it again"
    )
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == index_server.entry(BETA).sha256
    assert index_server.file_bytes_sent(BETA) == size
    third = proj.env.parent / "env-3"
    proj.uv("venv", "-q", "--python", sys.executable, str(third))
    index_server.reset_counters()
    assert main(["sync", "--python", str(third), *args]) == 0
    assert index_server.requests == []
    assert "WARNING" not in capsys.readouterr().err


def test_a_huge_stamp_is_not_read_whole(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A garbage `.verified` of 400 MB (sparse) was read into memory on every sync."""
    assert proj.run("sync") == 0
    [stored] = [p for p in (proj.cache / "store" / "sha256").rglob(BETA)]
    stamp = stored.parent / ".verified"
    with stamp.open("wb") as f:
        f.truncate(400 * 2**20)
    import resource

    other = proj.env.parent / "env-2"
    proj.uv("venv", "-q", "--python", sys.executable, str(other))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    from envspec.cli import main

    args = ["--project", str(proj.project), "--cache-dir", str(proj.cache)]
    assert main(["sync", "--python", str(other), *args]) == 0
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB
    assert grown < 100 * 1024, grown
    assert stamp.stat().st_size < 256  # checked again, and stamped anew


@pytest.mark.parametrize("what", ["a folder in place of the file", "a file in place of its folder"])
def test_a_store_entry_of_the_wrong_kind_is_replaced(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str], what: str
) -> None:
    """Every sync failed on it (`cannot write … to the artifact store: Is a directory`, or
    `Not a directory`), after downloading the file again."""
    assert proj.run("sync") == 0
    [stored] = [p for p in (proj.cache / "store" / "sha256").rglob(BETA)]
    if what == "a folder in place of the file":
        stored.unlink()
        (stored / "junk").mkdir(parents=True)
    else:
        shutil.rmtree(stored.parent.parent)
        stored.parent.parent.write_text("junk")
    other = proj.env.parent / "env-2"
    proj.uv("venv", "-q", "--python", sys.executable, str(other))
    from envspec.cli import main

    args = ["--project", str(proj.project), "--cache-dir", str(proj.cache)]
    assert main(["sync", "--python", str(other), *args]) == 0
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == index_server.entry(BETA).sha256


def test_prune_removes_a_stray_file_among_the_stores_folders(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--older-than 0` said it removed everything and left it."""
    assert proj.run("sync") == 0
    stray = proj.cache / "store" / "sha256" / "zz"
    stray.write_text("junk")
    from envspec.cli import main

    assert main(["cache", "prune", "--older-than", "0", "--cache-dir", str(proj.cache)]) == 0
    assert not stray.exists()
    assert [p for p in (proj.cache / "store" / "sha256").rglob("*") if not p.is_dir()] == []
