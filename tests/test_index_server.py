"""The hermetic test index itself: real wheels, ranges, JSON vs HTML, auth, faults."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import urllib3

from support.index_server import JSON_TYPE, IndexServer
from support.wheels import build_sdist, build_wheel

HTTP = urllib3.PoolManager(retries=False)


def get(url: str, **headers: str) -> urllib3.BaseHTTPResponse:
    return HTTP.request("GET", url, headers=headers, redirect=False, timeout=5)


def _read_until_cut(response: urllib3.BaseHTTPResponse) -> tuple[bytes, bool]:
    """The body read in chunks, and whether the connection broke before its end."""
    body = io.BytesIO()
    try:
        for chunk in response.stream(256):
            body.write(chunk)
    except urllib3.exceptions.HTTPError:
        return body.getvalue(), True
    return body.getvalue(), False


def test_wheel_is_a_valid_zip_with_record(tmp_path: Path) -> None:
    path = build_wheel(
        tmp_path,
        "My.Pkg",
        "2.4.0+cu121",
        tag="cp311-cp311-linux_x86_64",
        requires_dist=["numpy<2", 'extra-dep; extra == "x"'],
        provides_extra=["x"],
    )
    assert path.name == "my_pkg-2.4.0+cu121-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        record = zf.read("my_pkg-2.4.0+cu121.dist-info/RECORD").decode().splitlines()
        for line in record:
            member, digest, size = line.rsplit(",", 2)
            if member.endswith("RECORD"):
                continue
            data = zf.read(member)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode() and int(size) == len(data)
        metadata = zf.read("my_pkg-2.4.0+cu121.dist-info/METADATA").decode()
    assert "Requires-Dist: numpy<2" in metadata and "Provides-Extra: x" in metadata
    assert (
        build_wheel(
            tmp_path / "again",
            "My.Pkg",
            "2.4.0+cu121",
            tag="cp311-cp311-linux_x86_64",
            requires_dist=["numpy<2", 'extra-dep; extra == "x"'],
            provides_extra=["x"],
        ).read_bytes()
        == path.read_bytes()
    )


def test_sdist_has_pkg_info(tmp_path: Path) -> None:
    path = build_sdist(tmp_path, "Foo_Bar", "1.0", requires_dist=["a>1"], dynamic=["Version"])
    assert path.name == "foo_bar-1.0.tar.gz"
    with tarfile.open(path) as tf:
        pkg_info = tf.extractfile("foo_bar-1.0/PKG-INFO").read().decode()  # type: ignore[union-attr]
        assert "foo_bar-1.0/pyproject.toml" in tf.getnames()
    assert "Metadata-Version: 2.2" in pkg_info and "Dynamic: Version" in pkg_info


def test_html_and_json_pages(index_server: IndexServer) -> None:
    index_server.add_wheel("Foo.Bar", "1.0+cu121", requires_python=">=3.8", yanked="bad")
    index_server.add_sdist("foo-bar", "0.9")
    html = get(index_server.url + "foo-bar/").data.decode()
    assert (
        'href="http://127.0.0.1:' in html and "foo_bar-1.0%2Bcu121-py3-none-any.whl#sha256=" in html
    )
    assert 'data-requires-python="&gt;=3.8"' in html and 'data-yanked="bad"' in html
    assert 'data-core-metadata="sha256=' in html and 'data-dist-info-metadata="sha256=' in html
    page = json.loads(get(index_server.url + "foo-bar/", Accept=JSON_TYPE).data)
    files = {f["filename"]: f for f in page["files"]}
    wheel = files["foo_bar-1.0+cu121-py3-none-any.whl"]
    assert wheel["yanked"] == "bad" and wheel["requires-python"] == ">=3.8"
    assert set(wheel["core-metadata"]) == {"sha256"}
    assert files["foo_bar-0.9.tar.gz"]["yanked"] is False
    assert get(index_server.url + "Foo.Bar/").status == 301
    assert get(index_server.url + "nope/").status == 404
    index_server.json = False
    assert get(index_server.url + "foo-bar/", Accept=JSON_TYPE).data.startswith(b"<!DOCTYPE")
    index_server.root_relative, index_server.hashes = True, False
    html = get(index_server.url + "foo-bar/").data.decode()
    assert 'href="/files/foo_bar-1.0%2Bcu121-py3-none-any.whl"' in html


def test_ranges_and_metadata_sidecar(index_server: IndexServer) -> None:
    path = index_server.add_wheel("big", "1.0", pad_bytes=100_000)
    data = path.read_bytes()
    url = index_server.file_url(path.name)
    tail = get(url, Range="bytes=-1000")
    assert tail.status == 206 and tail.data == data[-1000:]
    assert tail.headers["Content-Range"] == f"bytes {len(data) - 1000}-{len(data) - 1}/{len(data)}"
    assert get(url, Range="bytes=10-19").data == data[10:20]
    meta = get(url + ".metadata")
    assert meta.status == 200 and meta.data.startswith(b"Metadata-Version: 2.3")
    index_server.ranges = False
    whole = get(url, Range="bytes=-1000")
    assert whole.status == 200 and whole.data == data
    assert index_server.file_bytes_sent(path.name) == 1000 + 10 + len(data)
    index_server.metadata = False
    assert get(url + ".metadata").status == 404


def test_auth_etag_and_faults(index_server: IndexServer) -> None:
    index_server.add_wheel("foo", "1.0")
    index_server.auth = ("user", "s3cret")
    assert get(index_server.url + "foo/").status == 401
    token = base64.b64encode(b"user:s3cret").decode()
    ok = get(index_server.url + "foo/", Authorization=f"Basic {token}")
    assert ok.status == 200
    etag = ok.headers["ETag"]
    again = get(
        index_server.url + "foo/", Authorization=f"Basic {token}", **{"If-None-Match": etag}
    )
    assert again.status == 304
    index_server.fail("/foo/", "500", times=2)
    assert [get(index_server.url + "foo/").status for _ in range(3)] == [500, 500, 401]
    assert [m for m, _, _ in index_server.requests].count("GET") == 6
    index_server.reset_counters()
    assert index_server.requests == [] and index_server.bytes_sent == {}


def test_flat_listing(index_server: IndexServer) -> None:
    index_server.add_wheel("foo", "1.0")
    index_server.add_sdist("bar", "2.0")
    assert sorted(p.name for p in index_server.flat_dir.iterdir()) == [
        "bar-2.0.tar.gz",
        "foo-1.0-py3-none-any.whl",
    ]
    page = get(index_server.flat_url).data.decode()
    assert "bar-2.0.tar.gz" in page and "foo-1.0-py3-none-any.whl" in page


def test_truncate_fault(index_server: IndexServer) -> None:
    path = index_server.add_wheel("foo", "1.0")
    index_server.fail(path.name, "truncate")
    response = HTTP.request("GET", index_server.file_url(path.name), preload_content=False)
    assert _read_until_cut(response)[1]


def test_cut_fault_sends_the_first_bytes_then_hangs_up(index_server: IndexServer) -> None:
    path = index_server.add_wheel("foo", "1.0", pad_bytes=5000)
    data = path.read_bytes()
    index_server.cut_bytes = 1000
    index_server.fail(path.name, "cut")
    response = HTTP.request("GET", index_server.file_url(path.name), preload_content=False)
    assert response.headers["Content-Length"] == str(len(data))
    body, cut = _read_until_cut(response)
    assert cut and data[:1000].startswith(body)
    assert index_server.file_bytes_sent(path.name) == 1000
    rest = get(index_server.file_url(path.name), Range="bytes=1000-")
    assert (rest.status, rest.data) == (206, data[1000:])


def test_rate_limits_file_bodies(index_server: IndexServer) -> None:
    import time

    path = index_server.add_wheel("foo", "1.0", pad_bytes=50_000)
    index_server.rate = 100_000
    start = time.monotonic()
    assert get(index_server.file_url(path.name)).data == path.read_bytes()
    assert time.monotonic() - start >= 0.4  # ~50 kB at 100 kB/s, sleeping between slices
