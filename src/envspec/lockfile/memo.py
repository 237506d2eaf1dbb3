"""The checked-lock memo: a lock's bytes that passed every check of `parse` once are not checked
again, their `Lock` is read back from the envspec cache instead.

An unchanged relock and `lock --check` ask only whether each lock is fresh, yet reading a lock
in full (tomllib, envspec's field and integrity checks, then `packaging.pylock`) was most of
their time. The memo keeps, per lock file, the sha256 of the bytes last read in full, a
fingerprint of the code that read them, and the `Lock` they gave (as JSON). A read whose bytes
and code are the same as the memo's takes its `Lock` from there; any other byte, a damaged,
hand-edited or merged lock included, is read and checked in full as before (and only a lock
that passed is memoized), so what is refused and how is unchanged: the memo only skips reading
again what was already read.

Layout: ``<cache>/v1/locks/<sha256 of the lock's absolute path>.json`` holding ``{"version",
"code", "sha256", "lock"}``; one entry per lock file, replaced when its bytes change. The code
fingerprint is `code_stamp` (shared with the fresh-locks memo, module `fresh`): every file of
the envspec and packaging installs by path, size and modification time, and Python's version;
stat calls, not reads, so taking it costs ~1 ms. A memo that cannot
be read or does not give back the `Lock` it was made from is ignored (and written again); one
that cannot be written is skipped: the memo can make a read faster, never different. Only
`lock` and `lock --check` use it (`lock_status` with `memo`): `sync` (`--locked` too), `check`,
`bundle` and the review commands read every lock in full. A lock whose first line is not
``lock-version = "1.0"`` (the version envspec writes) is never memoized, so a newer 1.x lock's
warning is logged on every read.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported by `_decode`: `memo_folder` is on a fresh relock's path
    from packaging.specifiers import SpecifierSet

    from envspec.model import Artifact, Lock, LockedPackage

FORMAT = 2  # 2: a package's marker and requires-python
MEMOIZED_FIRST_LINE = b'lock-version = "1.0"\n'

log = logging.getLogger("envspec")


def memo_folder(cache_dir: Path | None, kind: str = "locks") -> Path:
    """Where a memo lives under the envspec cache (`cache_dir`, else the user's): the
    checked-lock memo's ("locks"), or the fresh-locks memo's ("fresh", module `fresh`)."""
    if cache_dir is None:
        import platformdirs

        cache_dir = Path(platformdirs.user_cache_dir("envspec"))
    return cache_dir / "v1" / kind


def read_memoized(path: Path, data: bytes, folder: Path, parse: Callable[[bytes], Lock]) -> Lock:
    """The `Lock` the bytes `data` of the lock at `path` read as: from the memo in `folder`
    when it holds these bytes for this code, else `parse(data)` (which raises for a bad
    lock), memoized when it succeeds."""
    if not data.startswith(MEMOIZED_FIRST_LINE):
        return parse(data)
    entry = folder / f"{hashlib.sha256(os.path.abspath(path).encode()).hexdigest()}.json"
    digest = hashlib.sha256(data).hexdigest()
    found = _recall(entry, digest)
    if found is not None:
        return found
    lock = parse(data)
    _remember(entry, digest, lock)
    return lock


@functools.cache
def code_stamp() -> str:
    """A stamp of the code that decides what a check says: every file of the envspec and
    packaging installs (path, size, modification time) and Python's version; "" when a
    package's files cannot be listed (a zipped install: no memo)."""
    import importlib.machinery

    roots = [Path(__file__).parent.parent]
    found = importlib.machinery.PathFinder.find_spec("packaging")
    if found is None or not found.submodule_search_locations:
        return ""
    roots += [Path(p) for p in found.submodule_search_locations]
    parts = [sys.version]
    try:
        for root in roots:
            parts += _stamps(root)
    except OSError:
        return ""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _stamps(root: Path) -> list[str]:
    out = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        for name in sorted(files):
            info = os.stat(os.path.join(folder, name))
            out.append(f"{folder}/{name} {info.st_size} {info.st_mtime_ns}")
    if not out:
        raise FileNotFoundError(root)
    return out


def _code() -> str:
    stamp = code_stamp()
    return f"{stamp}-{FORMAT}" if stamp else ""


def _recall(entry: Path, digest: str) -> Lock | None:
    code = _code()
    try:
        memo = json.loads(entry.read_bytes())
        if memo["code"] != code or not code or memo["sha256"] != digest:
            return None
        return _decode(memo["lock"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        log.debug("%s: lock memo ignored: %s", entry, exc)
        return None


def _remember(entry: Path, digest: str, lock: Lock) -> None:
    from envspec.atomic import write_atomic  # here: a memo read needs no tempfile, no shutil

    code = _code()
    if not code:
        return
    try:
        encoded = _encode(lock)
        if _decode(json.loads(json.dumps(encoded))) != lock:
            return  # a value JSON does not keep (a date-time among the inputs, a NaN)
        memo = {"version": FORMAT, "code": code, "sha256": digest, "lock": encoded}
        write_atomic(entry, json.dumps(memo, separators=(",", ":")).encode())
    except (OSError, ValueError, TypeError) as exc:
        log.debug("%s: lock memo not written: %s", entry, exc)


def _encode(lock: Lock) -> dict[str, Any]:
    return {
        "target": lock.target,
        "requires-python": lock.requires_python,
        "environments": list(lock.environments),
        "packages": [
            [
                p.name,
                str(p.version),
                p.index,
                _encode_artifact(p.artifact) if p.artifact else None,
                [p.vcs.url, p.vcs.requested_revision, p.vcs.commit_id] if p.vcs else None,
                p.phase,
                list(p.required_by),
                [list(pair) for pair in p.required_as],
                p.marker,
                p.requires_python,
            ]
            for p in lock.packages
        ],
        "phases": [[p.name, p.index, p.optional, p.skipped] for p in lock.phases],
        "inputs": lock.inputs,
        "rules": [[r.id, r.sha256, r.source] for r in lock.rules],
        "rules-version": lock.rules_version,
        "variant": lock.variant,
        "needs": lock.needs.as_data(),
    }


def _encode_artifact(a: Artifact) -> list[Any]:
    # Only what a lock records: a parsed lock's other fields are their defaults (checked by
    # the round trip in `_remember`).
    moment = a.upload_time.isoformat() if a.upload_time else None
    return [a.filename, a.url, a.kind, a.sha256, a.size, moment]


def _decode(data: dict[str, Any]) -> Lock:

    from envspec.model import AppliedRule, Lock, LockedPhase, Needs

    return Lock(
        target=data["target"],
        requires_python=data["requires-python"],
        environments=tuple(data["environments"]),
        packages=tuple(_decode_package(fields) for fields in data["packages"]),
        phases=tuple(
            LockedPhase(name=name, index=index, optional=optional, skipped=skipped)
            for name, index, optional, skipped in data["phases"]
        ),
        inputs=data["inputs"],
        rules=tuple(AppliedRule(id=i, sha256=s, source=src) for i, s, src in data["rules"]),
        rules_version=data["rules-version"],
        variant=data["variant"],
        needs=Needs(
            cuda_driver=_specifier(data["needs"].get("cuda-driver")),
            compute_capability=_specifier(data["needs"].get("compute-capability")),
        ),
    )


def _decode_package(fields: list[Any]) -> LockedPackage:
    from packaging.version import Version

    from envspec.model import LockedPackage, VcsSource

    (name, version, index, artifact, vcs, phase, required_by, required_as, marker,
     requires_python) = fields  # fmt: skip
    return LockedPackage(
        name=name,
        version=Version(version),
        marker=marker,
        requires_python=requires_python,
        index=index,
        artifact=_decode_artifact(artifact) if artifact is not None else None,
        vcs=VcsSource(url=vcs[0], requested_revision=vcs[1], commit_id=vcs[2])
        if vcs is not None
        else None,
        phase=phase,
        required_by=tuple(required_by),
        required_as=tuple((parent, text) for parent, text in required_as),
    )


def _specifier(text: str | None) -> SpecifierSet | None:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(text) if text is not None else None


def _decode_artifact(fields: list[Any]) -> Artifact:
    from envspec.model import Artifact

    filename, url, kind, sha256, size, moment = fields
    return Artifact(
        filename=filename,
        url=url,
        kind=kind,
        sha256=sha256,
        size=size,
        upload_time=dt.datetime.fromisoformat(moment) if moment is not None else None,
    )
