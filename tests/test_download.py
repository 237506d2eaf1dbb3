"""Resumable downloads (`Client.download`) against the test index's faults, and `LockedFiles`
taking a locked file from the index's mirror first."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from envspec.errors import IndexError_
from envspec.index.auth import Credentials
from envspec.index.download import LockedFiles
from envspec.index.http import Client, FileMissing
from envspec.model import Index
from support.index_server import IndexServer


def _client() -> Client:
    return Client(Credentials([], {}), backoff=0.0)


def _ranges(server: IndexServer, filename: str) -> list[str | None]:
    return [h.get("Range") for _, p, h in server.requests if p == f"/files/{filename}"]


@pytest.fixture
def wheel(index_server: IndexServer) -> tuple[str, bytes]:
    path = index_server.add_wheel("big", "1.0", pad_bytes=300_000)
    return path.name, path.read_bytes()


def test_a_cut_connection_resumes_where_it_stopped(
    index_server: IndexServer, wheel: tuple[str, bytes], tmp_path: Path
) -> None:
    name, data = wheel
    index_server.cut_bytes = 100_000
    index_server.fail(name, "cut", times=2)
    seen: list[tuple[int, int | None]] = []
    got = _client().download(
        index_server.file_url(name), tmp_path / "part", lambda n, t: seen.append((n, t))
    )
    assert (got.sha256, got.size, got.resumed_from) == (
        hashlib.sha256(data).hexdigest(), len(data), 0
    )
    assert (tmp_path / "part").read_bytes() == data
    assert _ranges(index_server, name) == [None, "bytes=100000-", "bytes=200000-"]
    assert index_server.file_bytes_sent(name) == len(data)  # not a byte sent twice
    assert seen[-1] == (len(data), len(data))
    assert [n for n, _ in seen] == sorted(n for n, _ in seen)


def test_a_partial_file_left_by_an_earlier_run_is_resumed(
    index_server: IndexServer, wheel: tuple[str, bytes], tmp_path: Path
) -> None:
    name, data = wheel
    (tmp_path / "part").write_bytes(data[:70_000])
    got = _client().download(index_server.file_url(name), tmp_path / "part")
    assert (got.sha256, got.resumed_from) == (hashlib.sha256(data).hexdigest(), 70_000)
    assert _ranges(index_server, name) == ["bytes=70000-"]
    assert index_server.file_bytes_sent(name) == len(data) - 70_000


def test_a_server_that_ignores_range_gets_asked_for_the_whole_file(
    index_server: IndexServer, wheel: tuple[str, bytes], tmp_path: Path
) -> None:
    name, data = wheel
    index_server.ranges = False
    (tmp_path / "part").write_bytes(b"x" * 70_000)
    got = _client().download(index_server.file_url(name), tmp_path / "part")
    assert (got.sha256, got.resumed_from) == (hashlib.sha256(data).hexdigest(), 0)
    assert (tmp_path / "part").read_bytes() == data
    assert _ranges(index_server, name) == ["bytes=70000-", None]


def test_a_server_that_ignores_range_and_cuts_every_answer_gives_up(
    index_server: IndexServer, wheel: tuple[str, bytes], tmp_path: Path
) -> None:
    """Each try restarted from byte 0 and got as far as the last, which counted as progress:
    `python -m http.server` behind a flaky link was asked again forever (thousands of GETs)."""
    name, _ = wheel
    index_server.ranges = False
    index_server.cut_bytes = 100_000
    index_server.fail(name, "cut", times=40)
    url = index_server.file_url(name)
    with pytest.raises(IndexError_) as err:
        _client().download(url, tmp_path / "part")
    assert str(err.value).startswith(f"GET {url} failed: ")
    assert str(err.value).endswith(" after 3 attempts in a row")
    assert len(_ranges(index_server, name)) == 7  # the first, then 3 × (a resume, all again)


def test_a_partial_file_longer_than_the_file_starts_over(
    index_server: IndexServer, wheel: tuple[str, bytes], tmp_path: Path
) -> None:
    name, data = wheel
    (tmp_path / "part").write_bytes(data + b"more")
    got = _client().download(index_server.file_url(name), tmp_path / "part")
    assert (tmp_path / "part").read_bytes() == data and got.resumed_from == 0
    assert _ranges(index_server, name) == [f"bytes={len(data) + 4}-", None]  # 416, then all


def test_tries_that_move_no_byte_give_up_with_one_line(
    index_server: IndexServer, wheel: tuple[str, bytes], tmp_path: Path
) -> None:
    name, _ = wheel
    index_server.fail(name, "500", times=3)
    url = index_server.file_url(name)
    with pytest.raises(IndexError_) as err:
        _client().download(url, tmp_path / "part")
    assert str(err.value) == f"GET {url} failed: HTTP 500 after 3 attempts in a row"
    index_server.fail(name, "404")
    with pytest.raises(FileMissing) as missing:
        _client().download(url, tmp_path / "part")
    assert str(missing.value) == f"GET {url} failed: HTTP 404"


def test_a_file_url_is_copied(wheel: tuple[str, bytes], tmp_path: Path) -> None:
    _, data = wheel
    source = tmp_path / "source.whl"
    source.write_bytes(data)
    got = _client().download(source.as_uri(), tmp_path / "part")
    assert (got.sha256, got.size) == (hashlib.sha256(data).hexdigest(), len(data))
    with pytest.raises(FileMissing):
        _client().download((tmp_path / "absent.whl").as_uri(), tmp_path / "part")


def test_a_locked_file_comes_from_the_mirror_and_the_canonical_index_is_not_asked(
    index_server: IndexServer, wheel: tuple[str, bytes], tmp_path: Path
) -> None:
    name, data = wheel
    with IndexServer(tmp_path / "mirror") as mirror:
        mirror.add(index_server.entry(name).path)
        index = Index(name="local", url=index_server.url)
        environ = {"ENVSPEC_INDEX_LOCAL_MIRROR": mirror.url, "HOME": str(tmp_path)}
        files = LockedFiles([index], environ, backoff=0.0)
        # the canonical index serves its files under /files/, as the mirror does: rule 2
        got = files.download(index_server.file_url(name), index_server.url, tmp_path / "part")
        files.close()
        assert got.sha256 == hashlib.sha256(data).hexdigest()
        assert mirror.file_bytes_sent(name) == len(data)
    assert index_server.requests == []


def test_a_file_the_mirror_lacks_is_taken_where_the_lock_says(
    index_server: IndexServer, wheel: tuple[str, bytes], tmp_path: Path
) -> None:
    name, data = wheel
    with IndexServer(tmp_path / "mirror") as mirror:  # pages only: it links files elsewhere
        environ = {"ENVSPEC_INDEX_LOCAL_MIRROR": mirror.url, "HOME": str(tmp_path)}
        files = LockedFiles([Index(name="local", url=index_server.url)], environ, backoff=0.0)
        got = files.download(index_server.file_url(name), index_server.url, tmp_path / "part")
        files.close()
        assert mirror.paths_requested() == [f"/files/{name}"]
    assert got.size == len(data) and index_server.file_bytes_sent(name) == len(data)
