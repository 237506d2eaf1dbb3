"""`envspec cache prune`: the artifact store loses its partial downloads, the files no sync used
for a while, then the least recently used files down to a size; bad options are refused; a
store in use by a running sync is left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envspec.cli import main
from envspec.cli_cache import parse_size
from envspec.errors import UsageError
from envspec.output import size_text
from support.envproject import EnvProject, events
from support.index_server import IndexServer

DAY = 86400.0


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    """A synced environment whose store holds three files, used 40, 10 and 0 days ago."""
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    for name in ("alpha", "beta", "gamma"):
        index_server.add_wheel(name, "1.0", pad_bytes=10_000)
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    project.write_spec([{"name": "one", "requirements": ["alpha", "beta", "gamma"]}])
    project.lock()
    assert project.run("sync", "--no-checks") == 0
    now = time.time()
    for name, days in (("alpha", 40), ("beta", 10), ("gamma", 0)):
        os.utime(_folder(project, name), (now - days * DAY, now - days * DAY))
    (project.cache / "store" / "partial" / ("ab" * 32)).write_bytes(b"half a file")
    return project


def _folder(proj: EnvProject, name: str) -> Path:
    [path] = (proj.cache / "store" / "sha256").rglob(f"{name}-1.0-py3-none-any.whl")
    return path.parent


def _left(proj: EnvProject) -> list[str]:
    return sorted(p.name.split("-")[0] for p in (proj.cache / "store" / "sha256").rglob("*.whl"))


def _size(proj: EnvProject, *names: str) -> int:
    return sum(proj.server.entry(f"{n}-1.0-py3-none-any.whl").size for n in names)


def _prune(proj: EnvProject, *args: str) -> int:
    return main(["cache", "prune", "--cache-dir", str(proj.cache), *args])


def test_prune_removes_partial_downloads_and_files_unused_for_30_days(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert _prune(proj) == 0
    store = proj.cache / "store"
    assert capsys.readouterr().err == (
        f"Removed 1 file ({size_text(_size(proj, 'alpha'))}) and 1 partial download from "
        f"{store}; kept 2 files ({size_text(_size(proj, 'beta', 'gamma'))}).\n"
    )
    assert _left(proj) == ["beta", "gamma"]
    assert [p for p in (store / "partial").iterdir() if p.suffix != ".lock"] == []
    assert proj.run("sync") == 0  # nothing to do: the environment does not need the store


def test_older_than_and_max_size_choose_what_goes(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert _prune(proj, "--older-than", "5", "--json") == 0
    [event] = events(capsys.readouterr().out)
    assert event == {
        "event": "cache_pruned",
        "path": str(proj.cache / "store"),
        "removed": 2,
        "freed": _size(proj, "alpha", "beta"),
        "partial": 1,
        "kept": 1,
        "kept_bytes": _size(proj, "gamma"),
    }
    assert _left(proj) == ["gamma"]
    assert _prune(proj, "--older-than", "0", "--max-size", "0") == 0
    assert _left(proj) == []


def test_max_size_removes_the_least_recently_used_first(proj: EnvProject) -> None:
    limit = _size(proj, "beta", "gamma")
    assert _prune(proj, "--older-than", "100", "--max-size", str(limit)) == 0
    assert _left(proj) == ["beta", "gamma"]
    assert _prune(proj, "--older-than", "100", "--max-size", str(limit - 1)) == 0
    assert _left(proj) == ["gamma"]


def test_a_sync_after_a_prune_downloads_again(
    proj: EnvProject, index_server: IndexServer, tmp_path: Path
) -> None:
    assert _prune(proj, "--older-than", "0") == 0
    other = tmp_path / "env-2"
    proj.uv("venv", "-q", "--python", sys.executable, str(other))
    index_server.reset_counters()
    args = ["--project", str(proj.project), "--cache-dir", str(proj.cache), "--python", str(other)]
    assert main(["sync", *args]) == 0
    assert index_server.file_bytes_sent("alpha-1.0-py3-none-any.whl") == _size(proj, "alpha")
    assert _left(proj) == ["alpha", "beta", "gamma"]


@pytest.mark.parametrize(
    ("args", "lines"),
    [
        (
            ["--max-size", "10X"],
            [
                "error: --max-size: '10X' is not a size",
                "hint: give bytes, or a number with a unit: 500M, 10G, 2GiB",
            ],
        ),
        (
            ["--older-than", "-1"],
            ["error: --older-than: '-1' is not a number of days", "hint: give e.g. 30 or 0.5"],
        ),
    ],
)
def test_bad_options_are_refused_and_nothing_is_removed(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], args: list[str], lines: list[str]
) -> None:
    capsys.readouterr()
    assert main(["cache", "prune", *args, "--cache-dir", str(proj.cache)]) == 2
    assert capsys.readouterr().err.splitlines() == lines
    assert _left(proj) == ["alpha", "beta", "gamma"]


def test_a_store_in_use_by_a_running_sync_is_left_alone(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = subprocess.Popen(  # holds the store as a sync does, from its fetch to its installs
        [sys.executable, "-c", _HOLD, str(proj.cache / "store")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        capsys.readouterr()
        assert _prune(proj, "--older-than", "0", "--json") == 1
        [event] = events(capsys.readouterr().out)
        assert event == {
            "event": "error",
            "message": f"{proj.cache / 'store'}: a running envspec command is using the "
            "artifact store",
            "hint": "run 'envspec cache prune' again when it has finished",
            "exit_code": 1,
        }
        assert _left(proj) == ["alpha", "beta", "gamma"]
    finally:
        holder.kill()
        holder.wait()
    assert _prune(proj, "--older-than", "0") == 0
    assert _left(proj) == []


_HOLD = """
import sys, time
from pathlib import Path
from envspec.apply.store import Store
with Store(root=Path(sys.argv[1])).reading():
    print("holding", flush=True)
    time.sleep(60)
"""


def test_an_empty_or_absent_store_prunes_to_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache", "prune", "--cache-dir", str(tmp_path / "none"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 0
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("under", ["", "sub"])
def test_a_cache_folder_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], under: str
) -> None:
    """It said "Removed 0 files", exit 0: as if there were a store, and it were empty."""
    plain = tmp_path / "plain"
    plain.write_text("not a folder")
    cache = plain / under if under else plain
    assert main(["cache", "prune", "--cache-dir", str(cache)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {plain}: cannot read the artifact store: Not a directory",
        "hint: pass --cache-dir DIR (or set ENVSPEC_CACHE_DIR) to a folder",
    ]
    assert plain.read_text() == "not a folder"


@pytest.mark.parametrize(
    ("text", "size"),
    [("512", 512), ("10G", 10**10), ("1.5MB", 1_500_000), ("2GiB", 2 * 1024**3), ("3 kib", 3072)],
)
def test_sizes_take_decimal_and_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size
    with pytest.raises(UsageError):
        parse_size(text + "x")
