"""Replacing a file (with new bytes, or a copy of another file), or putting a finished folder
in place, so that readers see the old state or the new one, never a part: the one way envspec
writes what another process may be reading (cache entries, locks, an environment's state
files, a bundle being served) and places a git checkout.

A file is written to a temporary sibling, synced to disk when a crash must not lose it, then
renamed over the target with `os.replace`, atomic on POSIX and Windows within one file system.
A folder is built under a temporary name by the caller and renamed into place; when another
process placed one first, theirs is kept. Errors are the OS's: each caller words its own, as it
knows what it was writing. Low in the layers (it imports nothing of envspec) so the index, the
lockfile and the apply layers share it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(
    path: Path, data: bytes, *, mode: int | None = None, durable: bool = False
) -> None:
    """Replace `path` with `data` atomically, creating its folder. `mode`: the file's
    permissions (else the temporary file's 0600); `durable`: synced to disk before the rename,
    for files a crash must not leave empty (locks, journals)."""

    def fill(out: BinaryIO) -> None:
        out.write(data)
        if durable:
            out.flush()
            os.fsync(out.fileno())

    _replace(path, fill, mode)


def copy_atomic(source: Path, path: Path, *, mode: int | None = None) -> None:
    """Replace `path` with a copy of the file `source` atomically, creating its folder;
    `mode` as for `write_atomic`."""

    def fill(out: BinaryIO) -> None:
        with source.open("rb") as data:
            shutil.copyfileobj(data, out, 1 << 20)

    _replace(path, fill, mode)


def _replace(path: Path, fill: Callable[[BinaryIO], None], mode: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def place_folder(built: Path, dest: Path) -> None:
    """Rename the finished folder `built` to `dest`. A `dest` that another process placed
    first wins; `built` is then left for the caller to remove."""
    try:
        os.replace(built, dest)
    except OSError:
        if not dest.is_dir():  # not a lost race: a real failure
            raise
