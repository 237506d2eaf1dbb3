"""The checked-lock memo (`envspec.lockfile.memo`): bytes read in full once are read back from
the cache, equal to a full read; any other bytes are read and checked in full, so an edited
or damaged lock is refused by `lock` and `lock --check` exactly as without the memo; what the
memo cannot keep, or a memo it cannot trust, falls back to the full read."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from envspec.cli import main
from envspec.errors import LockFileError
from envspec.lockfile import load_lock
from envspec.lockfile.memo import memo_folder

ROOT = Path(__file__).parent.parent
DAMAGED = "the lock was edited or damaged: restore it, or delete it and run 'envspec lock'"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """This repository's spec and committed locks (fresh: an unchanged relock needs no
    network)."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "envspec.toml", root / "envspec.toml")
    shutil.copytree(ROOT / "locks", root / "locks")
    return root


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.exists() else []


def relock(project: Path, *args: str) -> int:
    cache = project.parent / "cache"
    return main(["lock", "-q", "--project", str(project), "--cache-dir", str(cache), *args])


def test_a_memoized_read_equals_the_full_read(project: Path, tmp_path: Path) -> None:
    folder = memo_folder(tmp_path / "cache")
    paths = sorted((project / "locks").glob("*.toml"))
    full = [load_lock(path) for path in paths]
    assert entries(folder) == []
    assert [load_lock(path, memo=folder) for path in paths] == full  # read in full, memoized
    assert len(entries(folder)) == len(paths)
    assert [load_lock(path, memo=folder) for path in paths] == full  # from the memo
    assert memo_folder(tmp_path / "cache") == tmp_path / "cache" / "v1" / "locks"


@pytest.mark.parametrize("check", [False, True], ids=["lock", "lock --check"])
def test_an_edit_after_a_memoized_relock_is_refused_as_before(
    project: Path, capsys: pytest.CaptureFixture[str], check: bool
) -> None:
    assert relock(project) == 0
    assert relock(project) == 0  # from the memo
    path = project / "locks" / "pylock.linux-x86_64-cu121.toml"
    text = path.read_text()
    first = text.index('hashes = {sha256 = "') + len('hashes = {sha256 = "')
    path.write_text(text[:first] + text[first + 64 :])  # the first package's sha256 emptied
    capsys.readouterr()
    assert relock(project, *["--check"] * check) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}: packages[0].wheels[0].hashes.sha256: empty hash (expected 64 "
        "hexadecimal digits)",
        f"hint: {DAMAGED}",
    ]
    path.write_text(text)  # restored: the memo's bytes again
    assert relock(project, *["--check"] * check) == 0


def test_a_lock_refused_is_not_memoized(project: Path, tmp_path: Path) -> None:
    folder = memo_folder(tmp_path / "cache")
    path = project / "locks" / "pylock.macos-arm64.toml"
    path.write_text(path.read_text().replace('\nversion = "', '\nversion = "x', 1))
    for _ in range(2):
        with pytest.raises(LockFileError, match=r"packages\[0\]\.version: invalid version"):
            load_lock(path, memo=folder)
    assert entries(folder) == []


def test_a_damaged_or_foreign_memo_is_ignored_and_written_again(
    project: Path, tmp_path: Path
) -> None:
    folder = memo_folder(tmp_path / "cache")
    path = project / "locks" / "pylock.windows-x86_64-cu121.toml"
    full = load_lock(path)
    load_lock(path, memo=folder)
    [entry] = entries(folder)
    good = entry.read_bytes()
    memo = json.loads(good)
    foreign = {**memo, "code": "0" * 64, "lock": {**memo["lock"], "target": "other"}}
    for bad in (b"{not json", json.dumps({**memo, "lock": [1]}).encode(),
                json.dumps(foreign).encode()):  # fmt: skip
        entry.write_bytes(bad)
        assert load_lock(path, memo=folder) == full
        assert entry.read_bytes() == good


def test_a_memo_of_other_bytes_is_not_used(project: Path, tmp_path: Path) -> None:
    """The memo of a lock's old bytes is no answer for its new ones, even a stale memo
    whose Lock differs: the new bytes are read in full and memoized instead."""
    folder = memo_folder(tmp_path / "cache")
    path = project / "locks" / "pylock.windows-x86_64-cu121.toml"
    load_lock(path, memo=folder)
    text = path.read_text()
    path.write_text(text.replace('target = "windows-x86_64"', 'target = "win"'))
    assert load_lock(path, memo=folder).target == "win"
    path.write_text(text)
    assert load_lock(path, memo=folder).target == "windows-x86_64"


def test_a_newer_lock_version_is_never_memoized_so_it_warns_on_every_read(
    project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = memo_folder(tmp_path / "cache")
    path = project / "locks" / "pylock.linux-x86_64-cu121.toml"
    path.write_text(path.read_text().replace('lock-version = "1.0"', 'lock-version = "1.1"', 1))
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="envspec"):
            load_lock(path, memo=folder)
        assert [r.getMessage() for r in caplog.records] == [
            f"{path}: lock-version 1.1 is newer than 1.0; fields this envspec does not know "
            "are ignored"
        ]
    assert entries(folder) == []


def test_inputs_json_cannot_keep_are_not_memoized(project: Path, tmp_path: Path) -> None:
    """A date-time among a (hand-edited) lock's inputs would come back from JSON as text: such
    a lock is read in full every time, and reads the same."""
    folder = memo_folder(tmp_path / "cache")
    path = project / "locks" / "pylock.linux-x86_64-cu121.toml"
    text = path.read_text()
    path.write_text(text.replace("[tool.envspec.inputs]\n", "[tool.envspec.inputs]\n"
                                 "when = 2026-01-01T00:00:00Z\n", 1))  # fmt: skip
    first = load_lock(path, memo=folder)
    assert entries(folder) == []
    assert load_lock(path, memo=folder) == first
