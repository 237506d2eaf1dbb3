"""The one door to child processes: every process envspec starts — uv (installs, environments,
build environments), git (sources, `diff REV`), PEP 517 hooks (pyproject-hooks takes
`HookRunner`), the target interpreter (its facts, the import probes) — is started by `run`.
The callers decide *what* to run and word their own errors (they know what was attempted);
this module decides *how*, the same for all:

- stdin is closed (a git password prompt fails instead of hanging a command);
- the result is one `Finished`: ``stdout`` verbatim, as data (a freeze, a probe's JSON, a
  lock's text, git's refs), and ``output``, what the child wrote for a person (its stderr, or
  with ``merge`` both streams in the order written) with every URL's credentials removed
  (`envspec.secret.redact`): the one place a child's words are masked;
- a program that cannot be started is `CannotStart`; one still running after its timeout is
  killed and `TimedOut`; both are `EnvspecError`s a caller may reword;
- every child is tied to envspec (below); with ``forward_signals`` (the installers and the
  probes of an environment command) SIGINT and SIGTERM are passed on to it too, and the child
  is waited for: `run` then raises `Interrupted` (exit code 128 + the signal), which the
  commands report with the journal's rollback offer. Without it, a Ctrl-C reaches the child
  from the terminal, the child is killed and `KeyboardInterrupt` goes on up.

No child may go on changing an environment after envspec let go of it:

- every child inherits the descriptors of the environment locks envspec holds while starting
  it (`inherited`, set by `apply.envlock.holding`), so a lock stays held for as long as any
  installer runs, even when envspec itself is killed;
- on Linux a child started from the main thread dies with envspec (`_dies_with_parent`): a
  sync killed with SIGKILL leaves no uv running under PID 1.

Killing uv in the middle of an install may leave the environment half-written. That is safe
because of the first point: the kernel releases the lock only when uv is gone, so no other
command can start while uv still writes, and the next one finds the journal and repairs the
environment (see `apply.installed`). Without the death signal, an orphaned uv would finish
its phase on its own, still holding the lock: also safe, but it outlives the command that
owns it, which the user killed.

Why `PR_SET_PDEATHSIG` set in a `preexec_fn` (through ctypes): it is the kernel's own
mechanism, costs nothing while the child runs and needs no extra process. The alternatives add
a process or a tool for the same effect: a watchdog that kills uv when a pipe from envspec
closes, `setpriv --pdeathsig` (util-linux, not on every system), a cgroup. `preexec_fn` is
unsafe in a threaded program when the child runs code that may wait for a lock another
thread held at fork time; this one makes one libc call through a pointer looked up before
the fork, and one `getppid` (envspec may have died before the call, and then no signal would
come). The signal is SIGKILL: uv ends at once on SIGTERM too (measured), and SIGKILL cannot
be caught or ignored. Only the main thread sets it, because the death signal follows the
thread that forked, not the process: a child of a pool thread (the import probes) would be
killed when that thread ends. Elsewhere (macOS, Windows) the lock and the forwarding remain.

Copies of envspec itself (`os.fork`) are `envspec.forked`'s; they die with it by `tie_to_parent`.

`subprocess` is imported nowhere else (import-linter's "Only envspec.proc starts processes").
"""

from __future__ import annotations

import contextvars
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from envspec.errors import EnvspecError, Interrupted
from envspec.secret import redact

TAIL_LINES = 12
_FORWARDED = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_INHERITED: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar(
    "envspec_inherited_fds", default=()
)


# The one installer setting a uv child takes from the user's environment: where uv's cache is
# (uv's own variable; `--cache-dir`, given explicitly, wins over it). Every other `UV_*` and
# `PIP_*` variable could change what is resolved or installed (indexes, constraints, build
# and binary policies, offline mode, config files), so none reaches an installer.
PASSED_TO_UV = frozenset({"UV_CACHE_DIR"})


def without_installer_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without its `UV_*` and `PIP_*` variables but those in `PASSED_TO_UV`."""
    return {
        k: v for k, v in environ.items() if k in PASSED_TO_UV or not k.startswith(("UV_", "PIP_"))
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class Finished:
    """A process that ran to its end (see the module docstring for `stdout` and `output`)."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str  # verbatim; empty with `merge`
    output: str  # stderr, or both streams with `merge`; credentials removed
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def lines(self) -> list[str]:
        """The non-blank lines of `output`."""
        return [line.rstrip() for line in self.output.splitlines() if line.strip()]

    def tail(self, count: int = TAIL_LINES) -> str:
        """The last `count` non-blank lines of `output`, for an error report."""
        return "\n".join(self.lines()[-count:])


class CannotStart(EnvspecError):
    """The program is missing or cannot be executed."""


class TimedOut(EnvspecError):
    """The process ran past its timeout and was killed."""


class ProcessFailed(Exception):
    """A process exited non-zero (`check`, `HookRunner`); its caller words the error."""

    def __init__(self, finished: Finished) -> None:
        super().__init__(f"{finished.argv[0]} exited with {finished.returncode}")
        self.finished = finished


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float | None,
    cwd: Path | None = None,
    merge: bool = False,
    forward_signals: bool = False,
) -> Finished:
    """Run `argv` in `env` (the CLI's snapshot, as the caller shaped it) to its end; see the
    module docstring."""
    start = time.perf_counter()
    with _Forwarder(enabled=forward_signals) as forwarder:
        try:
            child = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if merge else subprocess.PIPE,
                encoding="utf-8",
                errors="replace",
                pass_fds=_INHERITED.get(),
                preexec_fn=_dies_with_parent(),  # noqa: PLW1509 - see the module docstring
            )
        except FileNotFoundError as exc:
            raise CannotStart(
                f"cannot run {Path(argv[0]).name}: it is not installed or not on PATH"
            ) from exc
        except OSError as exc:
            raise CannotStart(f"cannot run {Path(argv[0]).name}: {exc.strerror}") from exc
        forwarder.attach(child)
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except BaseException as exc:  # a timeout, or a signal that is not forwarded
            child.kill()
            child.communicate()
            if isinstance(exc, subprocess.TimeoutExpired):
                shown = " ".join([Path(argv[0]).name, *argv[1:2]])
                raise TimedOut(f"{shown} timed out after {timeout:g}s") from exc
            raise
    if forwarder.signal is not None:
        name = signal.Signals(forwarder.signal).name
        raise Interrupted(
            f"interrupted by {name} while {Path(argv[0]).name} ran", signal_number=forwarder.signal
        )
    return Finished(
        argv=tuple(argv),
        returncode=child.returncode,
        stdout="" if merge else stdout,
        output=redact((stdout if merge else stderr) or ""),
        seconds=time.perf_counter() - start,
    )


def check(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float | None,
    cwd: Path | None = None,
    merge: bool = False,
) -> Finished:
    """`run`, raising `ProcessFailed` on a non-zero exit."""
    finished = run(argv, env=env, timeout=timeout, cwd=cwd, merge=merge)
    if not finished.ok:
        raise ProcessFailed(finished)
    return finished


class HookRunner:
    """A pyproject-hooks subprocess runner: each hook runs in `env` (plus what pyproject-hooks
    adds), its output kept for the error tail instead of spilling onto envspec's stderr."""

    def __init__(self, env: Mapping[str, str], timeout: float) -> None:
        self._env = dict(env)
        self._timeout = timeout

    def __call__(
        self,
        cmd: Sequence[str],
        cwd: str | None = None,
        extra_environ: Mapping[str, str] | None = None,
    ) -> None:
        env = {**self._env, **(extra_environ or {})}
        check(cmd, env=env, timeout=self._timeout, cwd=Path(cwd) if cwd else None, merge=True)


# -- how children are tied to envspec ------------------------------------------------------


@contextmanager
def inherited(fd: int) -> Iterator[None]:
    """Every process started in this block inherits the descriptor `fd` (a held lock)."""
    token = _INHERITED.set((*_INHERITED.get(), fd))
    try:
        yield
    finally:
        _INHERITED.reset(token)


class _Forwarder:
    """While a child runs: SIGINT and SIGTERM passed on to it, and the last one remembered
    (signal handlers can only be set from the main thread; elsewhere this does nothing)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.child: subprocess.Popen[str] | None = None
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Forwarder:
        if self.enabled and threading.current_thread() is threading.main_thread():
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

    def attach(self, child: subprocess.Popen[str]) -> None:
        self.child = child
        if self.signal is not None:  # it came before the child existed
            self._pass_on(self.signal)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.signal = number
        if self.child is not None:
            self._pass_on(number)

    def _pass_on(self, number: int) -> None:
        assert self.child is not None
        if sys.platform == "win32":  # pragma: no cover - Windows has no SIGINT to send
            self.child.terminate()
        else:
            self.child.send_signal(number)


def _dies_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child die with envspec (Linux, main thread only)."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    if _prctl() is None:  # looked up here: the child must not load anything
        return None
    parent = os.getpid()
    return lambda: tie_to_parent(parent)


def tie_to_parent(parent: int) -> None:
    """In a child of `parent` (Linux): be killed when `parent` ends, or end at once if it
    has ended already (then no signal would come)."""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:
        os._exit(1)


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
