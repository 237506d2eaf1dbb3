"""The persistent index cache: project pages kept with their validators and revalidated, core
metadata kept for good by the artifact's sha256 (by URL when the index gives no hash), and the
hash and size of files that had to be downloaded to learn them.

Hand-written rather than hishel: we need three things an HTTP cache library does not give —
`--offline` answered from the cache with our own error, `--refresh` forcing revalidation, and
metadata keyed by content hash rather than by URL. What we do take from HTTP is small:
`Cache-Control: max-age` (a fresh page is used without a request, `no-cache` revalidates,
`no-store` is not kept) and ETag/Last-Modified revalidation (a 304 reuses the stored body).

A page's files are also kept parsed (`listing`), in the compact form of `releases`, beside
the page and tagged with the sha256 of the body they came from: a page whose content did not
change is never parsed again, and one used without a request (fresh, or `--offline`) is not
even read.

Layout under the root (default `platformdirs.user_cache_dir("envspec")`): `v1/pages/<key>.json`
+ `.body` + `.<variant>.listing`, `v1/metadata/<k[:2]>/<k>.metadata` (+ `.parsed`, parsed),
`v1/files/<key>.json`. Every write is atomic
(`envspec.atomic`), so concurrent lockers never see half a file. Keys and stored
URLs are always credential-free.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from envspec.atomic import write_atomic
from envspec.errors import OfflineError, WriteError
from envspec.index.http import Client, Response
from envspec.secret import redact

OFFLINE_HINT = "run without --offline"
LISTING_FORMAT = "4"  # part of a listing's file name: a new form never reads an old one
# a parsed metadata file's suffix (`metadata.to_cached`; ".json" was the form before lines)
PARSED_SUFFIX = ".parsed"
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, kw_only=True, slots=True)
class _PageMeta:
    url: str
    status: int
    content_type: str
    etag: str | None
    last_modified: str | None
    stored_at: float
    max_age: float
    body_sha256: str

    def fresh(self, now: float) -> bool:
        return now - self.stored_at < self.max_age


def default_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("envspec"))


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _cache_policy(headers: Mapping[str, str]) -> tuple[float, bool]:
    """(max-age in seconds, whether to store at all) from Cache-Control."""
    value = headers.get("cache-control", "").lower()
    directives = {d.strip().split("=", 1)[0]: d.strip() for d in value.split(",") if d.strip()}
    if "no-store" in directives:
        return 0.0, False
    if "no-cache" in directives:
        return 0.0, True
    match = re.search(r"(?:^|[,\s])max-age=(\d+)", value)
    return (float(match[1]) if match else 0.0), True


class Cache:
    """Persistent cache of pages, metadata and file hashes. Thread- and process-safe writes."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        offline: bool = False,
        refresh: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = (root or default_root()) / "v1"
        # Page and metadata reads build their paths as text: a lock reads hundreds of files,
        # and pathlib's joins cost more than the reads (writes, far fewer, take a Path)
        self._pages_dir = f"{self.root}{os.sep}pages{os.sep}"
        self._metadata_dir = f"{self.root}{os.sep}metadata{os.sep}"
        self.offline = offline
        self.refresh = refresh
        self._clock = clock
        self._asked: set[str] = set()  # keys of the pages this cache asked the index for

    def require_online(self, url: str) -> None:
        """Refuse the network while offline, naming what was missing (local files are fine)."""
        if self.offline and not url.startswith("file:"):
            raise OfflineError(f"offline: {redact(url)} is not in the cache", hint=OFFLINE_HINT)

    # -- pages -----------------------------------------------------------------------------
    def page(self, client: Client, url: str, accept: str) -> Response:
        """A project page (200 or 404) from the cache or the index, revalidating as HTTP says."""
        url = redact(url)
        if url.startswith("file:"):
            return client.get(url, {"Accept": accept})
        return self._page(client, url, _key(url, accept), accept)[0]

    def listing(
        self,
        client: Client,
        url: str,
        accept: str,
        variant: str,
        parse: Callable[[Response], bytes],
    ) -> bytes:
        """`parse(page)` of the page at `url`, kept beside the page for as long as the page's
        content (its sha256) stays the same: an unchanged page is parsed once, not on every
        lock, and a page that needs no request is not even read. `variant` names what `parse`
        keeps of a page (the targets' file filter), so each filter has its own."""
        url = redact(url)
        if url.startswith("file:"):
            return parse(client.get(url, {"Accept": accept}))
        key = _key(url, accept)
        path = f"{self._pages_dir}{key}.{_variant_key(variant)}.listing"
        meta = self._load_meta(key)
        if meta is not None and self._current(key, meta):
            found = _load_listing(path, meta.body_sha256)
            if found is not None:
                return found
        page, digest = self._page(client, url, key, accept)
        found = _load_listing(path, digest) if digest else None
        if found is None:
            found = parse(page)
            if digest:
                self._write(Path(path), _stored_listing(found, digest))
        return found

    def _current(self, key: str, meta: _PageMeta) -> bool:
        """Whether the stored page is to be used without asking the index: offline, fresh
        by its max-age, or asked already by this cache (one lock reads each page once,
        whatever asks for it again)."""
        if self.offline or key in self._asked:
            return True
        return not self.refresh and meta.fresh(self._clock())

    def _page(self, client: Client, url: str, key: str, accept: str) -> tuple[Response, str | None]:
        """The page and the sha256 of its body, None when the page is not kept. The stored
        body is read only to be used, or to be confirmed by a 304 (a page stored without
        validators is fetched again whole), and written only when it changed."""
        meta = self._load_meta(key)
        if meta is not None and self._current(key, meta):
            stored = self._load_page(key)
            if stored is not None:
                return _response(*stored), stored[0].body_sha256
        self.require_online(url)
        headers = {"Accept": accept}
        stored = self._load_page(key) if meta and (meta.etag or meta.last_modified) else None
        if stored is not None and stored[0].etag:
            headers["If-None-Match"] = stored[0].etag
        if stored is not None and stored[0].last_modified:
            headers["If-Modified-Since"] = stored[0].last_modified
        response = client.get(url, headers)
        if response.status == 304 and stored is not None:
            meta, body = stored
            self._store_page(key, response, _response(meta, body), meta)
            self._asked.add(key)
            return _response(meta, body), meta.body_sha256
        if response.status not in (200, 404) or not _cache_policy(response.headers)[1]:
            return response, None
        digest = hashlib.sha256(response.body).hexdigest()
        same = meta is not None and meta.body_sha256 == digest
        kept = same and self._body_size(key) == len(response.body)
        self._store_page(key, response, response, None, digest, body_kept=kept)
        self._asked.add(key)
        return response, digest

    def _body_size(self, key: str) -> int | None:
        try:
            return os.stat(f"{self._pages_dir}{key}.body").st_size
        except OSError:
            return None

    def _pages(self) -> Path:
        return self.root / "pages"

    def _load_meta(self, key: str) -> _PageMeta | None:
        try:
            return _PageMeta(**json.loads(_read(f"{self._pages_dir}{key}.json")))
        except (OSError, ValueError, TypeError):
            return None

    def _load_page(self, key: str) -> tuple[_PageMeta, bytes] | None:
        meta = self._load_meta(key)
        if meta is None:
            return None
        try:
            body = _read(f"{self._pages_dir}{key}.body")
        except OSError:
            return None
        if hashlib.sha256(body).hexdigest() != meta.body_sha256:
            return None  # a body from another write: treat as missing
        return meta, body

    def _store_page(
        self,
        key: str,
        answer: Response,
        page: Response,
        previous: _PageMeta | None,
        digest: str | None = None,
        *,
        body_kept: bool = False,
    ) -> None:
        """Keep `page` under `key`, with the validators and freshness of `answer` (the 200, or
        the 304 that confirmed `page`) over those of `previous`; `body_kept`: the stored body
        is already `page`'s."""
        max_age, keep = _cache_policy(answer.headers)
        if not keep:
            return
        headers = answer.headers
        meta = _PageMeta(
            url=redact(page.url),
            status=page.status,
            content_type=page.header("content-type") or "",
            etag=headers.get("etag") or (previous.etag if previous else None),
            last_modified=headers.get("last-modified")
            or (previous.last_modified if previous else None),
            stored_at=self._clock(),
            max_age=max_age,
            body_sha256=digest or hashlib.sha256(page.body).hexdigest(),
        )
        if not body_kept and (previous is None or previous.body_sha256 != meta.body_sha256):
            self._write(self._pages() / f"{key}.body", page.body)
        self._write(self._pages() / f"{key}.json", json.dumps(asdict(meta)).encode())

    # -- metadata --------------------------------------------------------------------------
    def _metadata_path(self, key: str) -> str:
        """Where the metadata under `key` is kept, without its suffix."""
        digest = key if _DIGEST.fullmatch(key) else "url-" + _key(redact(key))
        return f"{self._metadata_dir}{digest[:2]}{os.sep}{digest}"

    def load_metadata(self, key: str) -> bytes | None:
        """Raw core metadata stored under an artifact's sha256 (or its URL)."""
        try:
            return _read(self._metadata_path(key) + ".metadata")
        except OSError:
            return None

    def store_metadata(self, key: str, data: bytes) -> None:
        self._write(Path(self._metadata_path(key) + ".metadata"), data)

    def has_metadata(self, key: str) -> bool:
        return os.path.exists(self._metadata_path(key) + ".metadata")

    def load_parsed(self, key: str) -> bytes | None:
        """The parsed form of the metadata under `key` (see `Finder`), if stored."""
        try:
            return _read(self._metadata_path(key) + PARSED_SUFFIX)
        except OSError:
            return None

    def store_parsed(self, key: str, data: bytes) -> None:
        self._write(Path(self._metadata_path(key) + PARSED_SUFFIX), data)

    def _write(self, path: Path, data: bytes) -> None:
        """A cache file written whole, or `WriteError` naming the cache: a cache folder that
        is a file, or one without write permission, fails the command in one line, not a
        traceback."""
        try:
            write_atomic(path, data)
        except OSError as exc:
            raise WriteError(
                f"cannot write the cache: {exc.strerror}",
                context=str(self.root.parent),
                hint="pass --cache-dir DIR (or set ENVSPEC_CACHE_DIR) to a folder envspec can "
                "write",
            ) from exc

    # -- file hashes -----------------------------------------------------------------------
    def _file_path(self, url: str) -> Path:
        return self.root / "files" / f"{_key(redact(url))}.json"

    def load_file_info(self, url: str) -> tuple[str, int] | None:
        """(sha256, size) of a file downloaded earlier to hash it."""
        try:
            info: dict[str, Any] = json.loads(self._file_path(url).read_text("utf-8"))
            return str(info["sha256"]), int(info["size"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store_file_info(self, url: str, sha256: str, size: int) -> None:
        data = {"url": redact(url), "sha256": sha256, "size": size}
        self._write(self._file_path(url), json.dumps(data).encode())


def _read(path: str) -> bytes:
    """The whole file, in four system calls where `open(path, "rb").read()` makes nine (a
    buffered file checks for a terminal and seeks twice): an offline lock reads ~500 cache
    files per target, and a system call costs microseconds in a virtual machine."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) <= size:  # one read gives a regular file whole
            return data
        parts = [data]  # it grew since: read on to its end
        while part := os.read(fd, 1 << 20):
            parts.append(part)
        return b"".join(parts)
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=16)
def _variant_key(variant: str) -> str:
    """A listing variant's part of its file name (a filter's name runs to kilobytes)."""
    return _key(variant, LISTING_FORMAT)[:16]


def _load_listing(path: str, digest: str) -> bytes | None:
    """A stored listing, if it was made from the page whose body has sha256 `digest`: the
    digest ends the file (`_stored_listing`), after the listing's last part, where a reader
    of the form never looks (`releases.load_releases` reads parts by their offsets), so the
    file's bytes are the listing's without a copy: copying every listing out from behind a
    leading digest line was ~4% of resolving a target offline."""
    try:
        data = _read(path)
    except OSError:
        return None
    return data if data.endswith(b"\n" + digest.encode()) else None


def _stored_listing(listing: bytes, digest: str) -> bytes:
    """What a listing file holds: the listing, then the digest of the page it was made from."""
    return listing + b"\n" + digest.encode()


def _response(meta: _PageMeta, body: bytes) -> Response:
    headers = {"content-type": meta.content_type} if meta.content_type else {}
    return Response(url=meta.url, status=meta.status, headers=headers, body=body)
