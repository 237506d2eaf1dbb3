"""envspec.proc, the one door to child processes: real children (this interpreter, git), one
result type, credentials masked in what a child says, a missing program and a timeout named,
signals passed on, held descriptors inherited."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from envspec import proc
from envspec.cli import main
from envspec.errors import Interrupted

SECRET = "s3cret"
ENV = dict(os.environ)


def python(code: str) -> list[str]:
    return [sys.executable, "-I", "-c", code]


def test_stdout_is_data_and_what_a_child_says_is_masked() -> None:
    url = f"https://me:{SECRET}@repo.example/simple/"
    code = f"import sys; print({url!r}); print('failed: ' + {url!r}, file=sys.stderr)"
    done = proc.run(python(code), env=ENV, timeout=60)
    assert done.ok and done.returncode == 0
    assert done.stdout == f"{url}\n"  # a freeze line needs its credentials to be restored
    assert done.output == "failed: https://repo.example/simple/\n"
    assert done.tail() == "failed: https://repo.example/simple/"
    assert done.argv == tuple(python(code)) and done.seconds > 0


def test_merged_output_keeps_the_order_written_and_check_raises_on_failure() -> None:
    code = (
        "import sys\n"
        "print('one', flush=True)\n"
        "print('two', file=sys.stderr, flush=True)\n"
        "print('three', flush=True)\n"
        "sys.exit(3)\n"
    )
    with pytest.raises(proc.ProcessFailed) as failed:
        proc.check(python(code), env=ENV, timeout=60, merge=True)
    finished = failed.value.finished
    assert finished.returncode == 3 and not finished.ok
    assert (finished.stdout, finished.lines()) == ("", ["one", "two", "three"])
    assert finished.tail(2) == "two\nthree"


def test_a_missing_program_is_named() -> None:
    with pytest.raises(proc.CannotStart) as missing:
        proc.run(["envspec-no-such-program"], env=ENV, timeout=60)
    assert str(missing.value) == (
        "cannot run envspec-no-such-program: it is not installed or not on PATH"
    )


def test_a_child_past_its_timeout_is_killed() -> None:
    start = time.monotonic()
    with pytest.raises(proc.TimedOut) as late:
        proc.run(python("import time; time.sleep(60)"), env=ENV, timeout=0.5)
    assert str(late.value) == f"{Path(sys.executable).name} -I timed out after 0.5s"
    assert time.monotonic() - start < 30


def test_held_descriptors_are_inherited(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "held.lock", os.O_RDWR | os.O_CREAT)
    try:
        code = f"import os; print(os.readlink('/proc/self/fd/{fd}'))"
        with proc.inherited(fd):
            inside = proc.run(python(code), env=ENV, timeout=60)
        outside = proc.run(python(code), env=ENV, timeout=60)
    finally:
        os.close(fd)
    assert inside.stdout == f"{tmp_path / 'held.lock'}\n"
    assert not outside.ok and "FileNotFoundError" in outside.output


@pytest.mark.skipif(sys.platform == "win32", reason="no SIGTERM to send on Windows")
def test_a_forwarded_signal_stops_the_child_and_is_raised_after_it_ended() -> None:
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(Interrupted) as stopped:
            proc.run(python("import time; time.sleep(60)"), env=ENV, timeout=None,
                     forward_signals=True)  # fmt: skip
    finally:
        timer.cancel()
    assert stopped.value.exit_code == 143 and stopped.value.signal_name == "SIGTERM"
    assert str(stopped.value) == f"interrupted by SIGTERM while {Path(sys.executable).name} ran"
    assert time.monotonic() - start < 30
    assert signal.getsignal(signal.SIGTERM) == before  # the forwarding handler is gone


def test_diff_rev_without_git_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """git is looked for on the PATH of the CLI's snapshot; review words the missing program."""
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert main(["diff", "HEAD", "--project", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path}: git is not installed",
        "hint: install git, or compare lock folders",
    ]
