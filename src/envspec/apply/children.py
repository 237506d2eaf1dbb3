"""How the processes envspec starts are tied to it (`uv._run` starts them all).

No process envspec starts may go on changing an environment after envspec let go of it:

- every child inherits the descriptors of the environment locks envspec holds while starting
  it (`inherited`, set by `envlock.holding`), so a lock stays held for as long as any
  installer runs, even when envspec itself is killed;
- SIGINT and SIGTERM that reach envspec while a child runs are passed on to it and the child
  is waited for (`Forwarder`); then `uv._run` raises `Interrupted` (exit code 128 + the
  signal), which the commands report with the journal's rollback offer;
- on Linux a child started from the main thread dies with envspec (`dies_with_parent`): a
  sync killed with SIGKILL leaves no uv running under PID 1.

Killing uv in the middle of an install may leave the environment half-written. That is safe
because of the first point: the kernel releases the lock only when uv is gone, so no other
command can start while uv still writes, and the next one finds the journal and repairs the
environment (see `installed`). Without the death signal, an orphaned uv would finish its
phase on its own, still holding the lock: also safe, but it outlives the command that owns
it, which the user killed.

Why `PR_SET_PDEATHSIG` set in a `preexec_fn` (through ctypes): it is the kernel's own
mechanism, costs nothing while uv runs and needs no extra process. The alternatives add a
process or a tool for the same effect: a watchdog that kills uv when a pipe from envspec
closes, `setpriv --pdeathsig` (util-linux, not on every system), a cgroup. `preexec_fn` is
unsafe in a threaded program when the child runs code that may wait for a lock another
thread held at fork time; this one makes one libc call through a pointer looked up before
the fork, and one `getppid` (envspec may have died before the call, and then no signal would
come). The signal is SIGKILL: uv ends at once on SIGTERM too (measured), and SIGKILL cannot
be caught or ignored. Only the main thread sets it, because the death signal follows the
thread that forked, not the process: a child of a pool thread (the import probes) would be
killed when that thread ends. Elsewhere (macOS, Windows) the lock and the forwarding remain.
"""

from __future__ import annotations

import contextvars
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from types import FrameType, TracebackType
from typing import Any

_FORWARDED = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_INHERITED: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar(
    "envspec_inherited_fds", default=()
)


@contextmanager
def inherited(fd: int) -> Iterator[None]:
    """Every process started in this block inherits the descriptor `fd` (a held lock)."""
    token = _INHERITED.set((*_INHERITED.get(), fd))
    try:
        yield
    finally:
        _INHERITED.reset(token)


def inherited_fds() -> tuple[int, ...]:
    """The descriptors a process started now must inherit."""
    return _INHERITED.get()


class Forwarder:
    """While a child runs: SIGINT and SIGTERM passed on to it, and the last one remembered
    (signal handlers can only be set from the main thread; elsewhere this does nothing)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Forwarder:
        if threading.current_thread() is threading.main_thread():
            for number in _FORWARDED:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)

    def attach(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        if self.signal is not None:  # it came before the child existed
            self._pass_on(self.signal)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.signal = number
        if self.proc is not None:
            self._pass_on(number)

    def _pass_on(self, number: int) -> None:
        assert self.proc is not None
        if sys.platform == "win32":  # pragma: no cover - Windows has no SIGINT to send
            self.proc.terminate()
        else:
            self.proc.send_signal(number)


def dies_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child die with envspec (Linux, main thread only)."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:  # envspec died before the call: no signal will come
            os._exit(1)

    return arm


@cache
def _prctl() -> Callable[[int, int], int] | None:
    """libc's prctl, looked up once in the parent (the child must not load anything)."""
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_ulong]
    function.restype = ctypes.c_int
    found: Callable[[int, int], int] = function
    return found
