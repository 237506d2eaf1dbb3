"""What is installed in an environment: its distributions, read and validated.

Installed distributions are read from their `.dist-info` folders by hand rather than with
`importlib.metadata` (importing that costs about as much as the rest of a no-op sync), and
each is validated on the way: its METADATA must be readable and name it, its RECORD must be
there, and one name has one `.dist-info`. While a journal is on disk (a sync or rollback was
interrupted, or is running) every file each RECORD lists must exist too. That is what uv
killed part-way leaves, measured by killing it at random points: an empty or partial folder
of a version it was removing, a second copy beside the first, a complete-looking new
`.dist-info` whose files (its `direct_url.json` among them) are not all written yet, or one
still holding the wheel's own RECORD, which does not list the files uv added beside it. Reading
every RECORD costs a no-op sync of a large environment more than the rest of it, so it is
done only then. Such a distribution is `Installed.problem`; `check` fails on it, and `sync`
and `rollback` repair it (the plan says how). A folder without RECORD cannot be uninstalled
by uv (it does not know the files), so `discard_dist_info` deletes the folder itself before
uv installs the package afresh over whatever files are left.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from envspec.apply.environment import JOURNAL_FILE, Environment
from envspec.apply.plan import Installed
from envspec.errors import ApplyError

_FIRST, _CHUNK = 1024, 8192  # METADATA is read this much, then this much at a time
_WANTED = (b"name", b"version", b"requires-dist")
_CUT_SHORT = "has a RECORD cut short"
# what uv (and pip) add to a wheel's `.dist-info`, each listed in the RECORD they write last
_ADDED = frozenset(("INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json", "uv_build.json"))


@dataclass(frozen=True, kw_only=True, slots=True)
class _Copy:
    """One metadata folder of a distribution (paths are strings: this runs for every
    distribution on every sync, and `pathlib` doubled its cost)."""

    name: str
    version: str
    path: str
    problem: str | None
    discard: tuple[str, ...] = ()  # what uv cannot handle, deleted before a repair
    requires: tuple[str, ...] = ()

    @property
    def folder(self) -> str:
        return os.path.basename(self.path)


def load_installed(env: Environment, *, requires: bool = False) -> tuple[Installed, ...]:
    """Every distribution in the environment's site-packages, by name; one that is broken
    or installed more than once says so in `problem`. `requires` reads each METADATA's
    headers whole, for the requirements (otherwise only as far as name and version)."""
    found: dict[str, list[_Copy]] = {}
    verify = os.path.exists(os.path.join(env.state_dir, JOURNAL_FILE))
    for folder in map(str, env.site_packages):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for entry in names:
            if entry.endswith((".dist-info", ".egg-info")):
                path = os.path.join(folder, entry)
                copy = _read_copy(path, requires=requires, verify=verify)
                if copy is not None:
                    found.setdefault(copy.name, []).append(copy)
    return tuple(_installed(found[name]) for name in sorted(found))


def _installed(copies: list[_Copy]) -> Installed:
    sound = [c for c in copies if c.problem is None]
    main = sound[0] if sound else copies[0]
    problems = [c.problem for c in copies if c.problem is not None]
    if len(sound) > 1:
        names = ", ".join(c.folder for c in sound)
        problems.insert(0, f"installed {len(sound)} times ({names})")
    elif problems and sound:
        problems[-1] += f", beside {main.folder}"
    url, commit = _direct_url(_read_bytes(os.path.join(main.path, "direct_url.json")))
    return Installed(
        name=canonicalize_name(main.name),
        version=main.version,
        requires=main.requires,
        url=url,
        commit=commit,
        problem="; ".join(problems) or None,
        discard=tuple(path for c in copies for path in c.discard),
    )


def has_distributions(env: Environment) -> bool:
    """Whether any distribution metadata (`.dist-info`, `.egg-info` folder or file, a legacy
    editable's `.egg-link`) is in site-packages: what `pip freeze` would list anything from."""
    suffixes = (".dist-info", ".egg-info", ".egg-link")
    for folder in env.site_packages:
        try:
            if any(name.endswith(suffixes) for name in os.listdir(folder)):
                return True
        except OSError:
            continue
    return False


def _read_copy(path: str, *, requires: bool, verify: bool) -> _Copy | None:
    """A `.dist-info` folder, validated (with `verify`, the files of its RECORD too); an
    `.egg-info` (legacy, no RECORD) when readable."""
    if path.endswith(".egg-info"):
        inner = os.path.join(path, "PKG-INFO")
        headers = _headers(inner if os.path.isdir(path) else path, whole=requires)
        if not headers or "name" not in headers or "version" not in headers:
            return None
        return _sound_copy(path, headers, problem=None)
    headers = _headers(os.path.join(path, "METADATA"), whole=requires)
    recorded = os.path.isfile(os.path.join(path, "RECORD"))
    folder = os.path.basename(path)
    if headers and "name" in headers and "version" in headers and recorded:
        return _verified(path, headers) if verify else _sound_copy(path, headers, problem=None)
    folder_name, _, folder_version = folder[: -len(".dist-info")].partition("-")
    if not folder_name:
        return None
    return _Copy(
        name=canonicalize_name(folder_name),
        version=folder_version,
        path=path,
        problem=f"{folder} {_what_is_wrong(path, headers, recorded)}",
        # Without a whole RECORD uv cannot uninstall it: a kill can leave a RECORD cut short
        # beside a METADATA not yet written, as well as one without any RECORD.
        discard=(path,) if not recorded or _cut_short(path) else (),
    )


def _sound_copy(
    path: str, headers: dict[str, list[str]], *, problem: str | None, discard: tuple[str, ...] = ()
) -> _Copy:
    """A copy whose METADATA names it (`problem` may still say what else is wrong)."""
    return _Copy(
        name=canonicalize_name(headers["name"][0]),
        version=headers["version"][0],
        path=path,
        problem=problem,
        discard=discard,
        requires=tuple(headers.get("requires-dist", ())),
    )


def _verified(path: str, headers: dict[str, list[str]]) -> _Copy:
    """After an interruption: a copy that looks whole, checked against its files. A
    temporary file in it is a write the installer never finished (uv writes each file it adds
    to one, then renames it); a RECORD cut short is useless to uninstall by (uv refuses it)."""
    folder = os.path.basename(path)
    try:
        entries = os.listdir(path)
    except OSError:
        entries = []
    data, rows = _record(path)
    found = _record_problem(path, data, rows)
    if found == _CUT_SHORT:
        return _sound_copy(path, headers, problem=f"{folder} {found}", discard=(path,))
    leftovers = sorted(e for e in entries if e.startswith(".tmp") or e.endswith(".tmp"))
    unlisted = _unlisted(path, entries, rows)
    problems = [f"an unfinished write ({', '.join(leftovers)})"] if leftovers else []
    problems += [found] if found else []
    if unlisted:
        problems.append(f"{_files(unlisted)} its RECORD does not list ({_some(unlisted)})")
    if not problems:
        return _sound_copy(path, headers, problem=None)
    text = ", ".join(problems[:-1]) + ", and " if len(problems) > 1 else ""
    discard = tuple(os.path.join(path, e) for e in (*leftovers, *unlisted))
    return _sound_copy(path, headers, problem=f"{folder}: {text}{problems[-1]}", discard=discard)


def _unlisted(path: str, entries: list[str], rows: list[list[str]]) -> list[str]:
    """The files an installer adds to a `.dist-info` that are there but not in its RECORD.
    uv copies the wheel's own RECORD with the rest of the wheel, adds REQUESTED,
    `direct_url.json`, `uv_cache.json` and INSTALLER in that order (each written to a
    temporary file and renamed), and only then rewrites the RECORD in place to list them
    (seen with strace): a kill in between leaves a copy that looks whole, but an uninstall by
    the wheel's RECORD leaves those files, and so the folder, behind. They are deleted before
    the repair. Only these names are judged: what else a wheel's `.dist-info` holds is the
    wheel's, listed by its RECORD."""
    folder = os.path.basename(path)
    listed = {row[0] for row in rows}
    return sorted(
        entry
        for entry in entries
        if entry in _ADDED
        and f"{folder}/{entry}" not in listed
        and os.path.isfile(os.path.join(path, entry))
    )


def _record_problem(path: str, data: bytes, rows: list[list[str]]) -> str | None:
    """What is wrong with `path`'s RECORD (`data`, read as `rows`) against the files: cut
    short (uv writes it last, in 8 KiB pieces: a kill leaves a last line without its three
    fields, or no final newline), or listing files that are not there (compiled `.pyc` files
    aside: an installer may list them, and they are remade when missing). A RECORD cut
    exactly at a line end reads as whole: the one case this cannot see."""
    if not data.endswith(b"\n") or any(len(row) != 3 for row in rows):
        return _CUT_SHORT
    site = os.path.dirname(path)
    missing = [
        row[0]
        for row in rows
        if row[0]
        and not row[0].endswith(".pyc")
        and not os.path.lexists(os.path.join(site, row[0]))
    ]
    if not missing:
        return None
    return f"{_files(missing)} its RECORD lists missing ({_some(missing)})"


def _cut_short(path: str) -> bool:
    return _record_problem(path, *_record(path)) == _CUT_SHORT


def _record(path: str) -> tuple[bytes, list[list[str]]]:
    """`path`'s RECORD, as bytes and as its non-empty rows."""
    data = _read_bytes(os.path.join(path, "RECORD")) or b""
    rows = [row for row in csv.reader(data.decode("utf-8", "replace").splitlines()) if row]
    return data, rows


def _files(names: list[str]) -> str:
    return "1 file" if len(names) == 1 else f"{len(names)} files"


def _some(names: list[str]) -> str:
    """The first two of `names`, for a one-line message."""
    return ", ".join(names[:2]) + (", …" if len(names) > 2 else "")


def _what_is_wrong(path: str, headers: dict[str, list[str]] | None, recorded: bool) -> str:
    try:
        if not os.listdir(path):
            return "is empty"
    except OSError:
        return "cannot be read"
    if headers is None:
        return "has no METADATA" if recorded else "has no METADATA or RECORD"
    if "name" not in headers or "version" not in headers:
        metadata = "a METADATA without name or version"
        return f"has {metadata}" if recorded else f"has {metadata}, and no RECORD"
    return "has no RECORD"


def discard_dist_info(env: Environment, paths: Iterable[str]) -> None:
    """Delete what uv cannot handle (`Installed.discard`): broken `.dist-info` folders it
    cannot uninstall, and files an interrupted write left in one. Nothing outside this
    environment's `.dist-info` folders is touched."""
    for text in paths:
        path = Path(text)
        folder = path if path.suffix == ".dist-info" else path.parent
        if folder.suffix != ".dist-info" or folder.parent not in env.site_packages:
            raise ApplyError(
                f"refusing to delete {path}: not in a .dist-info folder of this environment",
                context=str(env.root),
            )
        try:
            if path == folder:
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ApplyError(
                f"cannot delete {path.name} of the broken {folder.name}: {exc.strerror}",
                context=str(env.root),
            ) from exc


def _headers(path: str, *, whole: bool) -> dict[str, list[str]] | None:
    """The `Name`, `Version` and (when `whole`) `Requires-Dist` fields of a core metadata
    file's headers (the lines before the first blank one), by lower-case name; None when it
    cannot be read. Without `whole` the file is read only as far as name and version (its
    first lines, in practice): reading and splitting every header of every distribution
    made reading an environment several times slower, and a no-op sync reads them all."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    wanted = _WANTED if whole else _WANTED[:2]
    out: dict[str, list[str]] = {}
    try:
        rest, data = b"", os.read(fd, _FIRST)
        while data:
            lines = (rest + data).split(b"\n")
            rest = lines.pop()  # perhaps cut short: completed by the next read
            for line in lines:
                if not line.strip():
                    return out
                _add_field(out, line, wanted)
                if not whole and len(out) == len(wanted):
                    return out
            data = os.read(fd, _CHUNK)
        _add_field(out, rest, wanted)
        return out
    except OSError:
        return None
    finally:
        os.close(fd)


def _add_field(out: dict[str, list[str]], line: bytes, wanted: tuple[bytes, ...]) -> None:
    key, sep, value = line.partition(b":")
    field = key.strip().lower()
    if sep and not line[:1].isspace() and field in wanted:
        out.setdefault(field.decode(), []).append(value.decode("utf-8", "replace").strip())


def _read_bytes(path: str) -> bytes | None:
    """The file's bytes, None when it cannot be read (plain `os` calls: most of these files
    do not exist, and a failed `open()` costs twice a failed `os.open`)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _direct_url(text: bytes | None) -> tuple[str | None, str | None]:
    if not text:
        return None, None
    try:
        data = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    vcs = data.get("vcs_info")
    commit = vcs.get("commit_id") if isinstance(vcs, dict) else None
    url = data.get("url")
    return (url if isinstance(url, str) else None), (commit if isinstance(commit, str) else None)
