"""A project page's files by release: `Releases`, newest release first, and the compact form
the cache keeps a parsed page in (`dump_listing`), read back a release at a time.

A resolution reads a handful of releases of each name (641 of the 29,247 the seed stack's
pages list over its three targets), but a page lists every release there has been. So the
cached form is made for reading little: a header naming each release (project, version, and
where its files lie), sorted by project and newest release first, then each release's files
as a JSON array of its own. Reading a page back decodes the header; a release's versions are
parsed as far as they are walked, and its files decoded and made `Artifact`s when that
release is first asked for. Decoding every row and making every `Artifact` of every page was
a third of an offline lock. A reader goes by the header's offsets alone, so bytes after the
last part are never read: the cache ends the file with the page's digest there.

Hand-written over `json` rather than a serialization library: the form is ours, written only
from checked values (so trusted when read back) and tagged with the digest of the page it
came from (`cache.Cache.listing`, which names the form's version, `LISTING_FORMAT`).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from packaging.utils import NormalizedName
from packaging.version import Version

from envspec.index.simple import Identity, parse_filename, remember_identity
from envspec.model import Artifact, CoreMetadata, Yank

_CHUNK = 8  # versions parsed at a time as a walk goes down them


class Releases:
    """The releases of one project, newest first, each with its files (in page order);
    thread-safe: a version is parsed once, a release's files made once."""

    __slots__ = ("_by_public", "_files_of", "_lock", "_made", "_slots", "_texts", "_versions")

    def __init__(
        self,
        versions: Sequence[str | Version],
        files_of: Callable[[int], tuple[Artifact, ...]],
    ) -> None:
        """`versions` newest first (texts, parsed as they are walked), `files_of(i)` the files
        of the `i`-th."""
        self._texts = versions
        self._files_of = files_of
        self._versions: list[Version] = []
        self._slots: dict[Version, int] = {}
        self._made: dict[int, tuple[Artifact, ...]] = {}
        self._by_public: dict[Version, list[Version]] | None = None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._texts)

    def versions(self) -> Iterator[Version]:
        """The releases' versions, newest first."""
        if len(self._versions) == len(self._texts):  # all parsed: the list's own iterator
            return iter(self._versions)
        return self._parsing()

    def _parsing(self) -> Iterator[Version]:
        parsed, i = self._versions, 0
        while i < len(parsed) or self._parse_more():
            yield parsed[i]
            i += 1

    def files(self, version: Version) -> tuple[Artifact, ...]:
        """The files of release `version` (none when the page lists no such release)."""
        slot = self._slots.get(version)
        while slot is None and self._parse_more():
            slot = self._slots.get(version)
        if slot is None:
            return ()
        made = self._made.get(slot)
        if made is None:
            with self._lock:
                made = self._made.get(slot)
                if made is None:
                    made = self._made[slot] = self._files_of(slot)
        return made

    def same_public(self, version: Version) -> list[Version]:
        """The releases whose public version is `version` (its local variants, and itself),
        newest first: what an `==` pin without a local label can match (PEP 440). Worked out
        once, on the first question: a pin otherwise walks every release (unsloth's 260)."""
        found = self._by_public
        if found is None:
            while self._parse_more():
                pass
            found = {}
            for known in self._versions:
                public = known if known.local is None else Version(known.public)
                found.setdefault(public, []).append(known)
            self._by_public = found
        return found.get(version, [])

    def every(self) -> Iterator[Artifact]:
        """Every file, newest release first."""
        for version in self.versions():
            yield from self.files(version)

    def _parse_more(self) -> bool:
        """Parse the next few versions; False when all are parsed."""
        with self._lock:
            start = len(self._versions)
            if start >= len(self._texts):
                return False
            for text in self._texts[start : start + _CHUNK]:
                version = text if isinstance(text, Version) else Version(text)
                self._slots[version] = len(self._versions)
                self._versions.append(version)
            return True


def of_artifacts(artifacts: Iterable[Artifact], name: NormalizedName) -> Releases:
    """The files of `artifacts` whose filenames name project `name`."""
    groups: dict[Version, list[Artifact]] = {}
    for artifact in artifacts:
        found = parse_filename(artifact.filename)
        if found is not None and found[0] == name:
            groups.setdefault(found[1], []).append(artifact)
    order = sorted(groups, reverse=True)
    return Releases(order, lambda i: tuple(groups[order[i]]))


# -- the compact form the cache keeps -------------------------------------------------------


def dump_listing(artifacts: Sequence[Artifact] | None) -> bytes:
    """`artifacts` (None: the index does not have the project) in the compact form: a header
    line of [project, version, start, end] per release (project and version None for files
    whose names are not a distribution's), by project and newest first, then each release's
    files (`_row`) as a JSON array at bytes start to end after the header line."""
    if artifacts is None:
        return b"null\n"
    groups: dict[tuple[NormalizedName, Version] | None, list[list[object]]] = {}
    for artifact in artifacts:
        parsed = parse_filename(artifact.filename)
        groups.setdefault(parsed[:2] if parsed else None, []).append(_row(artifact))
    releases = [k for k in groups if k is not None]
    releases.sort(key=lambda k: k[1], reverse=True)
    releases.sort(key=lambda k: k[0])  # stable: newest first within each project
    header, body, at = [], [], 0
    for key in [*releases, *([None] if None in groups else [])]:
        part = json.dumps(groups[key], separators=(",", ":")).encode()
        name, version = key if key is not None else (None, None)
        header.append([name, None if version is None else str(version), at, at + len(part)])
        body.append(part)
        at += len(part)
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + b"".join(body)


def load_releases(data: bytes, name: NormalizedName) -> Releases | None:
    """`dump_listing`'s output back as the releases of project `name` (None: the index does
    not have the project); a release's files are decoded when first asked for."""
    base = data.index(b"\n") + 1  # the body is not copied out: a release's part is sliced
    entries = json.loads(data[:base])
    if entries is None:
        return None
    mine = [(version, start, end) for project, version, start, end in entries if project == name]

    def files_of(i: int) -> tuple[Artifact, ...]:
        text, start, end = mine[i]
        return _made(data[base + start : base + end], (name, Version(text)))

    return Releases([version for version, _, _ in mine], files_of)


def load_listing(data: bytes, keep: Callable[[str], bool] | None = None) -> list[Artifact] | None:
    """`dump_listing`'s output back whole, the files whose names `keep` accepts (by default
    all); None when the index does not have the project."""
    head, _, body = data.partition(b"\n")
    entries = json.loads(head)
    if entries is None:
        return None
    out: list[Artifact] = []
    for project, version, start, end in entries:
        named = None if project is None else (project, Version(version))
        out += (a for a in _made(body[start:end], named) if keep is None or keep(a.filename))
    return out


def _made(part: bytes, named: tuple[NormalizedName, Version] | None) -> tuple[Artifact, ...]:
    """One release's files: `parse_filename` answers their names from the header."""
    made = tuple(map(_from_row, json.loads(part)))
    for artifact in made:
        identity: Identity | None = None if named is None else (*named, artifact.kind)
        remember_identity(artifact.filename, identity)
    return made


def _row(a: Artifact) -> list[object]:
    moment = a.upload_time.isoformat() if a.upload_time else None
    return [
        a.filename,
        a.url,
        a.kind,
        a.sha256,
        a.size,
        a.requires_python,
        a.yanked is Yank.YANKED,
        a.yanked_reason,
        moment,
        a.metadata is CoreMetadata.SERVED,
        a.metadata_sha256,
    ]


def _from_row(row: list[Any]) -> Artifact:
    filename, url, kind, sha256, size, requires_python, yanked, reason, moment, served, digest = row
    return Artifact(
        filename=filename,
        url=url,
        kind=kind,
        sha256=sha256,
        size=size,
        requires_python=requires_python,
        yanked=Yank.YANKED if yanked else Yank.LIVE,
        yanked_reason=reason,
        upload_time=dt.datetime.fromisoformat(moment) if moment else None,
        metadata=CoreMetadata.SERVED if served else CoreMetadata.ABSENT,
        metadata_sha256=digest,
    )
