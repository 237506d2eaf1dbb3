"""OS file locks on environments, held by envspec and by every process it starts under them.

A lock is an exclusive `flock` on a file (`msvcrt.locking` on Windows). Two things make it
ours rather than `filelock`'s:

- the installers envspec starts must hold it too: `holding` hands the open descriptor to
  `envspec.proc`, which passes it to each child (`pass_fds`). A flock belongs to the open file,
  not to a process, so it stays held until the last process holding the descriptor is gone:
  if envspec dies while uv installs, nobody else can take the lock until uv has stopped
  writing. filelock keeps its descriptor private, and its at-fork hooks run in a child that
  has a `preexec_fn` (which `envspec.proc` uses on Linux);
- it is a handful of lines over the standard library.

The kernel drops the lock when the last holder exits, however it exits, so a killed command
never leaves a stale lock behind. Waiting polls every 50 ms until the timeout.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from envspec import proc

_POLL = 0.05


class Busy(Exception):
    """Someone else holds the lock (internal: callers turn it into their own message)."""


def acquire(path: Path, timeout: float) -> int:
    """Lock `path` (created when missing), waiting up to `timeout` seconds; the descriptor
    that holds it. `Busy` when it stays taken, `OSError` when the file cannot be opened."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                raise Busy(str(path))
            time.sleep(_POLL)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def holding(fd: int) -> Iterator[None]:
    """Keep the lock `acquire` returned while the block runs, handing it to every process
    started in it; release it (for our part) at the end."""
    try:
        with proc.inherited(fd):
            yield
    finally:
        os.close(fd)  # the lock is free once no child that inherited it is left either


def is_held(path: Path) -> bool:
    """Whether any process holds the lock on `path` now (this one included)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        return not _try_lock(fd)
    finally:
        os.close(fd)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import errno
    import fcntl

    _TAKEN = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)  # EACCES: some network filesystems

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in _TAKEN:
                return False
            raise
        return True
