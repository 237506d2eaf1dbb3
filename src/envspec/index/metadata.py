"""The core metadata of one artifact, fetched the cheapest way that works, and parsed leniently.

Order: the PEP 658/714 `<url>.metadata` sidecar when the index advertises one (its hash checked
when given); for wheels, HTTP range reads of the zip (the last 64 KiB — end-of-central-directory
and usually the whole directory — then the one `*.dist-info/METADATA` member), falling back to
the whole file when the server ignores Range; for sdists, `PKG-INFO` (a tarball read as it
arrives and no further than that member; a zip sdist whole), trusted only when it is static
(Metadata-Version ≥ 2.2, neither Requires-Dist nor Requires-Python `Dynamic`).

The range reads are ours: pip's `lazy_wheel` is internal and no maintained library reads a
remote zip by ranges. `_Remote` keeps the bytes fetched; `wheelzip` finds and inflates the
member from them.
Parsing reads the fields as `packaging.metadata.parse_email` does (`fields`), which tolerates
the mess real METADATA holds (torch's included); we check and convert only the fields
resolution needs.

Requires-Dist and Requires-Python are read by `requires` (each distinct text parsed once,
repaired leniently). Metadata that cannot be read is an `UnreadableMetadata`: the resolver
rejects that one candidate and goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from envspec.errors import BuildNeeded, MetadataError, UnreadableMetadata
from envspec.index import wheelzip
from envspec.index.fields import read_fields
from envspec.index.http import Client, Response
from envspec.index.requires import cached_requirements, line_of, requirements, requires_python
from envspec.index.simple import parse_filename
from envspec.model import Artifact, CoreMetadata, DistMetadata
from envspec.secret import redact

log = logging.getLogger(__name__)

TAIL = 1 << 16
How = Literal["sidecar", "range", "full", "sdist"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Fetched:
    """Raw core metadata and how it was obtained ("full" and "sdist" downloaded the file)."""

    data: bytes
    how: How
    needed: int | None = None  # range reads: the bytes from the end one read would have taken


def parse_metadata(data: bytes, source: str, artifact: Artifact | None = None) -> DistMetadata:
    """`DistMetadata` from METADATA/PKG-INFO bytes; `source` names them in errors. With
    `artifact`, name and version must agree with its filename."""
    raw = read_fields(data)
    name, version = raw.get("name"), raw.get("version")
    if not name or not version:
        raise UnreadableMetadata(f"{source}: metadata has no Name or Version")
    try:
        parsed_version = Version(version)
    except InvalidVersion as exc:
        raise UnreadableMetadata(f"{source}: invalid Version '{version}'") from exc
    if artifact is not None:
        _check_identity(canonicalize_name(name), parsed_version, artifact, source)
    who = f"{canonicalize_name(name)} {parsed_version}"
    return DistMetadata(
        name=canonicalize_name(name),
        version=parsed_version,
        requires_dist=tuple(requirements(raw.get("requires_dist", []), source, who)),
        requires_python=requires_python(raw.get("requires_python", ""), source, who),
        provides_extra=tuple(canonicalize_name(e) for e in raw.get("provides_extra", [])),
    )


def _check_identity(name: NormalizedName, version: Version, artifact: Artifact, src: str) -> None:
    parsed = parse_filename(artifact.filename)
    if parsed is None:
        return
    if parsed[0] != name or parsed[1] != version:
        raise UnreadableMetadata(
            f"{src}: metadata says {name} {version} but the file is {parsed[0]} {parsed[1]}"
        )


def fetch(client: Client, artifact: Artifact, tail: int = TAIL) -> Fetched:
    """The raw core metadata of `artifact`, by sidecar, range reads or download; a wheel's
    range reads start with its last `tail` bytes."""
    if artifact.metadata is CoreMetadata.SERVED:
        data = _sidecar(client, artifact)
        if data is not None:
            return Fetched(data=data, how="sidecar")
    if artifact.kind == "wheel":
        return _wheel(client, artifact, max(tail, TAIL))
    return Fetched(data=_sdist(client, artifact), how="sdist")


def _sidecar(client: Client, artifact: Artifact) -> bytes | None:
    url = artifact.url + ".metadata"
    response = client.get(url)
    if response.status != 200:
        log.warning(
            "%s advertised but HTTP %d; reading the file instead", redact(url), response.status
        )
        return None
    expected = artifact.metadata_sha256
    if expected:
        got = hashlib.sha256(response.body).hexdigest()
        if got != expected:
            raise MetadataError(
                f"{redact(url)}: sha256 {got} does not match the index's {expected}",
                hint="the index serves a corrupt .metadata file; try again later or report it",
            )
    return response.body


# -- wheels: range reads -------------------------------------------------------------------


def _wheel(client: Client, artifact: Artifact, suffix: int) -> Fetched:
    tail = client.get_range(artifact.url, suffix=suffix)
    total = _total_size(tail)
    if tail.status == 206 and total is not None:
        remote = _Remote(client, artifact.url, total, tail.body)
        data = _read_metadata(remote.read, total, tail.body, artifact)
        return Fetched(data=data, how="range", needed=total - remote.lowest)
    if tail.status == 200:
        log.info("downloading whole wheel %s for metadata", artifact.filename)
        body = tail.body
    else:  # 416 or a 206 without a usable Content-Range: take the whole file
        log.info("downloading whole wheel %s for metadata", artifact.filename)
        body = _whole(client, artifact)
    data = _read_metadata(lambda start, end: body[start:end], len(body), body, artifact)
    return Fetched(data=data, how="full")


def _total_size(response: Response) -> int | None:
    match = re.fullmatch(r"bytes \d+-\d+/(\d+)", (response.header("content-range") or "").strip())
    return int(match[1]) if match else None


def _whole(client: Client, artifact: Artifact) -> bytes:
    response = client.get(artifact.url, {"Accept-Encoding": "identity"})
    if response.status != 200:
        raise MetadataError(f"GET {redact(artifact.url)} failed: HTTP {response.status}")
    return response.body


def _read_metadata(read: wheelzip.Read, size: int, tail: bytes, artifact: Artifact) -> bytes:
    """The METADATA member of the wheel (the one of its own name when it has several), read
    with one request for the directory (when `tail` does not hold it) and one for the
    member."""
    source = redact(artifact.url)
    try:
        found, directory = wheelzip.metadata_members(read, size, tail)
        if len(found) > 1:
            parsed = parse_filename(artifact.filename)
            wanted = parsed[0] if parsed else ""
            found = [m for m in found if canonicalize_name(m.name.split("-")[0]) == wanted]
        if len(found) != 1:
            raise UnreadableMetadata(f"{source}: wheel has no single .dist-info/METADATA")
        return wheelzip.member_bytes(read, found[0], directory)
    except (wheelzip.BadWheel, OSError) as exc:
        raise UnreadableMetadata(f"{source}: not a readable wheel ({exc})") from exc


class _Remote:
    """A remote file's bytes by range requests, the ones already fetched kept."""

    def __init__(self, client: Client, url: str, size: int, tail: bytes) -> None:
        self._client, self._url = client, url
        self._chunks: list[tuple[int, bytes]] = [(size - len(tail), tail)]
        self.lowest = size  # the lowest offset read (the member's header, once read)

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end), with one request unless a fetched chunk holds them all.

        The first read past the tail is the central directory's: it also takes the bytes
        before it, as many again plus `TAIL`. A wheel's `.dist-info` members come last, just
        before the directory, with RECORD (about the directory's size) after METADATA, so
        METADATA usually arrives with the directory: two round trips instead of three for
        wheels with many files (torch's, transformers')."""
        self.lowest = min(self.lowest, start)
        for offset, chunk in self._chunks:
            if offset <= start and end <= offset + len(chunk):
                return chunk[start - offset : end - offset]
        ahead = (end - start) + TAIL if len(self._chunks) == 1 else 0
        first = max(0, start - ahead)
        response = self._client.get_range(self._url, first, end - 1)
        if response.status != 206 or len(response.body) != end - first:
            raise OSError(f"range {first}-{end - 1} answered HTTP {response.status}")
        self._chunks.append((first, response.body))
        return response.body[start - first :]


# -- sdists --------------------------------------------------------------------------------


def _sdist(client: Client, artifact: Artifact) -> bytes:
    source = redact(artifact.url)
    if artifact.filename.endswith(".zip"):  # its directory is at the end: the whole file
        with tempfile.TemporaryFile() as tmp:
            client.stream_to(artifact.url, tmp)
            tmp.seek(0)
            pkg_info = _pkg_info(tmp, artifact.filename, source)
    else:
        # A tarball read as it arrives, up to its PKG-INFO: build tools write it among the
        # first members (opencv-python 5.1.0.95's, 83 MB, has it 190 KB in).
        pkg_info = client.read_stream(
            artifact.url, lambda body: _pkg_info(body, artifact.filename, source, stream=True)
        )
    return pkg_info or b""  # kept as is (cached by hash); static_or_raise judges it


def _pkg_info(
    fileobj: IO[bytes], filename: str, source: str, *, stream: bool = False
) -> bytes | None:
    """The sdist's top-level PKG-INFO (None: it has none); with `stream`, `fileobj` (a
    tarball) is read forward only, and no further than that member."""
    import tarfile  # with zipfile, ~6 ms to import: only an sdist needs them
    import zipfile

    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(fileobj) as zf:
                names = [n for n in zf.namelist() if re.fullmatch(r"[^/]+/PKG-INFO", n)]
                return zf.read(names[0]) if names else None
        with tarfile.open(fileobj=fileobj, mode="r|*" if stream else "r:*") as tf:
            for info in tf:
                if info.isfile() and re.fullmatch(r"[^/]+/PKG-INFO", info.name):
                    member = tf.extractfile(info)
                    return member.read() if member else None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UnreadableMetadata(f"{source}: not a readable sdist ({exc})") from exc
    return None


def static_or_raise(pkg_info: bytes | None, filename: str) -> bytes:
    """An sdist's PKG-INFO when it can be trusted without a build, else `BuildNeeded`: the
    caller's cue to build it (or, under `[resolution] no-build`, to say why it may not), so
    the error carries no hint of its own."""
    if pkg_info is None:
        raise BuildNeeded(f"{filename} has no PKG-INFO; it needs a PEP 517 build")
    raw = read_fields(pkg_info)
    version = raw.get("metadata_version", "1.0")
    try:
        static = Version(version) >= Version("2.2")
    except InvalidVersion:
        static = False
    if not static:
        raise BuildNeeded(
            f"{filename} has Metadata-Version {version} (< 2.2); it needs a PEP 517 build"
        )
    dynamic = {d.lower() for d in raw.get("dynamic", [])}
    if dynamic & {"requires-dist", "requires-python"}:
        fields = ", ".join(sorted(dynamic & {"requires-dist", "requires-python"}))
        raise BuildNeeded(f"{filename} declares {fields} dynamic; it needs a PEP 517 build")
    return pkg_info


def to_cached(meta: DistMetadata) -> bytes:
    """The parsed metadata as the cache keeps it: a JSON line of its fields, then its
    Requires-Dist lines, one per line: decoding unsloth's ~1,000 lines per release as a JSON
    array cost more than splitting text (reading macos-arm64's 293 files back offline took
    41 ms as JSON, 37 ms so; most of the rest is parsing each distinct line once). A line with
    a line break in it (packaging parses none, but the form must not depend on it) keeps the
    JSON array."""
    lines = [line_of(r) for r in meta.requires_dist]
    fields: dict[str, object] = {
        "name": meta.name,
        "version": str(meta.version),
        "requires-python": meta.requires_python,
        "provides-extra": list(meta.provides_extra),
    }
    if any("\n" in line for line in lines):
        return json.dumps({**fields, "requires-dist": lines}).encode()
    return b"\n".join([json.dumps(fields).encode(), *(line.encode() for line in lines)])


def from_cached(data: bytes) -> DistMetadata:
    """`to_cached`'s output back (written by us after validation, so trusted: each line's
    part before its marker is parsed when first read)."""
    head, _, body = data.partition(b"\n")
    raw = json.loads(head)
    if "requires-dist" in raw:
        lines = raw["requires-dist"]
    else:
        lines = body.decode().split("\n") if body else []
    return DistMetadata(
        name=raw["name"],  # `to_cached` wrote them normalized (unsloth lists ~200 extras)
        version=Version(raw["version"]),
        requires_dist=cached_requirements(lines),
        requires_python=raw["requires-python"],
        provides_extra=tuple(raw["provides-extra"]),
    )


def local_metadata(path: Path, artifact: Artifact) -> bytes:
    """The core metadata in the local file `path` of `artifact`: a wheel's METADATA, or an
    sdist's PKG-INFO when it is static (else `BuildNeeded`, saying why it is not)."""
    with path.open("rb") as fileobj:
        if artifact.kind == "wheel":
            size = os.fstat(fileobj.fileno()).st_size

            def read(start: int, end: int) -> bytes:
                fileobj.seek(start)
                return fileobj.read(end - start)

            return _read_metadata(read, size, read(max(0, size - 65536), size), artifact)
        pkg_info = _pkg_info(fileobj, artifact.filename, redact(artifact.url))
    return static_or_raise(pkg_info, artifact.filename)
