"""A forked worker (`envspec.forked`): its value comes back, what it logs and warns comes out
of the parent in the order it was made, a worker that fails is reported as such (its output
dropped), and no worker outlives its parent or a `close`."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envspec.forked import Forked, ForkFailed, Tell
from support.procs import gone

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


class _Heard(logging.Handler):
    def __init__(self, seen: list[tuple[str, object]]) -> None:
        super().__init__()
        self.seen = seen

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(("log", self.format(record)))


@pytest.fixture
def seen() -> Iterator[list[tuple[str, object]]]:
    found: list[tuple[str, object]] = []
    logger = logging.getLogger("envspec.test_forked")
    handler = _Heard(found)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield found
    logger.removeHandler(handler)


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.01)


def test_the_value_comes_back_and_the_output_comes_out_in_order_when_taken(
    seen: list[tuple[str, object]],
) -> None:
    log = logging.getLogger("envspec.test_forked")

    def work(tell: Tell) -> dict[str, object]:
        log.info("one %s", "arg")
        tell(("started", 1))
        log.warning("two")
        log.debug("not shown: below the logger's level")
        return {"value": [1, 2, 3]}

    copy = Forked(work)
    log.info("the parent's own")  # made while the child may be working: it comes first
    value = copy.result(lambda told: seen.append(("told", told)))
    assert value == {"value": [1, 2, 3]}
    assert seen == [
        ("log", "INFO: the parent's own"),
        ("log", "INFO: one arg"),
        ("told", ("started", 1)),
        ("log", "WARNING: two"),
    ]
    assert gone(copy.pid)


def test_a_warning_in_the_child_is_printed_by_the_parent(capfd: pytest.CaptureFixture[str]) -> None:
    def work(tell: Tell) -> int:
        warnings.warn("something old", DeprecationWarning, stacklevel=1)
        return 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        copy = Forked(work)
        assert capfd.readouterr().err == ""
        assert copy.result(lambda told: None) == 1
    err = capfd.readouterr().err
    assert err.count("DeprecationWarning: something old") == 1, err


@pytest.mark.parametrize(
    ("work", "reason"),
    [
        pytest.param(lambda tell: 1 / 0, "the worker exited with 1", id="raised"),
        pytest.param(lambda tell: lambda: None, "the worker exited with 1", id="unpicklable value"),
        pytest.param(
            lambda tell: os._exit(0),
            "the worker exited without a result",
            id="exited without a value",
        ),
        pytest.param(
            lambda tell: os.kill(os.getpid(), signal.SIGKILL),
            "the worker was killed by SIGKILL",
            id="killed",
        ),
    ],
)
def test_a_failed_worker_is_reported_and_its_output_dropped(
    work: Callable[[Tell], object], reason: str, seen: list[tuple[str, object]]
) -> None:
    log = logging.getLogger("envspec.test_forked")

    def logged(tell: Tell) -> object:
        log.warning("said before failing")
        tell("told before failing")
        return work(tell)

    copy = Forked(logged)
    with pytest.raises(ForkFailed) as caught:
        copy.result(lambda told: seen.append(("told", told)))
    assert str(caught.value) == reason
    assert seen == []
    copy.close()  # nothing left to do
    assert gone(copy.pid)


def _sleeping(tell: Tell) -> None:
    time.sleep(120)


def test_close_kills_a_working_child() -> None:
    copy = Forked(_sleeping)
    copy.close()
    assert gone(copy.pid)
    copy.close()


def test_the_child_ignores_sigint_which_the_parent_handles(tmp_path: Path) -> None:
    ready, go = tmp_path / "ready", tmp_path / "go"

    def work(tell: Tell) -> str:
        ready.touch()
        while not go.exists():
            time.sleep(0.01)
        return "done"

    copy = Forked(work)
    _wait_until(ready.exists)
    os.kill(copy.pid, signal.SIGINT)  # as a Ctrl-C reaches the whole foreground group
    go.touch()
    assert copy.result(lambda told: None) == "done"


def test_the_child_dies_with_its_parent(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        "import os, signal, sys, time\n"
        "from envspec.forked import Forked\n"
        "copy = Forked(lambda tell: time.sleep(120))\n"
        f"open({str(pid_file)!r}, 'w').write(str(copy.pid))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    # no pipe the child could hold open: only the kernel's death signal ends it
    parent = subprocess.run(
        [sys.executable, "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    assert parent.returncode == -signal.SIGKILL
    pid = int(pid_file.read_text())
    assert gone(pid, within=30)
