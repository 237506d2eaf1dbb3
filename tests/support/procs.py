"""Watching real processes through /proc (Linux): a sync's installer children, whether a
process has ended, what it holds open, and who is still working on an environment."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from support.index_server import IndexServer

PROC = Path("/proc")


def children(pid: int) -> list[int]:
    try:
        text = (PROC / str(pid) / "task" / str(pid) / "children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def installer(pid: int, phase: int, timeout: float = 60) -> int:
    """The uv that installs the `phase`-th phase (0-based) of the sync `pid`, once it runs."""
    return child(pid, " install ", phase, timeout)


def child(pid: int, word: str, index: int = 0, timeout: float = 60) -> int:
    """The `index`-th child (0-based) of `pid` whose command line holds `word`, once it runs."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for found in children(pid):
            if found not in seen and word in cmdline(found):
                seen.append(found)
        if len(seen) > index:
            return seen[index]
    raise AssertionError(f"no child of {pid} running {word!r} (#{index})")


def gone(pid: int, within: float = 10) -> bool:
    """Whether `pid` has ended (a zombie nobody reaped yet counts) within `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            status = (PROC / str(pid) / "status").read_text()
        except OSError:
            return True
        if "\nState:\tZ" in status:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def open_files(pid: int) -> list[str]:
    folder = PROC / str(pid) / "fd"
    found = []
    for fd in os.listdir(folder):
        try:
            found.append(os.readlink(folder / fd))
        except OSError:
            continue
    return found


def working_on(env: Path) -> list[str]:
    """Command lines of live processes other than envspec's own that name `env` (a uv)."""
    found = []
    for pid in filter(str.isdigit, os.listdir(PROC)):
        text = cmdline(int(pid))
        ours = "envspec" in text or "pytest" in text
        if str(env) in text and not ours and not gone(int(pid), within=0):
            found.append(text)
    return found


def interrupt_on_stall(
    proc: subprocess.Popen[str], server: IndexServer, stalled: Callable[[str], bool], sent: int
) -> tuple[str, str]:
    """Once `server` was asked for a path `stalled` picks (a request its "timeout" fault
    holds), send `sent` to `proc`, and return its stdout and stderr: a command stopped while a
    read hangs must end at once (within 10 s, not the read's 30 s timeout)."""
    deadline = time.monotonic() + 30
    while not any(stalled(path) for path in server.paths_requested()):
        assert time.monotonic() < deadline, "no stalled request was made"
        time.sleep(0.05)
    os.kill(proc.pid, sent)
    return proc.communicate(timeout=10)
