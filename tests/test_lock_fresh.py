"""The fresh-locks memo (`envspec.lockfile.fresh`): a check that found every lock fresh is
answered again from the memo, with the same output, without importing the model or
`packaging`; a changed spec, lock, variable or code, a warning, or a forced relock runs the
full check, which reports exactly what it did without the memo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envspec.cli import main
from envspec.lockfile import fresh
from envspec.lockfile.memo import memo_folder

ROOT = Path(__file__).parent.parent
UP_TO_DATE = [
    "windows-x86_64.cu121: up to date (locks/pylock.windows-x86_64-cu121.toml)",
    "windows-x86_64.cpu: up to date (locks/pylock.windows-x86_64-cpu.toml)",
    "linux-x86_64.cu121: up to date (locks/pylock.linux-x86_64-cu121.toml)",
    "macos-arm64: up to date (locks/pylock.macos-arm64.toml)",
]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This repository's spec and committed locks (fresh), as the current folder."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "envspec.toml", root / "envspec.toml")
    shutil.copytree(ROOT / "locks", root / "locks")
    monkeypatch.chdir(root)
    return root


def cache(project: Path) -> Path:
    return project.parent / "cache"


def entries(project: Path) -> list[Path]:
    folder = memo_folder(cache(project), "fresh")
    return sorted(folder.glob("*.json")) if folder.exists() else []


def lock(project: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["lock", "--offline", "--cache-dir", str(cache(project)), *args])
    found = capsys.readouterr()
    return code, found.out, found.err


@pytest.mark.parametrize("args", [(), ("--json",), ("--check",), ("--check", "--json"), ("-q",)])
def test_a_fresh_check_is_answered_again_from_the_memo_with_the_same_output(
    project: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    first = lock(project, capsys, *args)
    assert len(entries(project)) == 1  # -q too: warnings are caught even when hidden
    assert lock(project, capsys, *args) == first
    if not args:
        assert first == (0, "", "\n".join(UP_TO_DATE) + "\n")
    if args == ("--check",):
        assert first == (0, "", "All 4 locks are up to date.\n")
    if "--json" in args:  # --check too: it wrote no event
        events = [json.loads(line) for line in first[1].splitlines()]
        assert [(e["event"], e["target"], e["state"], e.get("variant")) for e in events] == [
            ("lock", "windows-x86_64", "fresh", "cu121"),
            ("lock", "windows-x86_64", "fresh", "cpu"),
            ("lock", "linux-x86_64", "fresh", "cu121"),
            ("lock", "macos-arm64", "fresh", None),
        ]


def test_the_memo_answers_without_the_model_or_packaging(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What makes it fast, read in a process of its own: a hit imports neither the model,
    nor the spec parser, nor `packaging`; a miss does."""
    assert lock(project, capsys)[0] == 0
    script = (
        "import sys; from envspec.cli import main; "
        f"code = main(['lock', '-q', '--offline', '--cache-dir', {str(cache(project))!r}]); "
        "print(code, sorted(m for m in sys.modules if m.startswith(('packaging', "
        "'envspec.model', 'envspec.spec'))))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, check=True)  # fmt: skip
    assert done.stdout == "0 []\n"
    (project / "envspec.toml").write_text((project / "envspec.toml").read_text() + "\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, check=True)  # fmt: skip
    assert done.stdout.startswith("0 ['envspec.model', 'envspec.spec'")


def test_a_spec_change_after_the_memo_is_found_stale(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lock(project, capsys)[0] == 0
    spec = project / "envspec.toml"
    spec.write_text(spec.read_text().replace('"numpy<2"', '"numpy<2.1"', 1))
    code, _, err = lock(project, capsys, "--check")
    assert code == 3
    assert err.startswith("error: locks out of date: windows-x86_64.cu121 (stale: phase ")
    assert "numpy<2 → numpy<2.1" in err


def test_a_lock_changed_or_gone_after_the_memo_is_checked_in_full(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lock(project, capsys)[0] == 0
    path = project / "locks" / "pylock.macos-arm64.toml"
    text = path.read_text()
    first = text.index('hashes = {sha256 = "') + len('hashes = {sha256 = "')
    path.write_text(text[:first] + text[first + 64 :])  # the first package's sha256 emptied
    code, _, err = lock(project, capsys, "--check")
    assert code == 2
    assert err.splitlines()[0] == (
        f"error: {Path('locks/pylock.macos-arm64.toml')}: packages[0].wheels[0].hashes.sha256: "
        "empty hash (expected 64 hexadecimal digits)"
    )
    path.unlink()
    code, _, err = lock(project, capsys, "--check")
    assert (code, err) == (
        3,
        "error: locks out of date: macos-arm64 (missing)\n"
        "hint: run 'envspec lock' and commit locks/\n",
    )
    path.write_text(text)
    assert lock(project, capsys, "--check")[0] == 0


def test_a_forced_relock_does_not_take_the_memo(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lock(project, capsys, "--check")[0] == 0
    for forced in (["--refresh"], ["--upgrade"], ["--upgrade-package", "numpy"]):
        code, _, err = lock(project, capsys, *forced)
        assert code == 1  # it resolves: offline, with an empty cache, it cannot
        assert err.splitlines()[-2:] == [
            "error: offline: https://pypi.org/simple/numpy/ is not in the cache",
            "hint: run without --offline",
        ]


def test_a_check_that_warned_is_not_memoized_so_it_warns_every_time(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project / "locks" / "pylock.macos-arm64.toml"
    path.write_text(path.read_text().replace('lock-version = "1.0"', 'lock-version = "1.1"', 1))
    warning = (
        f"WARNING: {Path('locks/pylock.macos-arm64.toml')}: lock-version 1.1 is newer than "
        "1.0; fields this envspec does not know are ignored"
    )
    for args in [("-q",), ()]:
        code, _, err = lock(project, capsys, *args)
        assert code == 0
        assert (warning in err.splitlines()) is (args == ())
        assert entries(project) == []


def test_the_memo_asks_for_the_same_variables_and_code(tmp_path: Path) -> None:
    """A `${VAR}` of the spec set to another value, unset, or other code: no answer."""
    project = tmp_path / "p"
    (project / "locks").mkdir(parents=True)
    (project / "envspec.toml").write_text('url = "https://${HOST}/simple"\n')
    (project / "locks" / "pylock.linux-x86_64.toml").write_text("lock\n")
    question = fresh.Question(project=project, targets=(), variant=None)
    environ = {"HOST": "a.example"}
    found = [fresh.FreshLock(target="linux-x86_64", variant=None,
                             path=project / "locks" / "pylock.linux-x86_64.toml")]  # fmt: skip
    folder = tmp_path / "memo"
    before = fresh.load_snapshot(question, environ)
    assert before is not None
    fresh.dump_fresh(folder, question, environ, before, found)
    assert fresh.load_fresh(folder, question, before) == found
    for other in ({"HOST": "b.example"}, {}):
        snapshot = fresh.load_snapshot(question, other)
        assert snapshot is not None
        assert fresh.load_fresh(folder, question, snapshot) is None
    [entry] = folder.glob("*.json")
    memo = json.loads(entry.read_text())
    assert "a.example" not in entry.read_text()  # a digest, not the value
    entry.write_text(json.dumps({**memo, "code": "0" * 64}))
    assert fresh.load_fresh(folder, question, before) is None
    entry.write_text("{not json")
    assert fresh.load_fresh(folder, question, before) is None


def test_files_changed_while_checked_are_not_memoized(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "locks").mkdir(parents=True)
    spec, path = project / "envspec.toml", project / "locks" / "pylock.linux-x86_64.toml"
    spec.write_text("spec\n")
    path.write_text("lock\n")
    question = fresh.Question(project=project, targets=(), variant=None)
    found = [fresh.FreshLock(target="linux-x86_64", variant=None, path=path)]
    folder = tmp_path / "memo"
    for changed in (spec, path):
        before = fresh.load_snapshot(question, {})
        assert before is not None
        changed.write_text("changed while the check read it\n")
        fresh.dump_fresh(folder, question, {}, before, found)
        assert not folder.exists()
    before = fresh.load_snapshot(question, {})
    assert before is not None
    fresh.dump_fresh(folder, question, {}, before, found)
    assert fresh.load_fresh(folder, question, before) == found


def test_a_lock_recorded_for_another_target_is_stale(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lock copied over another target's file (its inputs may well be equal: macOS arm64 and
    x86_64 share every setting) is not that target's lock."""
    path = project / "locks" / "pylock.macos-arm64.toml"
    path.write_text(path.read_text().replace('target = "macos-arm64"', 'target = "macos-x86_64"'))
    code, _, err = lock(project, capsys, "--check")
    assert (code, err) == (
        3,
        "error: locks out of date: macos-arm64 (stale: recorded for target macos-x86_64)\n"
        "hint: run 'envspec lock' and commit locks/\n",
    )
