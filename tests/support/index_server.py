"""A hermetic package index on 127.0.0.1 for tests: PEP 503 HTML and PEP 691 JSON pages, files
with HTTP Range support, PEP 658/714 `.metadata` sidecars, basic auth, ETag/304, a bandwidth
limit for files, and faults (500, 404, timeouts, truncated bodies, connections cut after some
bytes of the body) injected per path. Every switch is an attribute that may be flipped at any
time; counters record what was asked and what was sent.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import sys
import tempfile
import threading
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from .handler import JSON_TYPE, Handler
from .wheels import build_sdist, build_wheel

__all__ = ["JSON_TYPE", "Entry", "IndexServer"]

FAULT_KINDS = ("500", "404", "429", "timeout", "truncate", "cut")


@dataclass
class Entry:
    """One file the index serves."""

    project: str
    filename: str
    path: Path
    sha256: str
    size: int
    yanked: str | None = None
    requires_python: str | None = None
    upload_time: str | None = None
    metadata: bytes | None = None  # the wheel's METADATA, served as the `.metadata` sidecar
    serve_metadata: bool | None = None  # per-file override of the server's `metadata` switch
    list_hash: bool | None = None  # per-file override of the server's `hashes` switch
    advertised_sha256: str | None = None  # a different (wrong) hash to advertise, for faults


@dataclass
class _Fault:
    pattern: str
    kind: str
    remaining: int


class _Server(ThreadingHTTPServer):
    """A client hanging up (uv does, after a 404) is not worth a traceback on stderr: it would
    land in the output of the command under test."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class IndexServer:
    """A PEP 503/691 index in a daemon thread. Use as a context manager (or start()/stop())."""

    handler_class: type[Handler] = Handler  # a subclass may route another URL layout

    def __init__(self, root: Path | None = None) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="envspec-index-")) if root is None else root
        self.files_dir = self.root / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, Entry] = {}
        # switches
        self.json = True
        self.metadata = True
        self.ranges = True
        self.hashes = True
        self.root_relative = False
        self.auth: tuple[str, str] | None = None
        self.etag = True
        self.cache_control: str | None = None
        self.fault_sleep = 1.5  # seconds a "timeout" fault stalls: longer than tests' timeouts
        self.cut_bytes: int | None = None  # body bytes a "cut" fault sends (None: half)
        self.rate: int | None = None  # bytes per second for file bodies (None: no limit)
        # counters
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.bytes_sent: dict[str, int] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> IndexServer:
        handler = type("BoundHandler", (self.handler_class,), {"index": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> IndexServer:
        return self.start() if self._httpd is None else self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------
    @property
    def base(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        """The simple index root, e.g. http://127.0.0.1:PORT/simple/"""
        return f"{self.base}/simple/"

    @property
    def flat_url(self) -> str:
        """A find-links HTML page linking every file."""
        return f"{self.base}/flat/"

    @property
    def flat_dir(self) -> Path:
        """A find-links folder holding every file."""
        return self.files_dir

    def url_with_auth(self, user: str, password: str) -> str:
        return self.url.replace("http://", f"http://{quote(user)}:{quote(password)}@", 1)

    def file_url(self, filename: str) -> str:
        return f"{self.base}/files/{quote(filename)}"

    # -- content ---------------------------------------------------------------------------
    def add(
        self,
        path: Path,
        *,
        name: str | None = None,
        yanked: str | None = None,
        requires_python: str | None = None,
        upload_time: datetime | str | None = None,
        metadata: bool | None = None,
        advertised_sha256: str | None = None,
        list_hash: bool | None = None,
    ) -> Entry:
        """Register a built wheel or sdist (copied into the served folder)."""
        path = Path(path)
        if path.parent.resolve() != self.files_dir.resolve():
            path = Path(shutil.copy2(path, self.files_dir / path.name))
        data = path.read_bytes()
        if isinstance(upload_time, datetime):
            upload_time = upload_time.isoformat().replace("+00:00", "Z")
        entry = Entry(
            project=canonicalize_name(name or _project_of(path.name)),
            filename=path.name,
            path=path,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            yanked=yanked,
            requires_python=requires_python,
            upload_time=upload_time,
            metadata=_wheel_metadata(path) if path.name.endswith(".whl") else None,
            serve_metadata=metadata,
            advertised_sha256=advertised_sha256,
            list_hash=list_hash,
        )
        with self._lock:
            self.entries[entry.filename] = entry
        return entry

    def add_wheel(self, name: str, version: str, **kwargs: Any) -> Path:
        """Build a wheel (build_wheel kwargs; plus add() kwargs) and register it."""
        add_kw = _pop_add_kwargs(kwargs)
        path = build_wheel(self.files_dir, name, version, **kwargs)
        self.add(path, **add_kw)
        return path

    def add_sdist(self, name: str, version: str, **kwargs: Any) -> Path:
        """Build an sdist (build_sdist kwargs; plus add() kwargs) and register it."""
        add_kw = _pop_add_kwargs(kwargs)
        path = build_sdist(self.files_dir, name, version, **kwargs)
        self.add(path, **add_kw)
        return path

    def entry(self, filename: str) -> Entry:
        return self.entries[filename]

    # -- faults and counters ---------------------------------------------------------------
    def fail(self, path_or_suffix: str, kind: str, times: int = 1) -> None:
        """Make the next `times` requests whose path equals or ends with `path_or_suffix` fail."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {FAULT_KINDS}")
        with self._lock:
            self._faults.append(_Fault(path_or_suffix, kind, times))

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.bytes_sent.clear()

    def file_bytes_sent(self, filename: str) -> int:
        """Body bytes sent for the distribution file itself (not its `.metadata`)."""
        return self.bytes_sent.get(f"/files/{filename}", 0)

    def paths_requested(self, method: str = "GET") -> list[str]:
        return [path for m, path, _ in self.requests if m == method]

    def _take_fault(self, path: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and (path == fault.pattern or path.endswith(fault.pattern)):
                    fault.remaining -= 1
                    return fault.kind
        return None

    def _record(self, method: str, path: str, headers: Mapping[str, str]) -> None:
        with self._lock:
            self.requests.append((method, path, dict(headers)))

    def _count(self, path: str, n: int) -> None:
        with self._lock:
            self.bytes_sent[path] = self.bytes_sent.get(path, 0) + n

    # -- rendering -------------------------------------------------------------------------
    def projects(self) -> list[str]:
        return sorted({e.project for e in self.entries.values()})

    def project_entries(self, project: str) -> list[Entry]:
        return sorted(
            (e for e in self.entries.values() if e.project == project), key=lambda e: e.filename
        )

    def _href(self, filename: str) -> str:
        return f"/files/{quote(filename)}" if self.root_relative else self.file_url(filename)

    def _lists_hash(self, entry: Entry) -> bool:
        return self.hashes if entry.list_hash is None else entry.list_hash

    def _serves_metadata(self, entry: Entry) -> bool:
        wanted = self.metadata if entry.serve_metadata is None else entry.serve_metadata
        return wanted and entry.metadata is not None

    def render_html(self, project: str) -> bytes:
        links = [self._html_link(entry) for entry in self.project_entries(project)]
        return _html_page(f"Links for {project}", links)

    def render_flat_html(self) -> bytes:
        links = [self._html_link(e) for e in sorted(self.entries.values(), key=_by_filename)]
        return _html_page("Find links", links)

    def _html_link(self, entry: Entry) -> str:
        href = self._href(entry.filename)
        if self._lists_hash(entry):
            href += f"#sha256={entry.advertised_sha256 or entry.sha256}"
        attrs = [f'href="{html.escape(href)}"']
        if entry.requires_python is not None:
            attrs.append(f'data-requires-python="{html.escape(entry.requires_python)}"')
        if entry.yanked is not None:
            attrs.append(f'data-yanked="{html.escape(entry.yanked)}"')
        if self._serves_metadata(entry):
            assert entry.metadata is not None
            value = f"sha256={hashlib.sha256(entry.metadata).hexdigest()}"
            attrs += [f'data-dist-info-metadata="{value}"', f'data-core-metadata="{value}"']
        return f"<a {' '.join(attrs)}>{html.escape(entry.filename)}</a><br/>"

    def render_root_html(self) -> bytes:
        links = [f'<a href="/simple/{p}/">{p}</a><br/>' for p in self.projects()]
        return _html_page("Simple index", links)

    def render_json(self, project: str) -> bytes:
        files = [self._json_file(entry) for entry in self.project_entries(project)]
        body = {"meta": {"api-version": "1.1"}, "name": project, "files": files}
        return json.dumps(body, indent=1).encode()

    def render_root_json(self) -> bytes:
        body = {"meta": {"api-version": "1.1"}, "projects": [{"name": p} for p in self.projects()]}
        return json.dumps(body).encode()

    def _json_file(self, entry: Entry) -> dict[str, Any]:
        hashed = self._lists_hash(entry)
        hashes = {"sha256": entry.advertised_sha256 or entry.sha256} if hashed else {}
        out: dict[str, Any] = {
            "filename": entry.filename,
            "url": self._href(entry.filename),
            "hashes": hashes,
            "size": entry.size,
        }
        if entry.requires_python is not None:
            out["requires-python"] = entry.requires_python
        out["yanked"] = (entry.yanked or True) if entry.yanked is not None else False
        if entry.upload_time is not None:
            out["upload-time"] = entry.upload_time
        if self._serves_metadata(entry):
            assert entry.metadata is not None
            value = {"sha256": hashlib.sha256(entry.metadata).hexdigest()}
            out["core-metadata"] = value
            out["dist-info-metadata"] = value
        return out


def _by_filename(entry: Entry) -> str:
    return entry.filename


def _pop_add_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    keys = ("yanked", "upload_time", "metadata", "advertised_sha256", "list_hash")
    add_kw = {k: kwargs.pop(k) for k in keys if k in kwargs}
    if "requires_python" in kwargs:  # both METADATA's and the index's, as real indexes do
        add_kw["requires_python"] = kwargs["requires_python"]
    if "index_requires_python" in kwargs:
        add_kw["requires_python"] = kwargs.pop("index_requires_python")
    return add_kw


def _project_of(filename: str) -> str:
    if filename.endswith(".whl"):
        return parse_wheel_filename(filename)[0]
    return parse_sdist_filename(filename)[0]


def _wheel_metadata(path: Path) -> bytes | None:
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if re.fullmatch(r"[^/]+\.dist-info/METADATA", name):
                return zf.read(name)
    return None


def _html_page(title: str, links: list[str]) -> bytes:
    return (
        "<!DOCTYPE html>\n<html><head>"
        '<meta name="pypi:repository-version" content="1.1">'
        f"<title>{html.escape(title)}</title></head>\n<body><h1>{html.escape(title)}</h1>\n"
        + "\n".join(links)
        + "\n</body></html>\n"
    ).encode()
