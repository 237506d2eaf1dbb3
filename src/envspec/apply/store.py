"""The artifact store: every file a sync installs, downloaded once, checked against the lock's
sha256 and kept by that hash for every environment on the machine.

It lives in `<cache>/store/`, `<cache>` being `--cache-dir` or the platform's user cache folder
(`platformdirs.user_cache_dir("envspec")`: `~/.cache/envspec` on Linux):
- `sha256/<h[:2]>/<h>/<filename>`: a verified file. It gets there only by a rename after its
  sha256 matched, so a file there was whole and right. Its folder's mtime is when a sync last
  used it; the file's own mtime is left alone, because uv keys its cache of a local wheel by
  it (a touched file would be unpacked again).
- `sha256/<h[:2]>/<h>/.verified`: the file's size, mtime, inode and inode change time when its
  sha256 last matched. A file whose stat differs (written to in place, replaced, or stored by
  an envspec before this stamp) is hashed again before it is used: one that still matches
  gets a new stamp, one that does not is downloaded again over it, with a warning. Hashing
  every use instead would cost a second or more per large wheel (torch: 2.4 GB) on each sync
  that installs it; the stamp makes it one `stat` and one small read.
- `partial/<h>`: a download in progress or cut off, resumed by the next try with HTTP Range;
  `partial/<h>.lock` lets one process download a file while the others wait for it.
- `store.lock`: a reader/writer lock (filelock's `ReadWriteLock`, one SQLite file). Syncs and
  rollbacks share it from their fetch to their last install; `envspec cache prune` holds it
  alone, so it never removes a file a running sync is about to install.

`fetch` downloads what is missing, in parallel threads, from the index's mirror where one is
set, with the index's credentials: that is the `Downloader` the CLI passes in
(`envspec.index.download.LockedFiles`; the apply layer imports no HTTP code). It reports a
`download` event at most every `INTERVAL` seconds per file and a `download_finished` per file.
The first failure stops the other downloads (their partial files stay, to be resumed) and
raises before anything is installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Protocol

from envspec.apply.events import DownloadFinished, DownloadProgressed, Fetching, Reporter
from envspec.errors import ApplyError, EnvspecError
from envspec.model import Artifact, LockedPackage

if TYPE_CHECKING:
    import filelock

STORE_DIR = "store"
STAMP = ".verified"  # beside a stored file: its stat when its sha256 last matched
_STAMP_MAX = 256
WORKERS = 6
INTERVAL = 0.25  # seconds between two `download` events of one file
log = logging.getLogger("envspec")
_HINT = "nothing was changed; run the command again to retry (a partial download resumes)"


class Downloaded(Protocol):
    """A finished download: the whole file's sha256 and size, the size of the partial
    file it resumed (0: downloaded whole), and where the bytes came from."""

    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def resumed_from(self) -> int: ...
    @property
    def url(self) -> str: ...


class Downloader(Protocol):
    """Downloads a locked file (canonical `url`, from `index`) into `path`, resuming it."""

    def download(
        self, url: str, index: str | None, path: Path, progress: Callable[[int, int | None], None]
    ) -> Downloaded: ...

    def close(self) -> None: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Wanted:
    """A file to have in the store: a lock's artifact (canonical, credential-free URL, with
    its sha256), and the index it was locked from, for that index's mirror."""

    artifact: Artifact
    index: str | None = None

    def __post_init__(self) -> None:
        if not self.artifact.sha256:
            name = self.artifact.filename
            raise ApplyError(f"'{name}' has no sha256 in the lock: it cannot be verified")

    @property
    def sha256(self) -> str:
        return self.artifact.sha256 or ""

    @property
    def filename(self) -> str:
        return self.artifact.filename


def wanted_of(package: LockedPackage) -> Wanted | None:
    """The file `package` installs from; None for a git source (uv fetches those)."""
    if package.artifact is None or package.vcs is not None:
        return None
    return Wanted(artifact=package.artifact, index=package.index)


@dataclass(frozen=True, kw_only=True, slots=True)
class Store:
    """The store folder (see the module docstring)."""

    root: Path

    def file(self, sha256: str, filename: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256 / filename

    def find(self, wanted: Wanted, *, check: bool = True) -> Path | None:
        """The stored file, if there, of the size the lock records (when it records one) and
        with its sha256: checked again when it changed since it was last checked (without
        `check`: not found then)."""
        path = self.file(wanted.sha256, wanted.filename)
        try:
            stat = path.stat()
        except OSError:
            return None
        if not S_ISREG(stat.st_mode) or wanted.artifact.size not in (None, stat.st_size):
            return None
        if _read_stamp(path.parent) == _stamp(stat):
            return path
        if not check:
            return None
        if _sha256_of(path) != wanted.sha256:
            log.warning(
                "%s: changed since its sha256 was checked, and it no longer matches: "
                "downloading it again",
                path,
            )
            return None
        write_stamp(path)
        return path

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the store shared (a sync or rollback using it)."""
        lock = self._lock()
        with lock.read_lock():
            yield

    @contextmanager
    def pruning(self) -> Iterator[None]:
        """Hold the store alone, or fail at once when a sync is using it."""
        import filelock

        lock = self._lock()
        try:
            lock.acquire_write(blocking=False)
        except filelock.Timeout as exc:
            raise ApplyError(
                "a running envspec command is using the artifact store",
                context=str(self.root),
                hint="run 'envspec cache prune' again when it has finished",
            ) from exc
        try:
            yield
        finally:
            lock.release()

    def _lock(self) -> filelock.ReadWriteLock:
        import filelock

        _make_dir(self.root)
        return filelock.ReadWriteLock(self.root / "store.lock", is_singleton=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class Files:
    """How a command gets files: the store, and a downloader made when one is needed.
    `bundle`: the (public) URL of the bundle that is the only source (`sync --bundle`)."""

    store: Store
    downloader: Callable[[], Downloader]
    offline: bool = False
    bundle: str | None = None


def _stamp(stat: os.stat_result) -> str:
    return f"{stat.st_size} {stat.st_mtime_ns} {stat.st_ino} {stat.st_ctime_ns}"


def _read_stamp(folder: Path) -> str | None:
    try:
        with (folder / STAMP).open("rb") as f:
            return f.read(_STAMP_MAX).decode("ascii")  # a stamp is ~60 bytes: garbage is cut
    except (OSError, UnicodeDecodeError):
        return None


def write_stamp(path: Path) -> None:
    """Record that the stored file at `path` has its sha256, as it is now."""
    with contextlib.suppress(OSError):  # a store we may not write to: checked on every use
        (path.parent / STAMP).write_text(_stamp(path.stat()), encoding="ascii")


def _sha256_of(path: Path) -> str | None:
    hasher = hashlib.sha256()  # hashlib.file_digest is 3.11+
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
    except OSError:
        return None
    return hasher.hexdigest()


def store_at(cache_root: Path | None) -> Store:
    """The store under envspec's cache folder (`--cache-dir`, else the user cache folder)."""
    if cache_root is None:
        import platformdirs

        cache_root = Path(platformdirs.user_cache_dir("envspec"))
    return Store(root=cache_root / STORE_DIR)


def _make_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ApplyError(
            f"cannot write the artifact store: {exc.strerror}", context=str(folder)
        ) from exc


# -- fetching ------------------------------------------------------------------------------


def fetch(files: Files, wanted: Sequence[Wanted], reporter: Reporter) -> dict[str, Path]:
    """Have every `wanted` file in the store, verified: their paths by sha256. Call it
    holding `files.store.reading()`."""
    store = files.store
    unique = list({w.sha256: w for w in wanted}.values())
    paths: dict[str, Path] = {}
    missing = []
    for item in unique:
        found = store.find(item)
        if found is None:
            missing.append(item)
        else:
            paths[item.sha256] = found
    total = sum(item.artifact.size or 0 for item in missing)
    reporter.fetching(Fetching(files=len(missing), bytes=total, stored=len(paths)))
    if missing and files.offline:
        names = ", ".join(item.filename for item in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ApplyError(
            f"not in the artifact store, and --offline forbids downloading: {names}{more}",
            context=str(store.root),
            hint="run without --offline; nothing was changed",
        )
    if missing:
        downloader = files.downloader()
        try:
            paths.update(_Downloads(store, downloader, reporter).run(missing))
        finally:
            downloader.close()
    for path in paths.values():
        _mark_used(path.parent)
    return paths


def _mark_used(folder: Path) -> None:
    with contextlib.suppress(OSError):  # a store we may not write to still serves its files
        os.utime(folder)


class _Stopped(Exception):
    """Another download failed: this one stops (its partial file stays)."""


class _Downloads:
    """The missing files of one fetch, downloaded in parallel."""

    def __init__(self, store: Store, downloader: Downloader, reporter: Reporter) -> None:
        self.store = store
        self.downloader = downloader
        self.reporter = reporter
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}

    def run(self, missing: Sequence[Wanted]) -> dict[str, Path]:
        _make_dir(self.store.root / "partial")
        pool = ThreadPoolExecutor(max_workers=min(WORKERS, len(missing)))
        try:
            futures = [pool.submit(self.one, item) for item in missing]
            wait(futures)
        except BaseException as exc:  # Ctrl-C: stop the downloads at their next chunk
            self.stop.set()
            # an interrupt does not wait: a stalled read would hold up the stop until its
            # timeout (the process ends without the threads, `cli.run`; a partial file is
            # resumed later)
            pool.shutdown(wait=not isinstance(exc, KeyboardInterrupt), cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        errors = [f.exception() for f in futures]
        first = next((e for e in errors if e is not None and not isinstance(e, _Stopped)), None)
        if first is not None:
            raise first
        return {item.sha256: f.result() for item, f in zip(missing, futures, strict=True)}

    def one(self, item: Wanted) -> Path:
        """Download one file into the store, unless another process did meanwhile."""
        import filelock

        try:
            with filelock.FileLock(self.store.root / "partial" / f"{item.sha256}.lock"):
                # stored meanwhile by another process (checked, stamped), or download it
                found = self.store.find(item, check=False)
                return found if found is not None else self._download(item)
        except BaseException:
            self.stop.set()
            raise

    def _download(self, item: Wanted) -> Path:
        part = self.store.root / "partial" / item.sha256
        start = time.perf_counter()
        got = self._get(item, part)
        if got.sha256 != item.sha256 and got.resumed_from:
            part.unlink(missing_ok=True)  # the partial file was of another file: start over
            got = self._get(item, part)
        if got.sha256 != item.sha256:
            part.unlink(missing_ok=True)
            raise ApplyError(
                f"{item.filename} from {got.url} has sha256 {got.sha256}, the lock "
                f"records {item.sha256}",
                hint="the server sent another file than the one locked; nothing was changed",
            )
        final = self.store.file(item.sha256, item.filename)
        try:
            _clear_way(final)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, final)
            write_stamp(final)
        except OSError as exc:
            raise ApplyError(
                f"cannot write {item.filename} to the artifact store: {exc.strerror}",
                context=str(final.parent),
            ) from exc
        seconds = round(time.perf_counter() - start, 3)
        with self._lock:
            done = DownloadFinished(name=item.filename, bytes=got.size, seconds=seconds)
            self.reporter.download_finished(done)
        return final

    def _get(self, item: Wanted, part: Path) -> Downloaded:
        def progress(done: int, total: int | None) -> None:
            self._progress(item, done, total)

        try:
            return self.downloader.download(item.artifact.url, item.index, part, progress)
        except EnvspecError as exc:
            raise _cannot(item, exc.message) from exc
        except OSError as exc:
            raise _cannot(item, f"cannot write {part}: {exc.strerror}") from exc

    def _progress(self, item: Wanted, done: int, total: int | None) -> None:
        if self.stop.is_set():
            raise _Stopped()
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(item.sha256, 0.0) < INTERVAL:
                return
            self._last[item.sha256] = now
            total = total or item.artifact.size
            progressed = DownloadProgressed(name=item.filename, bytes=done, total=total)
            self.reporter.download_progressed(progressed)


def _clear_way(final: Path) -> None:
    """Remove what stands where a stored file goes and the store has no use for: a file in
    place of its folders, a folder in place of the file (every sync failed on it, "Is a
    directory", and downloaded it again first)."""
    for folder in (final.parent.parent, final.parent):
        if folder.is_file() or folder.is_symlink():
            folder.unlink()
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)


def _cannot(item: Wanted, reason: str) -> ApplyError:
    return ApplyError(f"cannot download {item.filename}: {reason}", hint=_HINT)
