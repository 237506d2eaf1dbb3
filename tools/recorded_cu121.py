"""Serve what is recorded about the PyTorch cu121 index as a local mirror of it, and run a
command (normally `envspec lock`) with `ENVSPEC_INDEX_PYTORCH_CU121_MIRROR` pointing there.

download.pytorch.org cannot be reached from the machines that made locks/. What is known about
its cu121 index is recorded in `../shared/fixtures/pytorch-cu121/` (see its README):
- `pytorch_index_cu121_hashes.json`: cu121 file names and their sha256, as public third-party
  lockfiles recorded them (each entry says where). Entries without a sha256, and the one marked
  low-confidence, are left out: a file whose hash is not known is not offered at all;
- `metadata/`: the core metadata of the same releases' wheels on PyPI. PyPI's torch 2.4.x Linux
  wheels are the cu121 builds; for Windows, PyPI's wheel of the same release gives the
  requirement list (its CUDA requirements are Linux-only markers either way). Each is served as
  the cu121 file's PEP 658 `.metadata`, its `Version:` given the file's `+cu121` label.
The file bodies are not recorded, so the mirror serves none (404): envspec takes the hash from
the page and leaves the size out (PEP 751 makes it optional) rather than invent one.

    python tools/recorded_cu121.py envspec lock [ARGS...]

The lock records the canonical https://download.pytorch.org/whl/cu121 URLs (see
`envspec.index.mirror`); run `envspec lock` without this tool on a machine that reaches the
real index to check or complete them.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from packaging.utils import canonicalize_name, parse_wheel_filename

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO.parent / "shared" / "fixtures" / "pytorch-cu121"
PREFIX = "/whl/cu121/"
VARIABLE = "ENVSPEC_INDEX_PYTORCH_CU121_MIRROR"
# The cu121 file's platform → the platform of PyPI's wheel of the same release
PYPI_PLATFORM = {"linux_x86_64": "manylinux1_x86_64"}


def recorded_files(recorded: Path = RECORDED) -> dict[str, str]:
    """cu121 filename → sha256, for every entry with a known, not low-confidence hash."""
    data = json.loads((recorded / "pytorch_index_cu121_hashes.json").read_text("utf-8"))
    files: dict[str, str] = {}
    for group, entries in data.items():
        if group.startswith("_"):
            continue
        for filename, entry in entries.items():
            if entry.get("sha256") and entry.get("confidence") != "low":
                files[filename] = entry["sha256"]
    return files


def metadata_for(filename: str, recorded: Path = RECORDED) -> bytes | None:
    """The recorded METADATA of `filename`'s release and platform, its Version set to the
    file's (with its local label); None when none is recorded."""
    name, version, _build, _tags = parse_wheel_filename(filename)
    python, abi, platform = filename[: -len(".whl")].split("-")[-3:]
    plat = PYPI_PLATFORM.get(platform, platform)
    stem = f"{str(name).replace('-', '_')}-{version.public}-{python}-{abi}-{plat}"
    path = recorded / "metadata" / f"{stem}.whl.metadata"
    if not path.is_file():
        return None
    data = path.read_bytes()
    return re.sub(rb"(?m)^Version: .*$", f"Version: {version}".encode(), data, count=1)


class Recorded:
    """The mirror's content: pages and `.metadata` files, built once."""

    def __init__(self, recorded: Path = RECORDED) -> None:
        self.pages: dict[str, list[str]] = {}
        self.metadata: dict[str, bytes] = {}
        for filename, sha256 in sorted(recorded_files(recorded).items()):
            project = canonicalize_name(parse_wheel_filename(filename)[0])
            attrs = f'href="{PREFIX}{quote(filename)}#sha256={sha256}"'
            data = metadata_for(filename, recorded)
            if data is not None:
                self.metadata[filename] = data
                digest = hashlib.sha256(data).hexdigest()
                attrs += f' data-dist-info-metadata="sha256={digest}"'
                attrs += f' data-core-metadata="sha256={digest}"'
            self.pages.setdefault(project, []).append(f"<a {attrs}>{html.escape(filename)}</a>")

    def answer(self, path: str) -> tuple[int, bytes]:
        rest = path.removeprefix(PREFIX) if path.startswith(PREFIX) else None
        if rest is None:
            return 404, b""
        if rest.endswith("/") and rest[:-1] in self.pages:
            links = "<br/>\n".join(self.pages[rest[:-1]])
            return 200, f"<!DOCTYPE html>\n<html><body>\n{links}\n</body></html>\n".encode()
        if rest.endswith(".metadata") and rest[: -len(".metadata")] in self.metadata:
            return 200, self.metadata[rest[: -len(".metadata")]]
        return 404, b""  # the wheels themselves are not recorded


def _handler(content: Recorded) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            status, body = content.answer(unquote(urlsplit(self.path).path))
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        do_HEAD = do_GET

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Recorded()))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}{PREFIX}"
    print(f"recorded cu121 data served at {url}", file=sys.stderr)
    try:
        return subprocess.call(command, env={**os.environ, VARIABLE: url})
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    raise SystemExit(main())
