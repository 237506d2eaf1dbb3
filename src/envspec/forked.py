"""Forked workers: a copy of envspec itself (`os.fork`) doing a part of a command's work on
another CPU, as uv's threads do (Python's threads share one CPU). `envspec lock --offline`
resolves its targets so (`commands.lock`); with nothing to wait for on the network there,
threads would only take turns.

A `Forked` child:

- runs no code of the parent's on its way out (`os._exit`: no atexit handler, no flush of a
  stream another thread of the parent may have held at the fork);
- writes nothing to the terminal: its log records and Python warnings are sent back, and the
  parent emits them, in the order they were made, when it takes the result, so the output is
  the one the work would have given in the parent;
- ignores SIGINT (the terminal's Ctrl-C reaches the parent too, which kills it) and dies of
  SIGTERM as by default, and dies with the parent (`proc.tie_to_parent`);
- sends its result pickled through a pipe. `multiprocessing` does the same with ~5 ms more
  imports per run, and its child flushes the standard streams on its way out.

Only on Linux (`spare_cpus`): macOS makes a fork of a threaded process unsafe, Windows has
none; there the work is done in the parent, one part after another.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import warnings
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from envspec.proc import tie_to_parent

T = TypeVar("T")
Tell = Callable[[object], None]


def spare_cpus() -> int:
    """How many CPUs this process may run on besides the one it runs on, for `Forked`
    workers: 0 but on Linux."""
    if not sys.platform.startswith("linux"):
        return 0
    return len(os.sched_getaffinity(0)) - 1


class ForkFailed(Exception):
    """A forked worker raised, died or sent what could not be read: its caller does the
    work itself (and so gets its error, or its output, as its own)."""


class Forked(Generic[T]):
    """`work` running in a forked copy of this process, started at once. `work` is given
    `tell`, which sends a picklable message back. `result` waits for the child, emits its log
    records and warnings and hands its messages to `heard`, in the order they were made, and
    returns what `work` returned; `close` kills a child whose result was not taken."""

    def __init__(self, work: Callable[[Tell], T]) -> None:
        self._handlers = _every_handler()
        read, write = os.pipe()
        parent = os.getpid()
        self._pid = os.fork()
        if self._pid == 0:  # pragma: no cover - runs in the child, which never returns
            os.close(read)
            _work_and_exit(work, write, parent, self._handlers)
        os.close(write)
        self._read: int | None = read
        self._running = True

    @property
    def pid(self) -> int:
        return self._pid

    def result(self, heard: Callable[[Any], None]) -> T:
        messages = self._messages()
        code = self._end(kill=False)
        if code < 0:
            raise ForkFailed(f"the worker was killed by {signal.Signals(-code).name}")
        if code != 0:
            raise ForkFailed(f"the worker exited with {code}")
        if not messages or messages[-1][0] != "result":
            raise ForkFailed("the worker exited without a result")
        for kind, payload in messages[:-1]:
            if kind == "log":
                index, record = payload
                handler = self._handlers[index]
                handler.acquire()
                try:
                    handler.emit(record)
                finally:
                    handler.release()
            elif kind == "warning":
                sys.stderr.write(payload)
            else:
                heard(payload)
        value: T = messages[-1][1]
        return value

    def close(self) -> None:
        """Kill the child unless its result was taken (a failure or an interrupt here)."""
        if self._read is not None:
            os.close(self._take())
        if self._running:
            self._end(kill=True)

    def _messages(self) -> list[tuple[str, Any]]:
        messages = []
        with os.fdopen(self._take(), "rb") as stream:
            while True:
                try:
                    messages.append(pickle.load(stream))
                except EOFError:
                    return messages
                except Exception as exc:  # cut short: the child died midway
                    self._end(kill=True)
                    raise ForkFailed(f"unreadable result: {exc}") from exc

    def _take(self) -> int:
        assert self._read is not None
        fd, self._read = self._read, None
        return fd

    def _end(self, *, kill: bool) -> int:
        if kill:
            os.kill(self._pid, signal.SIGKILL)
        _, status = os.waitpid(self._pid, 0)
        self._running = False
        return os.waitstatus_to_exitcode(status)


def _every_handler() -> list[logging.Handler]:
    """Every logging handler a record could reach, in an order both processes share."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    found = [h for lg in loggers if isinstance(lg, logging.Logger) for h in lg.handlers]
    if logging.lastResort is not None:
        found.append(logging.lastResort)
    return list({id(h): h for h in found}.values())


def _work_and_exit(  # pragma: no cover - runs in the child
    work: Callable[[Tell], T], fd: int, parent: int, handlers: list[logging.Handler]
) -> None:
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        tie_to_parent(parent)
        with os.fdopen(fd, "wb") as stream:

            def send(kind: str, payload: object) -> None:
                pickle.dump((kind, payload), stream, protocol=pickle.HIGHEST_PROTOCOL)

            for index, handler in enumerate(handlers):
                handler.emit = _record_sender(send, index)  # type: ignore[method-assign,assignment]
            warnings.showwarning = _warning_sender(send)
            value = work(lambda message: send("told", message))
            send("result", value)
        code = 0
    finally:
        os._exit(code)


def _record_sender(
    send: Callable[[str, object], None], index: int
) -> Callable[[logging.LogRecord], None]:
    """A handler's `emit` in the child: the record, its message made final (its arguments and
    traceback may not pickle), sent for the parent's handler `index` to emit."""
    plain = logging.Formatter()

    def emit(record: logging.LogRecord) -> None:
        final = logging.makeLogRecord(record.__dict__)
        final.msg, final.args = plain.format(record), None
        final.exc_info, final.exc_text, final.stack_info = None, None, None
        send("log", (index, final))

    return emit


def _warning_sender(send: Callable[[str, object], None]) -> Callable[..., None]:
    """`warnings.showwarning` in the child: the warning's text sent for the parent to print."""

    def show(  # noqa: PLR0917 - the signature of warnings.showwarning
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: object = None,
        line: str | None = None,
    ) -> None:
        send("warning", warnings.formatwarning(message, category, filename, lineno, line))

    return show
