"""All of envspec's network I/O: GETs of index pages, range reads and streamed downloads of files,
over HTTP(S) and `file://`, with credentials, retries and byte counters.

`Client.download` writes a whole file to disk for the artifact store: it resumes a partial file
with `Range: bytes=N-` (a server that answers 200 instead gets the file written from the
start), and on a dropped connection resumes again where it stopped. Tries that get no further
into the file than any try before are limited to `retries` in a row; a try that made progress
does not count against them, so a 2.5 GB wheel over a flaky line gets there, and a server that
ignores Range and cuts every answer short is not asked again forever. The caller checks the
sha256 it returns.

Why urllib3 (one `PoolManager` shared by worker threads) and not httpx + h2: urllib3 is already
a dependency (pip and most of the ecosystem ship it), keeps connections alive per host and is
thread-safe. Index traffic is many small pages plus a few range reads; against real indexes it
is latency-bound, and the finder's worker threads (`FinderSettings.workers`, 10) over a pool of
as many keep-alive connections per host overlap that latency as well as HTTP/2 streams would.
Measured on the 2-core dev machine against the test server in the same process: ~1,750 page
GETs/s sequentially over one kept-alive connection (~0.6 ms each; the Python server is the
bottleneck), ~1,300/s from 16 threads — orders of magnitude above what a resolution needs.
httpx with HTTP/2 would add httpx, httpcore, h2, hpack, hyperframe,
anyio and sniffio for no measured gain.
Retries are our own short loop (not urllib3's `Retry`, not tenacity/stamina) because a
truncated body, a timeout and a 5xx must all be retried alike and the final error must be one
credential-free line naming the URL and what failed.

Failures are named for what they are by `failure` (reusable by any caller of urllib3 here):
``cannot resolve host H`` and TLS failures (``certificate verify failed (…)``, ``the server does
not speak TLS``) and an answer that is not HTTP are final at once; ``connection refused by
H:P``, ``timed out connecting to H:P in N s``, ``timed out: no answer from H:P in N s``,
``connection reset by H:P``, ``H:P closed the connection without answering``, a truncated body
and ``HTTP 5xx`` are retried, the final message ending ``after N attempts``.

(Over 400 lines: all of envspec's network I/O is kept in this one module, as the house rules
ask, the client with its retries and resumed downloads, the failure names and `file://`.)
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar
from urllib.parse import quote, urljoin, urlsplit

from envspec.errors import IndexError_
from envspec.index.auth import Credentials
from envspec.secret import redact

if TYPE_CHECKING:
    import ssl

    import urllib3
    from urllib3.exceptions import ProtocolError, SSLError

# urllib3 (and ssl, http.client) are imported at the first request, not with this module: a
# lock from the cache (`--offline`, or pages still fresh) sends none, and they cost ~50 ms.

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
PASS_STATUSES = frozenset({404, 410, 416})  # returned to the caller, who knows what they mean
CHUNK = 1 << 16

T = TypeVar("T")
Progress = Callable[[int, int | None], None]  # (bytes so far, total or None when unknown)


@dataclass(frozen=True, kw_only=True, slots=True)
class Response:
    """A whole response: `headers` keys lower-case, `url` the final credential-free URL."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(kw_only=True, slots=True)
class HttpStats:
    """Counters for the benchmark: requests sent (every attempt) and body bytes received."""

    requests: int = 0
    bytes_downloaded: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, requests: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.bytes_downloaded += nbytes


class _Retryable(Exception):
    """One attempt failed in a way worth another try; `reason` goes into the final message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Client:
    """A thread-safe HTTP(S)/file client. Every URL given must be credential-free."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        retries: int = 3,
        backoff: float = 0.2,
        timeout: float = 30.0,
        maxsize: int = 16,
    ) -> None:
        self.credentials = credentials
        self.attempts = max(1, retries)
        self.backoff = backoff
        self.stats = HttpStats()
        self._timeout_seconds = timeout
        self._maxsize = maxsize
        self._managers: dict[bool, urllib3.PoolManager] = {}  # by whether TLS
        self._managers_lock = threading.Lock()

    def close(self) -> None:
        with self._managers_lock:
            for manager in self._managers.values():
                manager.clear()

    def _manager(self, url: str) -> urllib3.PoolManager:
        """The connection pools for `url`'s scheme, made at its first request. HTTPS ones
        share one TLS context with the system's trust store loaded once: urllib3 loads it
        again for every connection otherwise (~60 ms of CPU each, 21 times in a cold lock of
        the seed stack), and an offline run never loads it."""
        tls = url.startswith("https:")
        found = self._managers.get(tls)
        if found is not None:
            return found
        import urllib3
        from urllib3.util.ssl_ import create_urllib3_context

        with self._managers_lock:
            if tls not in self._managers:
                extra: dict[str, ssl.SSLContext] = {}
                if tls:
                    context = create_urllib3_context()
                    context.load_default_certs()
                    extra["ssl_context"] = context
                self._managers[tls] = urllib3.PoolManager(
                    num_pools=32,
                    maxsize=self._maxsize,
                    retries=urllib3.Retry(
                        total=None, connect=0, read=0, status=0, other=0, redirect=5
                    ),
                    headers={"User-Agent": "envspec"},
                    **extra,
                )
            return self._managers[tls]

    @functools.cached_property
    def _timeout(self) -> urllib3.Timeout:
        import urllib3

        return urllib3.Timeout(connect=self._timeout_seconds, read=self._timeout_seconds)

    # -- public ----------------------------------------------------------------------------
    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """GET `url` whole. Returns 2xx, 304, 404, 410 and 416; raises IndexError_ otherwise."""
        if url.startswith("file:"):
            return _file_get(url, None)
        sent = {"Accept-Encoding": "gzip, deflate", **(headers or {})}  # pages compress ~10x
        return self._with_retries("GET", url, lambda: self._request("GET", url, sent))

    def head(self, url: str) -> Response:
        if url.startswith("file:"):
            got = _file_get(url, None)
            return Response(url=got.url, status=got.status, headers=got.headers, body=b"")
        return self._with_retries("HEAD", url, lambda: self._request("HEAD", url, {}))

    def get_range(
        self, url: str, start: int | None = None, end: int | None = None, *, suffix: int = 0
    ) -> Response:
        """GET bytes `start..end` (inclusive) or the last `suffix` bytes. A server that ignores
        Range answers 200 with the whole body: callers must check the status."""
        spec = f"bytes=-{suffix}" if suffix else f"bytes={start}-{'' if end is None else end}"
        if url.startswith("file:"):
            return _file_get(url, spec)
        headers = {"Range": spec, "Accept-Encoding": "identity"}
        return self._with_retries("GET", url, lambda: self._request("GET", url, headers))

    def stream_to(self, url: str, sink: BinaryIO | None = None) -> tuple[str, int]:
        """Stream `url` into `sink` (rewound on a retry) while hashing: (sha256 hex, size)."""
        return self._with_retries("GET", url, lambda: self._stream(url, sink))

    def read_stream(self, url: str, read: Callable[[BinaryIO], T]) -> T:
        """`read(body)`, the body of `url` as a stream: only what `read` reads is fetched (the
        connection is closed on the rest); a transient failure runs `read` again on a new
        stream."""
        return self._with_retries("GET", url, lambda: self._read_stream(url, read))

    def download(self, url: str, path: Path, progress: Progress | None = None) -> Downloaded:
        """Download `url` into `path`, resuming what `path` already holds (see the module
        docstring); the sha256 and size of the whole file."""
        if url.startswith("file:"):
            return _file_download(url, path, progress)
        resumed = furthest = _size(path)
        stalled, reason = 0, ""
        while stalled < self.attempts:
            start = _size(path)
            try:
                sha256, size = self._download_once(url, path, start, progress)
                return Downloaded(sha256=sha256, size=size, resumed_from=resumed, url=redact(url))
            except _Restart:
                path.unlink(missing_ok=True)
                resumed = 0
                continue
            except _Retryable as exc:
                reason = exc.reason
            # progress is getting further than any try before: a server that ignores Range
            # restarts each try from byte 0, and one that cuts every answer at the same
            # byte would otherwise be asked again forever
            reached = _size(path)
            moved, furthest = reached > furthest, max(furthest, reached)
            stalled = 0 if moved else stalled + 1
            log.debug("GET %s: %s at byte %d (%d stalled)", redact(url), reason, start, stalled)
            if not moved and stalled < self.attempts:
                time.sleep(self.backoff * 2 ** (stalled - 1))
        plural = "attempt" if self.attempts == 1 else "attempts"
        raise IndexError_(
            f"GET {redact(url)} failed: {reason} after {self.attempts} {plural} in a row"
        )

    # -- internals -------------------------------------------------------------------------
    def _with_retries(self, method: str, url: str, attempt: Callable[[], T]) -> T:
        reason = ""
        for n in range(self.attempts):
            if n:
                time.sleep(self.backoff * 2 ** (n - 1))
            try:
                return attempt()
            except _Retryable as exc:
                reason = exc.reason
                log.debug(
                    "%s %s: %s (attempt %d of %d)",
                    method,
                    redact(url),
                    reason,
                    n + 1,
                    self.attempts,
                )
        plural = "attempt" if self.attempts == 1 else "attempts"
        raise IndexError_(f"{method} {redact(url)} failed: {reason} after {self.attempts} {plural}")

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], *, preload: bool
    ) -> urllib3.BaseHTTPResponse:
        sent = dict(headers)
        authorization = self.credentials.authorization(url)
        if authorization:
            sent["Authorization"] = authorization
        self.stats.add(requests=1)
        try:
            return self._manager(url).request(
                method, url, headers=sent, timeout=self._timeout, preload_content=preload
            )
        except _urllib3_error() as exc:
            raise self._failed(method, url, exc) from exc

    def _failed(self, method: str, url: str, exc: BaseException) -> Exception:
        """A retry for a transient failure; the final error at once for the rest (a host that
        does not resolve, a TLS failure, an answer that is not HTTP)."""
        found = failure(exc, url, self._timeout_seconds)
        if found.transient:
            return _Retryable(found.reason)
        return IndexError_(f"{method} {redact(url)} failed: {found.reason}")

    def _request(self, method: str, url: str, headers: Mapping[str, str]) -> Response:
        response = self._send(method, url, headers, preload=True)
        body = response.data or b""
        self.stats.add(nbytes=len(body))
        self._check_status(method, url, response.status)
        return Response(
            url=redact(urljoin(url, response.url or url)),  # urllib3 gives a path
            status=response.status,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=body,
        )

    def _check_status(self, method: str, url: str, status: int) -> None:
        if status in RETRY_STATUSES or status >= 500:
            raise _Retryable(f"HTTP {status}")
        if status in (401, 403):
            raise IndexError_(
                f"{method} {redact(url)} failed: HTTP {status}",
                hint=self.credentials.hint(url),
            )
        if status >= 400 and status not in PASS_STATUSES:
            raise IndexError_(f"{method} {redact(url)} failed: HTTP {status}")

    def _stream(self, url: str, sink: BinaryIO | None) -> tuple[str, int]:
        if sink is not None:
            sink.seek(0)
            sink.truncate()
        if url.startswith("file:"):
            return _file_stream(url, sink)
        response = self._send("GET", url, {"Accept-Encoding": "identity"}, preload=False)
        try:
            self._check_status("GET", url, response.status)
            if response.status != 200:
                raise IndexError_(f"GET {redact(url)} failed: HTTP {response.status}")
            hasher, size = hashlib.sha256(), 0
            try:
                for chunk in response.stream(CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
                    self.stats.add(nbytes=len(chunk))
                    if sink is not None:
                        sink.write(chunk)
            except _urllib3_error() as exc:
                raise self._failed("GET", url, exc) from exc
            return hasher.hexdigest(), size
        finally:
            response.release_conn()

    def _read_stream(self, url: str, read: Callable[[BinaryIO], T]) -> T:
        if url.startswith("file:"):
            path = _local_path(url)
            if not path.is_file():
                raise IndexError_(f"GET {redact(url)} failed: no such file")
            with path.open("rb") as local:
                return read(local)
        response = self._send("GET", url, {"Accept-Encoding": "identity"}, preload=False)
        try:
            self._check_status("GET", url, response.status)
            if response.status != 200:
                raise IndexError_(f"GET {redact(url)} failed: HTTP {response.status}")
            try:
                return read(io.BufferedReader(_Counted(response, self.stats), CHUNK))
            except _urllib3_error() as exc:
                raise self._failed("GET", url, exc) from exc
        finally:
            response.close()  # a body left unread cannot go back to the pool
            response.release_conn()

    def _download_once(
        self, url: str, path: Path, start: int, progress: Progress | None
    ) -> tuple[str, int]:
        headers = {"Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        response = self._send("GET", url, headers, preload=False)
        try:
            self._check_status("GET", url, response.status)
            if response.status in (404, 410):
                raise FileMissing(f"GET {redact(url)} failed: HTTP {response.status}")
            if start and (response.status != 206 or _resumed_at(response) != start):
                raise _Restart()  # Range ignored (200), or the partial file does not fit (416)
            if response.status not in (200, 206):
                raise IndexError_(f"GET {redact(url)} failed: HTTP {response.status}")
            total = _total_size(response, start)
            hasher = hashlib.sha256()
            _read_prefix(path, start, hasher.update)
            done = start
            with path.open("r+b" if start else "wb") as out:
                out.seek(start)
                out.truncate()
                try:  # read1, not stream: a cut connection loses no byte already received
                    while chunk := response.read1(CHUNK):
                        out.write(chunk)
                        hasher.update(chunk)
                        done += len(chunk)
                        self.stats.add(nbytes=len(chunk))
                        if progress is not None:
                            progress(done, total)
                except _urllib3_error() as exc:
                    raise _Retryable(failure(exc, url).reason) from exc
            return hasher.hexdigest(), done
        except BaseException:
            response.close()  # a half-read body must not go back to the pool
            raise
        finally:
            response.release_conn()


class _Restart(Exception):
    """The partial file cannot be resumed: the download starts over."""


class FileMissing(IndexError_):
    """A download answered 404 or 410: the server does not have the file."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Downloaded:
    """A file `Client.download` finished: its sha256 and size, the size of the partial
    file it started from (0: downloaded whole), and the URL it came from (credentials
    removed: a mirror's or a bundle's, not always the lock's)."""

    sha256: str
    size: int
    resumed_from: int
    url: str


def _resumed_at(response: urllib3.BaseHTTPResponse) -> int:
    """The first byte a 206 answer holds (`Content-Range: bytes N-M/T`); -1 when unreadable."""
    value = response.headers.get("Content-Range", "")
    first = value.removeprefix("bytes ").split("-", 1)[0].strip()
    return int(first) if first.isdigit() else -1


def _total_size(response: urllib3.BaseHTTPResponse, offset: int) -> int | None:
    if offset:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length", "")
    return offset + int(length) if length.isdigit() else None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_prefix(path: Path, size: int, feed: Callable[[bytes], object]) -> None:
    """Feed the first `size` bytes of `path` (what an earlier try wrote) to `feed`."""
    if not size:
        return
    with path.open("rb") as f:
        while size > 0 and (chunk := f.read(min(CHUNK, size))):
            feed(chunk)
            size -= len(chunk)


def _urllib3_error() -> type[Exception]:
    """urllib3's base exception (imported by then: a request was sent)."""
    from urllib3.exceptions import HTTPError

    return HTTPError


@dataclass(frozen=True, kw_only=True, slots=True)
class Failure:
    """What went wrong with one attempt, in words (credential-free), and whether another
    attempt may go better."""

    reason: str
    transient: bool


def failure(exc: BaseException, url: str, timeout: float | None = None) -> Failure:
    """Name a failed attempt at `url` for what it is: a host that does not resolve, a refused
    connection, a TLS failure, a timeout, a broken or non-HTTP answer. urllib3 wraps the cause
    (`MaxRetryError.reason`), and its class tree misleads: `NameResolutionError` and every
    `NewConnectionError` subclass `ConnectTimeoutError`, so classes are tested most specific
    first and refusal is told by the OS error under it."""
    from urllib3.exceptions import (
        ConnectTimeoutError,
        LocationParseError,
        MaxRetryError,
        NameResolutionError,
        NewConnectionError,
        ProtocolError,
        SSLError,
        TimeoutError,
    )

    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    host, port = _host_port(url)
    within = f" in {timeout:g} s" if timeout else ""
    if isinstance(exc, NameResolutionError):
        return Failure(reason=f"cannot resolve host {host}", transient=False)
    if isinstance(exc, SSLError):
        return Failure(
            reason=f"TLS failure with {host}:{port}: {_tls_reason(exc)}", transient=False
        )
    if isinstance(exc, NewConnectionError):
        if _caused_by(exc, ConnectionRefusedError) or "refused" in str(exc).lower():
            return Failure(reason=f"connection refused by {host}:{port}", transient=True)
        if isinstance(exc, ConnectTimeoutError) and "timed out" in str(exc).lower():
            return Failure(reason=f"timed out connecting to {host}:{port}{within}", transient=True)
        return Failure(reason=f"cannot connect to {host}:{port}", transient=True)
    if isinstance(exc, ConnectTimeoutError):
        return Failure(reason=f"timed out connecting to {host}:{port}{within}", transient=True)
    if isinstance(exc, TimeoutError):
        return Failure(reason=f"timed out: no answer from {host}:{port}{within}", transient=True)
    if isinstance(exc, ProtocolError):
        return _protocol_failure(exc, host, port)
    if isinstance(exc, LocationParseError):
        return Failure(reason="the URL cannot be parsed", transient=False)
    return Failure(reason=f"cannot connect to {host}:{port} ({type(exc).__name__})", transient=True)


def _protocol_failure(exc: ProtocolError, host: str, port: int | None) -> Failure:
    from http.client import BadStatusLine, RemoteDisconnected

    text = str(exc).lower().replace(" ", "")
    if "incompleteread" in text or "incomplete" in text:
        return Failure(reason="truncated body", transient=True)
    if _caused_by(exc, BadStatusLine) and not _caused_by(exc, RemoteDisconnected):
        return Failure(reason=f"{host}:{port} answered something that is not HTTP", transient=False)
    if _caused_by(exc, RemoteDisconnected):
        return Failure(
            reason=f"{host}:{port} closed the connection without answering", transient=True
        )
    if _caused_by(exc, ConnectionResetError):
        return Failure(reason=f"connection reset by {host}:{port}", transient=True)
    return Failure(reason=f"connection to {host}:{port} broken", transient=True)


def _tls_reason(exc: SSLError) -> str:
    import ssl

    cause = next((e for e in _causes(exc) if isinstance(e, ssl.SSLError)), None)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate verify failed ({cause.verify_message})"
    reason = getattr(cause, "reason", None) if cause is not None else None
    if reason == "WRONG_VERSION_NUMBER":
        return "the server does not speak TLS (is the URL http://?)"
    return str(reason or "handshake failed").lower().replace("_", " ")


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is f for f in found) or len(found) > 20:
            continue
        found.append(item)
        todo += [item.__cause__, item.__context__]
        todo += [a for a in getattr(item, "args", ()) if isinstance(a, BaseException)]
    return found


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    return any(isinstance(e, kind) for e in _causes(exc))


def _host_port(url: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit(url)
        return parts.hostname or "", parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return "", None


# -- file:// --------------------------------------------------------------------------------


class _Counted(io.RawIOBase):
    """A response body read as a file, its bytes counted in the client's stats."""

    def __init__(self, response: urllib3.BaseHTTPResponse, stats: HttpStats) -> None:
        self._response, self._stats = response, stats

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._response.read(len(buffer))
        self._stats.add(nbytes=len(data))
        buffer[: len(data)] = data
        return len(data)


def _local_path(url: str) -> Path:
    from urllib.request import url2pathname

    return Path(url2pathname(urlsplit(url).path))


def _file_get(url: str, range_spec: str | None) -> Response:
    path = _local_path(url)
    if path.is_dir():
        if not url.endswith("/"):
            url += "/"
        page = path / "index.html"
        body = page.read_bytes() if page.is_file() else _listing(path)
        return Response(url=url, status=200, headers={"content-type": "text/html"}, body=body)
    if not path.is_file():
        return Response(url=url, status=404, headers={}, body=b"")
    size = path.stat().st_size
    if range_spec is None:
        return Response(url=url, status=200, headers={}, body=path.read_bytes())
    start, end = _span(range_spec, size)
    with path.open("rb") as f:
        f.seek(start)
        body = f.read(end - start + 1)
    headers = {"content-range": f"bytes {start}-{end}/{size}"}
    return Response(url=url, status=206, headers=headers, body=body)


def _span(range_spec: str, size: int) -> tuple[int, int]:
    first, _, last = range_spec.removeprefix("bytes=").partition("-")
    if not first:
        return max(size - int(last), 0), size - 1
    return int(first), min(int(last), size - 1) if last else size - 1


def _listing(folder: Path) -> bytes:
    """An HTML page of links to a folder's entries (a find-links folder or a PEP 503 tree)."""
    import html  # only here: it and its entities cost ~3 ms to import, on every run

    links = []
    for entry in sorted(folder.iterdir()):
        name = entry.name + ("/" if entry.is_dir() else "")
        links.append(f'<a href="{html.escape(quote(name))}">{html.escape(name)}</a><br/>')
    return ("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n").encode()


def _file_download(url: str, path: Path, progress: Progress | None) -> Downloaded:
    source = _local_path(url)
    if not source.is_file():
        raise FileMissing(f"GET {redact(url)} failed: no such file")
    total = source.stat().st_size
    hasher, size = hashlib.sha256(), 0
    with source.open("rb") as f, path.open("wb") as out:
        while chunk := f.read(CHUNK):
            out.write(chunk)
            hasher.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress(size, total)
    return Downloaded(sha256=hasher.hexdigest(), size=size, resumed_from=0, url=redact(url))


def _file_stream(url: str, sink: BinaryIO | None) -> tuple[str, int]:
    path = _local_path(url)
    if not path.is_file():
        raise IndexError_(f"GET {redact(url)} failed: no such file")
    hasher, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
            size += len(chunk)
            if sink is not None:
                sink.write(chunk)
    return hasher.hexdigest(), size
