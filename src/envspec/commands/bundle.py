"""`envspec bundle DIR`'s act: a static index of exactly the files the chosen locks name
(layout and manifest: `index/bundle.py`; pages: `bundle_pages.py`), and `--check`.

In the commands layer because it joins two layers that may not import each other: the files
come through the artifact store (`apply.store.fetch`: the store's cache, each index's mirror
and credentials, every file downloaded once and its sha256 checked, as for `sync`), and the
install files are `review.export`'s. Nothing here talks HTTP.

What a run does, in an order that keeps a bundle being served whole: fetch every chosen file
into the store; copy into `files/` each one that is missing or whose bytes are not the locked
ones (the others are left alone: running again adds only what is missing); write each
`.metadata` sidecar (the wheel's METADATA as it is in the file; an sdist's PKG-INFO only where
it is static, else none, and the manifest says why); copy the locks; write the pages and
install files whose bytes changed; write `bundle.json` last; then remove what the new manifest
no longer names from the folders a bundle owns (`files/`, `simple/`, `locks/`, `install/`).
DIR holds exactly what this run chose. The same locks and choice give the same bytes.

Errors: a DIR that is not empty and holds no `bundle.json` (`UsageError`: not overwritten;
a run stopped before its `bundle.json` leaves `UNFINISHED`, so the next one takes DIR);
an unknown `--phase` (with "did you mean"); a missing lock (exit 3); and the store's errors.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.metadata import parse_email

from envspec.apply.events import Reporter
from envspec.apply.store import Files, Wanted, fetch, wanted_of
from envspec.atomic import copy_atomic, write_atomic
from envspec.commands.bundle_pages import chosen, derived_files
from envspec.errors import ApplyError, MetadataError, UsageError, did_you_mean
from envspec.index.bundle import (
    MANIFEST,
    BundledFile,
    BundledLock,
    LeftOut,
    Manifest,
    dump_manifest,
    lock_copy,
    parse_manifest,
)
from envspec.index.metadata import local_metadata
from envspec.lockfile import parse_lock
from envspec.model import Lock, LockedPackage
from envspec.review.locks import load_target_lock

OWNED = ("files", "simple", "locks", "install")  # the folders a bundle owns in DIR
MODE = 0o644  # served files are read by a web server's user
_GIT = "a git source: uv clones it when installing; a bundle carries files only"


@dataclass(frozen=True, kw_only=True, slots=True)
class Source:
    """One lock to bundle: its target, bytes (copied as they are) and parsed form."""

    target: str
    data: bytes
    lock: Lock


@dataclass(frozen=True, kw_only=True, slots=True)
class Made:
    """What `write_bundle` did."""

    manifest: Manifest
    added: int  # files copied into the bundle (missing, or not the locked bytes)
    added_bytes: int
    removed: int  # files of an earlier bundle this one no longer names

    @property
    def size(self) -> int:
        return sum(f.size for f in self.manifest.files)


def load_sources(project: Path, units: Sequence[tuple[str, str | None]]) -> list[Source]:
    """The project's locks for `units` (target, accelerator variant or None); a missing one,
    or one holding another target's lock, is a `StaleLockError` (exit 3). A variant's lock is
    bundled under its label (``linux-x86_64.cu121``), as `locks/` names it."""
    out = []
    for target, variant in units:
        # a file holding another target's (or variant's) lock is refused, as by export: it
        # was bundled under the label it records, over the real one's
        path, lock = load_target_lock(project, target, variant)
        out.append(Source(target=lock.label, data=path.read_bytes(), lock=lock))
    return out


def check_phases(sources: Sequence[Source], phases: Sequence[str]) -> None:
    names = list(dict.fromkeys(p.name for s in sources for p in s.lock.phases))
    for phase in phases:
        if phase not in names:
            hint = did_you_mean(phase, names) or "phases in the locks: " + ", ".join(names)
            raise UsageError(f"unknown phase '{phase}'", context="--phase", hint=hint)


def write_bundle(
    dest: Path, sources: Sequence[Source], phases: Sequence[str], files: Files, reporter: Reporter
) -> Made:
    """Make `dest` the bundle of `sources` (their `phases`; all when empty); see the module
    docstring."""
    check_phases(sources, phases)
    check_destination(dest)
    locks = tuple(
        BundledLock(
            target=s.target,
            sha256=_sha256_bytes(s.data),
            phases=tuple(p.name for p in s.lock.phases if p.name in phases) if phases else None,
        )
        for s in sources
    )
    wanted, served, left_out = _choose(sources, locks)
    with files.store.reading():  # `cache prune` cannot take a file away while it is copied
        stored = fetch(files, [w for w, _ in wanted.values()], reporter)
        if not (dest / MANIFEST).is_file():  # a run stopped before bundle.json can be rerun
            _write_if_changed(dest / UNFINISHED, b"envspec bundle: not finished\n")
        copies = [
            _place(dest, item, package, stored[sha], served[sha])
            for sha, (item, package) in sorted(wanted.items())
        ]
    manifest = Manifest(locks=locks, files=tuple(c[0] for c in copies), left_out=left_out)
    written = {lock_copy(s.target): s.data for s in sources}
    written.update(derived_files(manifest, {s.target: s.lock for s in sources}))
    for relative, data in written.items():
        _write_if_changed(dest / relative, data)
    _write_if_changed(dest / MANIFEST, dump_manifest(manifest).encode())
    with contextlib.suppress(OSError):  # bundle.json is there: the marker says nothing more
        (dest / UNFINISHED).unlink(missing_ok=True)
    keep = set(written) | {f.path for f in manifest.files}
    keep |= {f.metadata_path for f in manifest.files if f.metadata_path}
    added = [entry for entry, copied in copies if copied]
    return Made(
        manifest=manifest,
        added=len(added),
        added_bytes=sum(f.size for f in added),
        removed=_sweep(dest, keep),
    )


_Chosen = dict[str, tuple[Wanted, LockedPackage]]  # by sha256


def _choose(
    sources: Sequence[Source], locks: Sequence[BundledLock]
) -> tuple[_Chosen, dict[str, set[str]], tuple[LeftOut, ...]]:
    """The files to bundle (each once), the locks each serves, and what is left out."""
    wanted: _Chosen = {}
    served: dict[str, set[str]] = {}
    left_out: list[LeftOut] = []
    for source, bundled in zip(sources, locks, strict=True):
        for package in chosen(source.lock, bundled.phases):
            item = wanted_of(package)
            if item is None:
                left_out.append(_left_out(bundled, package))
                continue
            wanted.setdefault(item.sha256, (item, package))
            served.setdefault(item.sha256, set()).add(bundled.path)
    return wanted, served, tuple(left_out)


def _left_out(bundled: BundledLock, package: LockedPackage) -> LeftOut:
    vcs = package.vcs
    url = "" if vcs is None else vcs.url if vcs.url.startswith("git+") else f"git+{vcs.url}"
    return LeftOut(
        lock=bundled.path,
        name=package.name,
        version=str(package.version),
        source=f"{url}@{vcs.commit_id}" if vcs is not None else "",
        reason=_GIT,
    )


# Written before the first file of a new bundle and removed once bundle.json is: a run
# stopped in between leaves a folder the next run knows as its own.
UNFINISHED = ".envspec-bundle-unfinished"


def check_destination(dest: Path) -> None:
    """Refuse to write a bundle over a folder that holds something else."""
    if dest.exists() and not dest.is_dir():
        raise UsageError("not a folder", context=str(dest), hint="give a folder for the bundle")
    ours = (dest / MANIFEST).is_file() or (dest / UNFINISHED).is_file()
    if dest.is_dir() and not ours and any(dest.iterdir()):
        raise UsageError(
            f"the folder is not empty and holds no {MANIFEST}: it is not a bundle",
            context=str(dest),
            hint="give an empty or new folder, or one 'envspec bundle' wrote",
        )


def _place(
    dest: Path, wanted: Wanted, package: LockedPackage, stored: Path, locks: set[str]
) -> tuple[BundledFile, bool]:
    """Copy one stored file into the bundle unless its locked bytes are there; its entry,
    and whether it was copied."""
    artifact = wanted.artifact
    target = dest / "files" / wanted.sha256 / artifact.filename
    size = stored.stat().st_size
    copied = not (target.is_file() and target.stat().st_size == size
                  and _sha256_file(target) == wanted.sha256)  # fmt: skip
    try:
        if copied:
            copy_atomic(stored, target, mode=MODE)
        metadata, reason = _sidecar(stored, wanted)
        if metadata is not None:
            _write_if_changed(target.with_name(artifact.filename + ".metadata"), metadata)
    except OSError as exc:
        raise ApplyError(
            f"cannot write {artifact.filename} to the bundle: {exc.strerror}",
            context=str(target.parent),
        ) from exc
    requires = parse_email(metadata)[0].get("requires_python") if metadata else None
    entry = BundledFile(
        filename=artifact.filename,
        name=package.name,
        version=str(package.version),
        sha256=wanted.sha256,
        size=size,
        url=artifact.url,
        index=wanted.index,
        locks=tuple(sorted(locks)),
        requires_python=requires,
        metadata_sha256=_sha256_bytes(metadata) if metadata is not None else None,
        no_metadata=reason,
    )
    return entry, copied


def _sidecar(stored: Path, wanted: Wanted) -> tuple[bytes | None, str | None]:
    """The file's `.metadata` sidecar, or why it has none."""
    try:
        return local_metadata(stored, wanted.artifact), None
    except MetadataError as exc:
        return None, exc.message


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.is_file() and path.read_bytes() == data:
            return  # untouched: the same bundle keeps its files' times too
        write_atomic(path, data, mode=MODE)
    except OSError as exc:
        raise ApplyError(f"cannot write the bundle: {exc.strerror}", context=str(path)) from exc


def _sweep(dest: Path, keep: set[str]) -> int:
    """Remove from the owned folders what `keep` does not name; the artifacts removed."""
    removed = 0
    for top in OWNED:
        for root, dirs, names in os.walk(dest / top, topdown=False):
            folder = Path(root)
            try:
                for name in names:
                    if (folder / name).relative_to(dest).as_posix() not in keep:
                        (folder / name).unlink()
                        removed += top == "files" and not name.endswith((".metadata", ".tmp"))
                for name in dirs:
                    if not any((folder / name).iterdir()):
                        (folder / name).rmdir()
            except OSError as exc:
                raise ApplyError(
                    f"cannot remove what the bundle no longer holds: {exc.strerror}",
                    context=str(folder),
                ) from exc
    return removed


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- --check -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Checked:
    manifest: Manifest
    problems: tuple[str, ...]  # `missing: PATH`, `wrong sha256: PATH …`, `changed: PATH`


def check_bundle(dest: Path) -> Checked:
    """Verify every file the manifest names by its sha256, and every page and install file
    against what the manifest and the locks make."""
    manifest = load_manifest(dest)
    problems: list[str] = []
    for item in manifest.files:
        problems += _check_file(dest, item.path, item.sha256)
        if item.metadata_path and item.metadata_sha256:
            problems += _check_file(dest, item.metadata_path, item.metadata_sha256)
    locks: dict[str, Lock] = {}
    for bundled in manifest.locks:
        found = _check_file(dest, bundled.path, bundled.sha256)
        problems += found
        if not found:
            text = (dest / bundled.path).read_text(encoding="utf-8")
            locks[bundled.target] = parse_lock(text, path=str(dest / bundled.path))
    # the pages, and the install files of the locks that are whole: one wrong lock does not
    # hide a wrong page
    for relative, data in sorted(derived_files(manifest, locks).items()):
        problems += _check_bytes(dest, relative, data)
    return Checked(manifest=manifest, problems=tuple(problems))


def load_manifest(dest: Path) -> Manifest:
    path = dest / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ApplyError(
            f"no {MANIFEST}: not a bundle",
            context=str(dest),
            hint="make one with 'envspec bundle DIR'",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ApplyError(f"cannot read {MANIFEST}: {reason}", context=str(path)) from exc
    return parse_manifest(text, where=str(path))


def _check_file(dest: Path, relative: str, sha256: str) -> list[str]:
    try:
        got = _sha256_file(dest / relative)
    except FileNotFoundError:
        return [f"missing: {relative}"]
    except OSError as exc:
        return [f"unreadable: {relative} ({exc.strerror})"]
    if got != sha256:
        return [f"wrong sha256: {relative} has {got}, the manifest records {sha256}"]
    return []


def _check_bytes(dest: Path, relative: str, data: bytes) -> list[str]:
    try:
        found = (dest / relative).read_bytes()
    except FileNotFoundError:
        return [f"missing: {relative}"]
    except OSError as exc:
        return [f"unreadable: {relative} ({exc.strerror})"]
    return [] if found == data else [f"changed: {relative} is not what the manifest makes"]
