"""The finder's fetcher: index pages, core metadata files and file hashes, each from the
persistent cache when it holds them and from the network (`http.Client`) when it must — never
under `--offline`. It counts what it cost (`FinderStats`).

The finder is built on one (`finder.open_finder` makes it from the HTTP client and the cache)
and does no I/O of its own beyond it and the source trees; everything past here is parsing and
memoizing. URLs given here are credential-free; the client adds the credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from envspec.errors import IndexError_
from envspec.index import metadata as md
from envspec.index.cache import Cache
from envspec.index.http import Client, Response
from envspec.index.simple import parse_filename
from envspec.model import Artifact


@dataclass(frozen=True, kw_only=True, slots=True)
class FinderStats:
    """What a Finder cost: requests sent, body bytes received, metadata files fetched (not
    from cache), whole-file downloads (metadata fallbacks, sdists, hashing)."""

    requests: int
    bytes_downloaded: int
    metadata_fetched: int
    full_downloads: int


MAX_TAIL = 4 << 20  # the longest first read of a wheel learned from its project's others


class Fetcher:
    """Cached fetches for one finder; thread-safe (the cache's writes are atomic)."""

    def __init__(self, client: Client, cache: Cache) -> None:
        self._client = client
        self._cache = cache
        self._lock = threading.Lock()
        self._metadata_fetched = 0
        self._full_downloads = 0
        self._tails: dict[str, int] = {}  # project → bytes its last wheel's metadata took
        self._present: set[str] = set()  # metadata keys known stored

    def page(self, url: str, accept: str) -> Response:
        """A project page or flat listing (200 or 404), revalidated as HTTP says."""
        return self._cache.page(self._client, url, accept)

    def listing(
        self, url: str, accept: str, variant: str, parse: Callable[[Response], bytes]
    ) -> bytes:
        """`parse(page)` of a page, parsed once per content of the page (`Cache.listing`)."""
        return self._cache.listing(self._client, url, accept, variant, parse)

    # -- metadata --------------------------------------------------------------------------
    def metadata_file(self, artifact: Artifact, key: str) -> bytes:
        """The raw core metadata of `artifact` (fetched from its URL), kept under `key`."""
        data = self._cache.load_metadata(key)
        if data is not None:
            return data
        self._cache.require_online(artifact.url)
        parsed = parse_filename(artifact.filename)
        project = parsed[0] if parsed else artifact.filename
        with self._lock:
            learned = self._tails.get(project, 0)
        # A project's wheels are alike from version to version: a first read as long as the
        # last one needed (a quarter more, for growth) takes a backtrack's next wheel in one
        # request instead of two (unsloth's directory and METADATA sit ~400 KB from the end).
        tail = min(MAX_TAIL, learned + learned // 4)
        fetched = md.fetch(self._client, artifact, tail)
        with self._lock:
            self._metadata_fetched += 1
            self._full_downloads += fetched.how in ("full", "sdist")
            if fetched.needed is not None:
                self._tails[project] = fetched.needed
        self._cache.store_metadata(key, fetched.data)
        return fetched.data

    def parsed_metadata(self, key: str) -> bytes | None:
        """The parsed form of the metadata under `key`, as `keep_parsed` stored it."""
        return self._cache.load_parsed(key)

    def keep_parsed(self, key: str, data: bytes) -> None:
        self._cache.store_parsed(key, data)

    def has_metadata(self, key: str) -> bool:
        # Read-ahead asks about the same files again and again; once stored, a file's
        # metadata stays (kept by its hash): one stat per file, not one per question.
        if key in self._present:
            return True
        found = self._cache.has_metadata(key)
        if found:
            self._present.add(key)
        return found

    # -- hashes ----------------------------------------------------------------------------
    def file_info(self, artifact: Artifact, url: str) -> tuple[str, int | None]:
        """(sha256, size) of the file at `url`: the size by HEAD when `artifact` has a hash
        (None when HEAD does not tell), else both by streaming the file once; remembered."""
        stored = self._cache.load_file_info(url)
        if stored is not None:
            return stored
        self._cache.require_online(url)
        if artifact.sha256:
            # Only the size is missing, and PEP 751 makes it optional: ask HEAD, and when the
            # server does not tell, leave it out rather than download a 2 GB wheel to count it.
            try:
                response = self._client.head(url)
            except IndexError_:
                return artifact.sha256, None
            length = response.header("content-length") or ""
            if response.status != 200 or not length.isdigit():
                return artifact.sha256, None
            self._cache.store_file_info(url, artifact.sha256, int(length))
            return artifact.sha256, int(length)
        sha256, size = self._client.stream_to(url)
        with self._lock:
            self._full_downloads += 1
        self._cache.store_file_info(url, sha256, size)
        return sha256, size

    # -- housekeeping ----------------------------------------------------------------------
    @property
    def stats(self) -> FinderStats:
        with self._lock:
            return FinderStats(
                requests=self._client.stats.requests,
                bytes_downloaded=self._client.stats.bytes_downloaded,
                metadata_fetched=self._metadata_fetched,
                full_downloads=self._full_downloads,
            )

    def close(self) -> None:
        self._client.close()
