"""`envspec cache prune`'s work on the artifact store (`apply.store`): partial downloads, then
files unused for a while, then the least recently used until the rest fits a size. It holds
the store alone (`Store.pruning`), so it never removes a file a running sync is about to
install; a file's last use is its folder's mtime, and its size leaves out the folder's
`.verified` stamp."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from envspec.apply.store import STAMP, Store
from envspec.errors import ApplyError


@dataclass(frozen=True, kw_only=True, slots=True)
class Pruned:
    """What `prune` removed and what it kept (files, bytes)."""

    removed: int
    freed: int
    kept: int
    kept_bytes: int
    partial: int  # partial downloads removed


def prune(store: Store, *, older_than: float | None, max_size: int | None, now: float) -> Pruned:
    """Remove partial downloads, files unused for `older_than` seconds, then the least
    recently used files until the rest fits in `max_size` bytes."""
    if not store.root.is_dir():
        _refuse_a_file_on_the_way(store.root)
        return Pruned(removed=0, freed=0, kept=0, kept_bytes=0, partial=0)
    with store.pruning():
        partial = _remove_partials(store.root / "partial")
        entries = sorted(_artifacts(store.root / "sha256"))  # oldest use first
        kept_bytes = sum(size for _, size, _ in entries)
        removed = freed = 0
        for used, size, folder in entries:
            too_old = older_than is not None and now - used > older_than
            too_big = max_size is not None and kept_bytes > max_size
            if not (too_old or too_big):
                continue
            _remove(folder)
            removed, freed, kept_bytes = removed + 1, freed + size, kept_bytes - size
    return Pruned(
        removed=removed,
        freed=freed,
        kept=len(entries) - removed,
        kept_bytes=kept_bytes,
        partial=partial,
    )


def _artifacts(folder: Path) -> Iterator[tuple[float, int, Path]]:
    """(last use, bytes, folder) of each stored file."""
    for prefix in _listdir(folder):
        if not prefix.is_dir():  # a stray file where a folder of files goes: pruned as one
            with contextlib.suppress(OSError):
                stat = prefix.lstat()
                yield stat.st_mtime, stat.st_size, prefix
            continue
        for entry in _listdir(prefix):
            try:
                used = entry.stat().st_mtime
                files = [f for f in entry.iterdir() if f.is_file() and f.name != STAMP]
                size = sum(f.stat().st_size for f in files)
            except OSError:
                continue
            yield used, size, entry


def _refuse_a_file_on_the_way(root: Path) -> None:
    """A store not made yet has nothing to prune; one under a file never can have ("Removed 0
    files" said all was well)."""
    for folder in (root, *root.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ApplyError(
                    "cannot read the artifact store: Not a directory",
                    context=str(folder),
                    hint="pass --cache-dir DIR (or set ENVSPEC_CACHE_DIR) to a folder",
                )
            return


def _remove_partials(folder: Path) -> int:
    count = 0
    for entry in _listdir(folder):
        if not entry.name.endswith(".lock"):
            count += 1
        _remove(entry)
    return count


def _listdir(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _remove(path: Path) -> None:
    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as exc:
        raise ApplyError(
            f"cannot remove {path.name}: {exc.strerror}", context=str(path.parent)
        ) from exc
