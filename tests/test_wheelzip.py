"""The METADATA member of a wheel read from its central directory (index/wheelzip.py): the
same bytes `zipfile` reads, for every layout a wheel can have; damaged zips refused with the
reason; over HTTP, a directory larger than the fetched tail costs one request more, and that
request brings the METADATA member with it."""

from __future__ import annotations

import io
import random
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from envspec.errors import UnreadableMetadata
from envspec.index import FinderSettings, open_finder
from envspec.index.metadata import _read_metadata
from envspec.model import Artifact, Index
from support.index_server import IndexServer

NAME = "foo-1.0.dist-info/METADATA"
ARTIFACT = Artifact(
    filename="foo-1.0-py3-none-any.whl", url="http://x/foo-1.0-py3-none-any.whl", kind="wheel"
)


def make_zip(
    entries: int = 3,
    *,
    method: int = zipfile.ZIP_DEFLATED,
    comment: bytes = b"",
    prefix: bytes = b"",
    force_zip64: bool = False,
    names: tuple[str, ...] = (NAME,),
) -> bytes:
    rnd = random.Random(entries)
    out = io.BytesIO()
    out.write(prefix)
    with zipfile.ZipFile(out, "w", compression=method) as zf:
        zf.comment = comment
        for i in range(entries):
            zf.writestr(f"foo/m{i}.py", rnd.randbytes(rnd.randint(0, 200)))
        for name in names:
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            with zf.open(info, "w", force_zip64=force_zip64) as member:
                member.write(f"Metadata-Version: 2.1\nName: {name.split('-')[0]}\n".encode())
                member.write(b"Version: 1.0\nRequires-Dist: bar\n" * 20)
        zf.writestr("foo-1.0.dist-info/RECORD", "")
    return out.getvalue()


def read(data: bytes, artifact: Artifact = ARTIFACT) -> bytes:
    return _read_metadata(lambda start, end: data[start:end], len(data), data[-65536:], artifact)


def zipfile_read(data: bytes, name: str = NAME) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.read(name)


@pytest.mark.parametrize(
    "layout",
    [
        {},
        {"entries": 0},
        {"entries": 2000},
        {"method": zipfile.ZIP_STORED},
        {"comment": b"made by a tool\n" * 40},
        {"prefix": b"#!/usr/bin/env python\n" * 50},  # bytes before the archive
        {"force_zip64": True},  # zip64 sizes in the member's headers
    ],
)
def test_the_member_is_what_zipfile_reads(layout: dict[str, Any]) -> None:
    data = make_zip(**layout)
    assert read(data) == zipfile_read(data)


def test_a_zip64_end_record_is_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    # zipfile writes the zip64 end record past 65,535 entries: lower the bar, not build them
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 10)
    data = make_zip(entries=20, prefix=b"#!/usr/bin/env python\n")
    assert b"PK\x06\x06" in data[-200:]
    assert read(data) == zipfile_read(data)


def test_the_wheels_own_dist_info_is_chosen_among_several() -> None:
    data = make_zip(names=("bar-2.0.dist-info/METADATA", NAME))
    assert read(data) == zipfile_read(data)
    with pytest.raises(UnreadableMetadata) as err:
        read(make_zip(names=("bar-2.0.dist-info/METADATA", "baz-1.0.dist-info/METADATA")))
    assert err.value.message == f"{ARTIFACT.url}: wheel has no single .dist-info/METADATA"


def _damaged(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


def _directory_entry(data: bytes) -> int:
    """Where the METADATA member's central directory entry starts."""
    return data.index(NAME.encode(), data.index(b"PK\x01\x02")) - 46


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: d[:-30], "File is not a zip file"),
        (lambda d: b"not a zip", "File is not a zip file"),
        (
            lambda d: _damaged(d, _directory_entry(d), b"XX"),
            "bad central directory entry",
        ),
        (
            lambda d: _damaged(d, d.index(b"Requires-Dist: bar") + 3, b"X"),
            "bad CRC-32 for foo-1.0.dist-info/METADATA",
        ),
    ],
)
def test_a_damaged_zip_is_refused_with_the_reason(damage: Any, reason: str) -> None:
    data = damage(make_zip(method=zipfile.ZIP_STORED, entries=30))
    with pytest.raises(UnreadableMetadata) as err:
        read(data)
    assert err.value.message == f"{ARTIFACT.url}: not a readable wheel ({reason})"


def test_unsupported_compression_and_encryption_are_refused() -> None:
    data = make_zip(method=zipfile.ZIP_BZIP2)
    with pytest.raises(UnreadableMetadata) as err:
        read(data)
    assert err.value.message.endswith(f"({NAME}: compression method 12 is not supported)")
    entry = _directory_entry(data)
    flags = struct.unpack_from("<H", data, entry + 8)[0] | 0x1
    with pytest.raises(UnreadableMetadata) as err:
        read(_damaged(data, entry + 8, struct.pack("<H", flags)))
    assert err.value.message.endswith(f"({NAME} is encrypted)")


def test_metadata_names_outside_an_entrys_name_are_not_members() -> None:
    # the name inside a nested path, a member's comment and another member's extra field
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("foo/vendored/bar-1.0.dist-info/METADATA", b"Name: bar\n")
        info = zipfile.ZipInfo("foo/a.py")
        info.comment = b"copied from x-1.0.dist-info/METADATA"
        info.extra = struct.pack("<2H", 0xCAFE, len(NAME)) + NAME.encode()
        zf.writestr(info, b"a = 1\n")
        zf.writestr(NAME, b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n")
    data = out.getvalue()
    assert read(data) == zipfile_read(data)


def _hand_made_zip(local_extra: bytes) -> bytes:
    """One stored METADATA member whose local header carries `local_extra` while its
    directory entry has none (zipfile always writes both alike)."""
    body = b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n"
    name, crc = NAME.encode(), zipfile.crc32(body)
    local = struct.pack(
        "<4s2B4HL2L2H",
        b"PK\x03\x04",
        20,
        0,
        0,
        0,
        0,
        0,
        crc,
        len(body),
        len(body),
        len(name),
        len(local_extra),
    )
    entry = struct.pack(
        "<4s4B4HL2L5H2L",
        b"PK\x01\x02",
        20,
        0,
        20,
        0,
        0,
        0,
        0,
        0,
        crc,
        len(body),
        len(body),
        len(name),
        0,
        0,
        0,
        0,
        0,
        0,
    )
    head = local + name + local_extra + body
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(entry) + len(name), len(head), 0)
    return head + entry + name + end


def test_a_local_header_longer_than_its_entry_says_is_read_whole() -> None:
    reads: list[tuple[int, int]] = []
    data = _hand_made_zip(local_extra=b"\0" * 2000)

    def counted(start: int, end: int) -> bytes:
        reads.append((start, end))
        return data[start:end]

    got = _read_metadata(counted, len(data), data[-50:], ARTIFACT)
    assert got == zipfile_read(data)
    member_reads = [r for r in reads if r[0] == 0]  # the member's local header is at 0
    assert len(member_reads) == 2  # as its entry sizes it, then whole


def test_a_directory_beyond_the_tail_costs_one_more_request_that_brings_metadata(
    index_server: IndexServer, tmp_path: Path
) -> None:
    index_server.metadata = False
    files = {f"foo/module_with_a_long_name_{i:05}.py": b"" for i in range(2000)}
    whl = index_server.add_wheel("foo", "1.0", requires_dist=["bar"], files=files)
    index = Index(name="test", url=index_server.url)
    settings = FinderSettings(cache_dir=tmp_path / "cache", backoff=0.0, workers=2)
    with open_finder([index], {"HOME": str(tmp_path)}, settings) as finder:
        [artifact] = finder.files(canonicalize_name("foo"), index)
        index_server.reset_counters()
        assert finder.metadata(artifact).requires_dist == (Requirement("bar"),)
    with zipfile.ZipFile(whl) as zf:
        assert zf.start_dir < whl.stat().st_size - 65536  # the directory is not in the tail
    # the directory's read takes the bytes before it too, where METADATA is: not a third
    assert index_server.paths_requested() == [f"/files/{whl.name}"] * 2


def test_a_projects_next_wheel_is_read_in_one_request(
    index_server: IndexServer, tmp_path: Path
) -> None:
    # a backtrack reads version after version of one project: the first read of the next is
    # as long as the last one's metadata needed, so it takes one request, not two
    index_server.metadata = False
    files = {f"foo/module_with_a_long_name_{i:05}.py": b"" for i in range(2000)}
    wheels = [
        index_server.add_wheel("foo", version, requires_dist=["bar"], files=files)
        for version in ("1.0", "1.1")
    ]
    index = Index(name="test", url=index_server.url)
    settings = FinderSettings(cache_dir=tmp_path / "cache", backoff=0.0, workers=2)
    with open_finder([index], {"HOME": str(tmp_path)}, settings) as finder:
        artifacts = sorted(finder.files(canonicalize_name("foo"), index), key=lambda a: a.filename)
        index_server.reset_counters()
        for artifact in artifacts:
            assert finder.metadata(artifact).requires_dist == (Requirement("bar"),)
    requested = index_server.paths_requested()
    assert [requested.count(f"/files/{whl.name}") for whl in wheels] == [2, 1]
