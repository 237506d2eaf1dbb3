"""The lockfile: `model.Lock` ⇄ PEP 751 ``locks/pylock.<target>.toml`` (DESIGN.md §6).

`dump_lock` (module `dump`) and `parse_lock` (module `parse`) are pure; `load_lock` and
`write_locks` (a run's locks, all written or none: ``<file>: cannot write the lock: <reason>``,
`WriteError`, exit 1), here, are the file edges.
Writing is `dump`'s own small TOML writer (tomlkit's layout at a thirtieth of its cost: one
``[[packages]]`` block per package, one wheel and one phase per line, inputs as sub-tables with
sorted keys), stable, so locking twice gives the same bytes. Reading uses `tomllib` (via
`tomlread`) with our own field checks (every field envspec reads, in envspec's words, and
``[tool.envspec]``, which `packaging.pylock` knows nothing of), then `packaging.pylock` for the
rest of the standard, its errors wrapped with the file name (module `parse`).

What a lock holds: one file per package (a wheel or an sdist, as `model.Artifact`: name, URL,
size, sha256, upload time) or a git source (``[packages.vcs]``); ``[packages.tool.envspec]``
with the package's phase and who required it; ``[tool.envspec]`` with the target, for a lock of an
accelerator variant its ``variant`` and ``needs`` (``{cuda-driver, compute-capability}``,
specifiers; absent for a CPU build), the phases and the inputs the lock was made from, and,
when compatibility rules are about its packages, ``[tool.envspec.rules]``: the built-in rule
set's ``version`` and ``applied``, one ``{id, sha256, source}`` per rule (``sha256``: a
digest of what the rule says). Index listing details (yanked, requires-python of the file,
PEP 658 metadata) are not recorded.
Packages are sorted by name, ``required-by`` is sorted, user names and passwords are removed
from every URL (except an ssh account name), and upload times are written as UTC TOML
date-times (read back as aware UTC `datetime`s). Inputs may hold strings, integers, floats,
booleans, arrays and tables (no None: TOML has no null).
Reading ignores keys it does not know (a newer 1.x lock may add some).

Errors are `LockFileError` (exit 2); ``str(error)`` is ``<file>: <path>: <message>``:

- ``<file>:<line>:<col>: invalid TOML: <tomllib's reason>``
- ``<file>: invalid lock-version 'x'`` ·
  ``<file>: unsupported lock-version '2.0' (this envspec reads 1.x)``, hint
  ``upgrade envspec to read this lock``; a newer 1.x logs the warning
  ``<file>: lock-version 1.3 is newer than 1.0; fields this envspec does not know are
  ignored`` on the ``envspec`` logger
- ``<file>: missing required table [tool.envspec]`` ·
  ``<file>: packages[3]: missing required table [packages.tool.envspec]``
- ``<file>: packages[3]: missing required key 'version'`` · ``...: expected a string, got
  integer`` (the generic `tomlread` messages, with the field's path)
- ``<file>: packages[3].name: package name 'Foo_Bar' is not normalized`` ·
  ``<file>: packages[3].version: invalid version '1..0'`` ·
  ``<file>: environments[0]: invalid marker 'x'`` ·
  ``<file>: requires-python: invalid requires-python 'x'``
- ``<file>: packages[3].name: invalid package name 'foo bar'`` ·
  ``<file>: packages[3].marker: invalid marker 'x'`` ·
  ``<file>: packages[3].requires-python: invalid requires-python 'x'``
- integrity (hint ``the lock was edited or damaged: restore it, or delete it and run
  'envspec lock'``): ``<file>: packages[3].wheels[0].hashes.sha256: empty hash (expected 64
  hexadecimal digits)`` · ``...: invalid sha256 hash 'abc' (expected 64 hexadecimal
  digits)`` (any other listed hash: its algorithm's length) ·
  ``<file>: packages[3].wheels[0].url: URL 'ftp://h/f.whl' has scheme 'ftp' (expected an
  http, https or file URL)`` · ``...: URL 'f.whl' has no scheme (...)`` ·
  ``...: URL 'https:///f.whl' has no host`` · ``...: invalid URL 'https://h:99999/f.whl'``
  (credentials never shown) · ``<file>: packages[3].wheels[0].size: invalid size -1 (a
  file's size is 0 bytes or more)`` · ``<file>: packages[3].wheels[0].name: wheel
  'numpy-1.26.3-….whl' is not numpy 1.26.4`` · ``...: invalid wheel file name 'x.whl'`` ·
  ``<file>: packages[2].vcs.commit-id: invalid commit-id 'main' (expected a full commit id:
  40 hexadecimal digits, or 64 for a SHA-256 repository)``
- ``<file>: packages[3]: no source: expected one of wheels, sdist, vcs`` ·
  ``<file>: packages[3]: more than one source: wheels, sdist`` ·
  ``<file>: packages[3]: unsupported source 'directory' (envspec locks hold wheels, sdist or
  vcs)`` · ``<file>: packages[3].wheels: expected exactly one wheel, got 2`` ·
  ``<file>: packages[3].vcs.type: unsupported vcs type 'hg'``
- what only `packaging.pylock` checks, its words lower-cased after the path it names (hint
  as for integrity): ``<file>: packages[3].sdist: version in 'a-1.1.tar.gz' is not
  consistent with package version '1.0'`` · ``<file>: extras[0]: name 'A_B' is not
  normalized`` · ``<file>: packages[3].dependencies: unexpected type str (expected
  Sequence)``

`dump_lock` refuses a package without a source or a file without a sha256 hash
(``cannot lock 'x' 1.0: no artifact or git source`` / ``cannot lock 'f.whl' without a sha256
hash``, context ``lock for <target>``) and inputs it cannot write
(``tool.envspec.inputs.a.b[1]: cannot write NoneType to a lock``); `load_lock` raises
`StaleLockError` (``<file>: no lock file``, exit 3) for a missing file.
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envspec.errors import LockFileError, StaleLockError, WriteError

if TYPE_CHECKING:
    from envspec.lockfile.dump import CREATED_BY, LOCK_VERSION, dump_lock
    from envspec.lockfile.parse import parse_lock
    from envspec.model import Lock

__all__ = [
    "CREATED_BY",
    "LOCK_VERSION",
    "dump_lock",
    "legacy_lock_path",
    "load_lock",
    "lock_path",
    "parse_lock",
    "remove_legacy_locks",
    "write_lock",
    "write_locks",
]


def __getattr__(name: str) -> Any:
    """The writing side (`dump`) and the reading side (`parse`), imported when first asked
    for: a lock read from the memo needs neither (`parse` brings `packaging.pylock`, ~10 ms of
    imports)."""
    if name in ("CREATED_BY", "LOCK_VERSION", "dump_lock"):
        from envspec.lockfile import dump

        return getattr(dump, name)
    if name == "parse_lock":
        from envspec.lockfile.parse import parse_lock

        return parse_lock
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def lock_path(project_dir: Path, target: str, variant: str | None = None) -> Path:
    """Where the lock for `target` (and its accelerator `variant`, if any) lives in a
    project: ``locks/pylock.<target>.toml`` or ``locks/pylock.<target>-<variant>.toml``."""
    from envspec.model import pylock_name  # here: a fresh-lock memo hit imports no model

    return project_dir / "locks" / pylock_name(f"{target}.{variant}" if variant else target)


def legacy_lock_path(project_dir: Path, target: str, variant: str) -> Path:
    """Where envspec before 2026-12-03 wrote a variant's lock, ``pylock.<target>.<variant>.toml``,
    a name PEP 751 does not allow: read as the lock's previous version, removed once relocked."""
    return project_dir / "locks" / f"pylock.{target}.{variant}.toml"


def load_lock(path: Path, *, memo: Path | None = None) -> Lock:
    """Read and check the lock at `path`; a missing file is a `StaleLockError`. With `memo`
    (a folder, see `memo.memo_folder`), bytes already read in full by this code are taken
    from the checked-lock memo (module `memo`)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise StaleLockError(
            "no lock file", context=str(path), hint="run 'envspec lock' to write it"
        ) from exc
    except OSError as exc:
        raise LockFileError(f"cannot read the lock: {exc.strerror}", context=str(path)) from exc

    def parse(data: bytes) -> Lock:
        from envspec.lockfile.parse import parse_lock

        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LockFileError("cannot read the lock: not UTF-8 text", context=str(path)) from exc
        # Newlines as `Path.read_text` reads them (universal), as before the memo.
        return parse_lock(text.replace("\r\n", "\n").replace("\r", "\n"), path=str(path))

    if memo is None:
        return parse(data)
    from envspec.lockfile.memo import read_memoized

    return read_memoized(path, data, memo, parse)


def write_lock(path: Path, lock: Lock) -> bool:
    """Write one lock atomically; False, and nothing written, when its bytes are unchanged."""
    return write_locks([(path, lock)])[0]


def write_locks(locks: Sequence[tuple[Path, Lock]]) -> list[bool]:
    """Write each lock atomically, all or none; for each, whether its bytes changed (an
    unchanged one is not written). When one cannot be read or written (or the command is
    interrupted), those written before it get their old bytes back, or are removed if new."""
    from envspec.lockfile.dump import dump_lock

    changed: list[bool] = []
    undo: list[tuple[Path, bytes | None, int]] = []  # (path, old bytes or None: new, mode)
    try:
        for path, lock in locks:
            data = dump_lock(lock).encode("utf-8")
            old, mode = _current(path)
            changed.append(old != data)
            if old != data:
                _write(path, data, mode)
                undo.append((path, old, mode))
    except BaseException:
        for path, old, mode in reversed(undo):
            with contextlib.suppress(OSError, WriteError):  # the first error is the one told
                if old is None:
                    path.unlink()
                else:
                    _write(path, old, mode)
        raise
    return changed


def remove_legacy_locks(paths: Sequence[Path]) -> None:
    """Remove locks under their old names (`legacy_lock_path`) once relocked under the new."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise WriteError(
                f"cannot remove the lock's old file: {exc.strerror}", context=str(path)
            ) from exc


def _current(path: Path) -> tuple[bytes | None, int]:
    """A lock's bytes (None: no file yet) and its mode: 0o644 for a new one (mkstemp makes
    files 0600; a lock is meant to be shared)."""
    try:
        return path.read_bytes(), stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None, 0o644
    except OSError as exc:
        raise LockFileError(f"cannot read the lock: {exc.strerror}", context=str(path)) from exc


def _write(path: Path, data: bytes, mode: int) -> None:
    from envspec.atomic import write_atomic  # here: tempfile and shutil are writing's only

    try:
        write_atomic(path, data, mode=mode, durable=True)
    except OSError as exc:
        raise WriteError(f"cannot write the lock: {exc.strerror}", context=str(path)) from exc
