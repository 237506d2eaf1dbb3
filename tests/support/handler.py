"""The request handler of the test index: routing, content negotiation, auth, ETags, Range
requests, a bandwidth limit and injected faults. State and switches live on the `IndexServer`
it is bound to."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

if TYPE_CHECKING:
    from .index_server import IndexServer

JSON_TYPE = "application/vnd.pypi.simple.v1+json"

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def _parse_range(header: str, total: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single `bytes=` range, or None when unsatisfiable."""
    match = _RANGE.match(header.strip())
    if not match or not (match[1] or match[2]):
        return None
    if not match[1]:
        suffix = int(match[2])
        return (max(total - suffix, 0), total - 1) if suffix and total else None
    start = int(match[1])
    end = min(int(match[2]), total - 1) if match[2] else total - 1
    return (start, end) if start <= end else None


class Handler(BaseHTTPRequestHandler):
    index: IndexServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: avoid 40 ms stalls
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        self.index._record(self.command, path, dict(self.headers.items()))
        fault = self.index._take_fault(path)
        if fault in ("500", "404", "429"):
            self._send(int(fault), b"fault\n", path, {"Retry-After": "0"})
            return
        if fault == "timeout":
            time.sleep(self.index.fault_sleep)
            self.close_connection = True
            return
        if not self._authorized():
            self._send(401, b"unauthorized\n", path, {"WWW-Authenticate": 'Basic realm="test"'})
            return
        status, body, headers = self._route(path)
        if fault == "truncate":
            self._truncated(status, body, headers, path)
            return
        if fault == "cut":
            self._cut(status, body, headers, path)
            return
        self._send(status, body, path, headers)

    def _authorized(self) -> bool:
        if self.index.auth is None:
            return True
        expected = base64.b64encode(":".join(self.index.auth).encode()).decode()
        return self.headers.get("Authorization", "") == f"Basic {expected}"

    def _route(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        if path == "/simple":
            return 301, b"", {"Location": "/simple/"}
        if path == "/simple/":
            return self._page(None)
        if path.startswith("/simple/"):
            name = path[len("/simple/") :].rstrip("/")
            if "/" in name:
                return 404, b"not found\n", {}
            if name != canonicalize_name(name) or not path.endswith("/"):
                return 301, b"", {"Location": f"/simple/{canonicalize_name(name)}/"}
            return self._page(name)
        if path in ("/flat", "/flat/"):
            return 200, self.index.render_flat_html(), {"Content-Type": "text/html"}
        if path.startswith("/files/"):
            return self._file(path[len("/files/") :])
        return 404, b"not found\n", {}

    def _page(self, project: str | None) -> tuple[int, bytes, dict[str, str]]:
        idx = self.index
        if project is not None and not idx.project_entries(project):
            return 404, b"not found\n", {}
        wants_json = idx.json and JSON_TYPE in self.headers.get("Accept", "")
        if wants_json:
            body = idx.render_root_json() if project is None else idx.render_json(project)
        else:
            body = idx.render_root_html() if project is None else idx.render_html(project)
        headers = {"Content-Type": JSON_TYPE if wants_json else "text/html", "Vary": "Accept"}
        if idx.cache_control is not None:
            headers["Cache-Control"] = idx.cache_control
        if idx.etag:
            tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            headers["ETag"] = tag
            if tag in self.headers.get("If-None-Match", ""):
                return 304, b"", headers
        return 200, body, headers

    def _file(self, filename: str) -> tuple[int, bytes, dict[str, str]]:
        idx = self.index
        if filename.endswith(".metadata"):
            entry = idx.entries.get(filename[: -len(".metadata")])
            if entry is None or not idx._serves_metadata(entry) or entry.metadata is None:
                return 404, b"not found\n", {}
            return 200, entry.metadata, {"Content-Type": "binary/octet-stream"}
        entry = idx.entries.get(filename)
        if entry is None:
            return 404, b"not found\n", {}
        data = entry.path.read_bytes()
        headers = {"Content-Type": "binary/octet-stream"}
        wanted = self.headers.get("Range")
        if not idx.ranges or wanted is None:
            if idx.ranges:
                headers["Accept-Ranges"] = "bytes"
            return 200, data, headers
        span = _parse_range(wanted, len(data))
        if span is None:
            return 416, b"", {"Content-Range": f"bytes */{len(data)}"}
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return 206, data[start : end + 1], headers

    def _send(self, status: int, body: bytes, path: str, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status != 304:
            self._write(body, path)

    def _write(self, body: bytes, path: str) -> None:
        """The body, at most `rate` bytes a second for files when the server has a rate (a
        client that stops reading and hangs up gets no more). Bytes are counted before they
        are written: the client may look at once."""
        rate = self.index.rate
        if rate is None or not path.startswith("/files/"):
            self.index._count(path, len(body))
            self.wfile.write(body)
            return
        step = max(rate // 20, 1)
        for start in range(0, len(body), step):
            self.index._count(path, len(body[start : start + step]))
            try:
                self.wfile.write(body[start : start + step])
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
            time.sleep(step / rate)

    def _cut(self, status: int, body: bytes, headers: Mapping[str, str], path: str) -> None:
        """Announce the whole body, send its first `cut_bytes` (half by default), hang up."""
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.index.cut_bytes
        part = body[: len(body) // 2 if cut is None else min(cut, len(body))]
        self.index._count(path, len(part))
        self.wfile.write(part)
        self.wfile.flush()
        self.close_connection = True

    def _truncated(self, status: int, body: bytes, headers: Mapping[str, str], path: str) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) + 100))
        self.end_headers()
        part = body[: len(body) // 2]
        self.index._count(path, len(part))
        self.wfile.write(part)
        self.wfile.flush()
        self.close_connection = True
