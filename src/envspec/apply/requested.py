"""REQUESTED markers: which installed distributions the user asked for by name.

uv writes a `REQUESTED` file into every distribution it installs, dependencies too
(astral-sh/uv#13278: its `-r pylock.toml` marks the whole lock); pip writes it only for what it
was asked for. envspec hands uv every package of a phase (nothing is resolved at install
time), so after each phase it keeps the marker on the spec's own requirements alone — the
lock's packages whose `required-by` has "<spec>" — and removes it, with its line in `RECORD`,
from the others. Tools reading it (`pip inspect`'s `requested`) then see what the user asked
for, as after a `pip install` of the spec's requirements. A snapshot records which
distributions carry it (`load_requested`), and a rollback puts them back (`restore_requested`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from envspec.atomic import write_atomic
from envspec.errors import ApplyError
from envspec.model import LockedPackage

SPEC = "<spec>"
_MARKER = "REQUESTED"
_EMPTY_HASH = "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0"  # RECORD's for b""


def write_requested(site_packages: Iterable[Path], packages: Iterable[LockedPackage]) -> None:
    """Mark each of `packages` (just installed) as requested or not, as the lock says."""
    wanted = {p.name: (p.version, SPEC in p.required_by) for p in packages}
    for dist_info, name, version in _dist_infos(site_packages):
        locked = wanted.get(name)
        if locked is not None and _same(version, locked[0]):
            _mark(dist_info, requested=locked[1])


def load_requested(site_packages: Iterable[Path]) -> tuple[str, ...]:
    """The names of the installed distributions that carry the marker, sorted."""
    found = {name for d, name, _ in _dist_infos(site_packages) if (d / _MARKER).exists()}
    return tuple(sorted(found))


def restore_requested(site_packages: Iterable[Path], requested: Collection[str]) -> None:
    """Mark every installed distribution as requested exactly when its name is in `requested`
    (a snapshot's: a rollback's uv run marks all it installs)."""
    for dist_info, name, _ in _dist_infos(site_packages):
        if (dist_info / "RECORD").is_file():  # not a distribution uv or pip would read
            _mark(dist_info, requested=name in requested)


def _dist_infos(site_packages: Iterable[Path]) -> Iterator[tuple[Path, NormalizedName, str]]:
    """Each `.dist-info` folder with its distribution's normalized name and its version."""
    for folder in site_packages:
        try:
            entries = sorted(os.listdir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.endswith(".dist-info"):
                name, _, version = entry[: -len(".dist-info")].rpartition("-")
                yield folder / entry, canonicalize_name(name), version


def _same(text: str, version: Version) -> bool:
    try:
        return Version(text) == version
    except InvalidVersion:
        return False


def _mark(dist_info: Path, *, requested: bool) -> None:
    """RECORD lists the marker from before it is made until after it is deleted: a kill in
    between leaves a RECORD listing a missing file, which the next sync or rollback sees and
    repairs (`installed`); a marker RECORD did not list would be left behind by an uninstall,
    and its folder with it."""
    marker = dist_info / _MARKER
    if marker.exists() == requested:
        return
    line = f"{dist_info.name}/{_MARKER},"
    record = dist_info / "RECORD"
    try:
        lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [entry for entry in lines if not entry.startswith(line)]
        mode = stat.S_IMODE(record.stat().st_mode)  # the installer's, kept
        if requested:
            kept.append(f"{line}{_EMPTY_HASH}\n")
            write_atomic(record, "".join(kept).encode("utf-8"), mode=mode)
            marker.write_bytes(b"")
        else:
            marker.unlink()
            write_atomic(record, "".join(kept).encode("utf-8"), mode=mode)
    except OSError as exc:
        raise ApplyError(
            f"cannot update {dist_info.name}/{_MARKER}: {exc.strerror}", context=str(dist_info)
        ) from exc
