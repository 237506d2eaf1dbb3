"""The index API the resolver uses: which files an index has for a name, which index a name is
routed to, each artifact's metadata and hash, and concurrent prefetching of all of those.

Every piece of work has a key and runs once: the first caller (a prefetch worker or a blocking
call) claims the key and runs it in its own thread, later callers wait on the same future. A
waiter only ever waits on a thread that is already running its work, so prefetches and
blocking calls mix without deadlock; results (and final errors) stay memoized for the
Finder's life.

The Finder does one job, answering the resolver; `open_finder` builds it and the parts it is
made of — the credentials, the HTTP client and cache behind its `Fetcher`, the mirrors, the
source trees and the worker pool — from the spec's indexes and the CLI's environment
snapshot. Index URLs reach the Finder in their public form (`Index.location.public`); only the
credentials and the build environment see their secrets, so artifact URLs, cache keys, logs
and errors are credential-free.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from envspec.errors import IndexError_
from envspec.index import metadata as md
from envspec.index.auth import Credentials, public_index
from envspec.index.build import BuildSettings
from envspec.index.cache import Cache
from envspec.index.direct import parse_direct
from envspec.index.fetch import Fetcher, FinderStats
from envspec.index.http import Client, Response
from envspec.index.mirror import KnownFiles, Mirrors
from envspec.index.releases import (
    Releases,
    dump_listing,
    load_listing,
    load_releases,
    of_artifacts,
)
from envspec.index.simple import (
    ACCEPT,
    FileFilter,
    Keep,
    parse_filename,
    parse_page,
)
from envspec.index.sources import SourceTrees, index_environment
from envspec.model import Artifact, DistMetadata, Index, VcsSource
from envspec.secret import redact

log = logging.getLogger(__name__)
T = TypeVar("T")
EVERY_FILE = "every file"  # the listing variant kept by no filter


@dataclass(frozen=True, kw_only=True, slots=True)
class FinderSettings:
    """How a Finder reaches its indexes: the cache, `--offline`/`--refresh`, and the HTTP
    client's limits."""

    cache_dir: Path | None = None
    offline: bool = False
    refresh: bool = False
    workers: int = 10
    retries: int = 3
    backoff: float = 0.2
    timeout: float = 30.0


class _Once:
    """Run each key's work once; concurrent callers of the same key share its future."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[Hashable, Future[Any]] = {}

    def run(self, key: Hashable, work: Callable[[], T]) -> T:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(work())
            except BaseException as exc:
                future.set_exception(exc)
        return cast(T, future.result())

    def started(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._futures


def open_finder(
    indexes: Sequence[Index],
    environ: Mapping[str, str],
    settings: FinderSettings = FinderSettings(),
    *,
    known_files: KnownFiles | None = None,
    keep_file: FileFilter | None = None,
) -> Finder:
    """A Finder for the spec's `indexes` (as parsed: `${VAR}`s expanded, credentials in), with
    its mirrors, credentials and build environment from `environ`. `known_files`: canonical
    file URL → (sha256, size) from the locks being replaced, the hashes a mirror's files must
    have (see `mirror`); `keep_file`: which filenames to keep from pages (the targets' wheel
    filter), the rest dropped as pages are parsed."""
    public = [public_index(index) for index in indexes]
    mirrors = Mirrors.load(public, environ, known_files)
    credentials = Credentials([*indexes, *mirrors.logins], environ)
    client = Client(
        credentials,
        retries=settings.retries,
        backoff=settings.backoff,
        timeout=settings.timeout,
        maxsize=settings.workers,
    )
    cache = Cache(settings.cache_dir, offline=settings.offline, refresh=settings.refresh)
    build = BuildSettings(
        environ=environ, index_env=index_environment(indexes, environ), offline=settings.offline
    )
    return Finder(
        indexes=public,
        fetcher=Fetcher(client, cache),
        mirrors=mirrors,
        trees=SourceTrees(cache=cache, client=client, settings=build),
        pool=ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="envspec-index"),
        keep_file=keep_file,
        read_ahead=not settings.offline,
    )


class Finder:
    """Files, routing, metadata and hashes from the spec's indexes; thread-safe."""

    def __init__(
        self,
        *,
        indexes: Sequence[Index],
        fetcher: Fetcher,
        mirrors: Mirrors,
        trees: SourceTrees,
        pool: ThreadPoolExecutor,
        keep_file: FileFilter | None = None,
        read_ahead: bool = True,
    ) -> None:
        """`indexes` in spec order and public (see `public_index`); the Finder owns the
        parts it is given and closes them. Without `read_ahead` (offline: nothing to wait
        for, so nothing to overlap), prefetching does nothing."""
        self._fetch = fetcher
        self._mirrors = mirrors
        self._trees = trees
        self._pool = pool
        self._keep = keep_file
        self._read_ahead = read_ahead
        self._variant = keep_file.key if keep_file else EVERY_FILE
        self._indexes = {index.name: index for index in indexes}
        self._order = list(indexes)
        self._parse_lock = threading.Lock()
        self._once = _Once()

    # -- files and routing -----------------------------------------------------------------
    def files(self, name: NormalizedName, index: Index) -> list[Artifact]:
        """The files `index` lists for `name`, newest release first; [] when it does not
        have the name."""
        return list(self.releases(name, index).every())

    def releases(self, name: NormalizedName, index: Index) -> Releases:
        """The releases `index` lists for `name`, newest first (none when it does not have
        the name)."""
        return self._listing(canonicalize_name(name), self._known(index))[1]

    def every_file(
        self, name: NormalizedName, index: Index, version: Version | None = None
    ) -> list[Artifact]:
        """Every file `index` lists for `name` (of `version` only, if given), those no target
        can use included: for saying why none fits (an error path; the page comes from the
        cache)."""
        wanted, index = canonicalize_name(name), self._known(index)
        url = self._mirrors.page_base(index) + ("" if index.flat else f"{wanted}/")
        accept = "text/html" if index.flat else ACCEPT

        def pick(filename: str) -> bool:
            parsed = parse_filename(filename)
            return parsed is not None and parsed[0] == wanted and version in (None, parsed[1])

        data, parsed = self._page(url, accept, EVERY_FILE, None)
        if parsed:
            found = [a for a in parsed[0] or () if pick(a.filename)]
        elif (releases := load_releases(data, wanted)) is None:
            found = []
        else:
            found = list(releases.every() if version is None else releases.files(version))
        return self._mirrors.canonical(index, found)

    def route(self, name: NormalizedName, routed: str | None) -> Index | None:
        """The index `name` comes from: the explicit one it is routed to, else the first
        non-explicit index (in spec order) that has the name at all."""
        if routed is not None:
            if routed not in self._indexes:
                raise IndexError_(f"unknown index '{routed}'")
            return self._indexes[routed]
        wanted = canonicalize_name(name)
        for index in self._order:
            if not index.explicit and self._listing(wanted, index)[0]:
                return index
        return None

    def _known(self, index: Index) -> Index:
        return self._indexes.get(index.name) or public_index(index)

    def _listing(self, name: NormalizedName, index: Index) -> tuple[bool, Releases]:
        if index.flat:
            every = self._once.run(("flat", index.location.public), lambda: self._flat(index))
            found = of_artifacts(every, name)
            return bool(found), found
        key = ("files", index.location.public, name)
        return self._once.run(key, lambda: self._project(name, index))

    def _project(self, name: NormalizedName, index: Index) -> tuple[bool, Releases]:
        url = f"{self._mirrors.page_base(index)}{name}/"
        data, parsed = self._page(url, ACCEPT, self._variant, self._keep)
        if not parsed and not self._mirrors:
            releases = load_releases(data, name)
            return releases is not None, releases or of_artifacts((), name)
        found = parsed[0] if parsed else load_listing(data)
        if found is None:
            return False, of_artifacts((), name)
        found = self._mirrors.canonical(index, found)
        log.debug("%s: %d files for %s", redact(url), len(found), name)
        return True, of_artifacts(found, name)

    def _flat(self, index: Index) -> tuple[Artifact, ...]:
        url = self._mirrors.page_base(index)
        page = self._fetch.page(url, "text/html")
        if page.status != 200:
            raise IndexError_(
                f"GET {redact(url)} failed: HTTP {page.status}",
                context=f"indexes.{index.name}",
            )
        found = parse_page(page.body, "text/html", page.url, self._keep)
        return tuple(self._mirrors.canonical(index, found))

    def _page(
        self, url: str, accept: str, variant: str, keep: Keep | None
    ) -> tuple[bytes, list[list[Artifact] | None]]:
        """The page at `url` as the cache keeps it parsed (`variant` naming `keep`, the
        filter of its filenames), and, when it was parsed now, the files parsed (None: no
        such page)."""
        parsed: list[list[Artifact] | None] = []

        def parse(page: Response) -> bytes:
            found = None
            if page.status == 200:
                # One page parsed at a time: a big JSON page (pydantic-core's is 7 MB) becomes
                # ~10x its size in Python objects while parsed, and the GIL serializes
                # parsing anyway.
                with self._parse_lock:
                    found = parse_page(page.body, page.header("content-type") or "", page.url, keep)
            parsed.append(found)
            return dump_listing(found)

        return self._fetch.listing(url, accept, variant, parse), parsed

    # -- metadata and hashes ---------------------------------------------------------------
    def metadata(self, artifact: Artifact) -> DistMetadata:
        """The core metadata of `artifact` (memoized, persistently cached by its hash)."""
        fetched = self._mirrors.via(artifact)  # the file as a mirror serves it, if mirrored
        key = artifact.sha256 or redact(fetched.url)
        return self._once.run(("metadata", key), lambda: self._load_metadata(fetched, key))

    def _load_metadata(self, artifact: Artifact, key: str) -> DistMetadata:
        """Parsed once: its parsed form is cached beside the raw file, since parsing a
        METADATA file (email headers) costs ~1 ms and a lock reads hundreds."""
        parsed = self._fetch.parsed_metadata(key)
        if parsed is not None:
            return md.from_cached(parsed)
        data = self._fetch.metadata_file(artifact, key)
        meta = self._parse(data, redact(artifact.url), artifact)
        self._fetch.keep_parsed(key, md.to_cached(meta))
        return meta

    @staticmethod
    def _parse(data: bytes, source: str, artifact: Artifact) -> DistMetadata:
        if artifact.kind == "sdist":
            data = md.static_or_raise(data or None, artifact.filename)
        return md.parse_metadata(data, source, artifact)

    def ensure_hash(self, artifact: Artifact) -> Artifact:
        """`artifact` with sha256 and size filled in: the size by HEAD when the index gave a
        hash (left unknown when HEAD does not tell), else sha256 and size by streaming the
        file once (remembered in the cache)."""
        if artifact.sha256 and artifact.size is not None:
            return artifact
        url = redact(self._mirrors.fetch_url(artifact.url))
        sha256, size = self._once.run(("hash", url), lambda: self._fetch.file_info(artifact, url))
        if artifact.sha256 and artifact.sha256 != sha256:
            raise IndexError_(
                f"{url}: sha256 {sha256} does not match the index's {artifact.sha256}"
            )
        return artifact.with_(sha256=sha256, size=size)

    # -- source trees: direct references and builds ----------------------------------------
    def pin_direct(self, url: str) -> Artifact | VcsSource:
        """What a direct reference names: its archive, or the commit its git revision names
        now (asked once per Finder; a full commit id is not asked at all)."""
        ref = parse_direct(url)
        if ref.kind == "archive":
            return ref.artifact()
        key = ("commit", ref.location, ref.revision)
        commit = self._once.run(key, lambda: self._trees.commit(ref))
        return VcsSource(url=ref.public_location, requested_revision=ref.revision, commit_id=commit)

    def git_metadata(
        self, url: str, commit: str, *, allow_build: bool = True
    ) -> tuple[DistMetadata, bool]:
        """The metadata of git reference `url` at `commit`, and whether it was built (on this
        machine) rather than read from static `[project]` data; without `allow_build`,
        `BuildNeeded` where only a build would tell."""
        ref = parse_direct(url)
        tree = self._once.run(
            ("git", commit, allow_build),
            lambda: self._trees.git_metadata(ref, commit, allow_build=allow_build),
        )
        return md.parse_metadata(tree.data, f"{ref.shown} ({commit[:12]})"), tree.built

    def build_metadata(self, artifact: Artifact) -> DistMetadata:
        """The metadata of an sdist from a PEP 517 build (cached by the sdist's sha256)."""
        fetched = self._mirrors.via(artifact)  # the file as a mirror serves it, if mirrored
        key = artifact.sha256 or redact(fetched.url)
        data = self._once.run(("pep517", key), lambda: self._trees.sdist_metadata(fetched))
        return md.parse_metadata(data, redact(artifact.url), artifact)

    # -- prefetching -----------------------------------------------------------------------
    @property
    def reads_ahead(self) -> bool:
        """Whether prefetching fetches anything (offline, it does nothing)."""
        return self._read_ahead

    def prefetch_files(self, names: Iterable[tuple[NormalizedName, str | None]]) -> None:
        """Start fetching the routed listings of `names` (name, routed index or None)."""
        if not self._read_ahead:
            return
        for name, routed in names:
            self._pool.submit(self._quietly, self._prefetch_route, name, routed)

    def _prefetch_route(self, name: NormalizedName, routed: str | None) -> None:
        index = self.route(name, routed)
        if index is not None:
            self.releases(name, index)  # the page fetched; its releases are read when asked

    def prefetch_metadata(self, artifacts: Iterable[Artifact]) -> None:
        """Start fetching the metadata of `artifacts`."""
        if not self._read_ahead:
            return
        for artifact in artifacts:
            # Read-ahead names the same files again and again: skip those already under way.
            # Files already on disk load faster on demand than the read-ahead would parse them.
            key = artifact.sha256 or redact(artifact.url)
            if not self._once.started(("metadata", key)) and not self._fetch.has_metadata(key):
                self._pool.submit(self._quietly, self.metadata, artifact)

    @staticmethod
    def _quietly(work: Callable[..., object], *args: Any) -> None:
        # A prefetch's error is kept in its key's future and raised to the blocking caller.
        try:
            work(*args)
        except Exception as exc:
            log.debug("prefetch failed: %s", exc)

    # -- housekeeping ----------------------------------------------------------------------
    @property
    def stats(self) -> FinderStats:
        return self._fetch.stats

    def close(self, *, wait: bool = True) -> None:
        """Stop the prefetches; `wait=False` on an interrupt: a stalled read must not hold up
        the stop (the process ends without its thread)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)
        if wait:
            self._fetch.close()

    def __enter__(self) -> Finder:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(wait=not (t is not None and issubclass(t, KeyboardInterrupt)))
