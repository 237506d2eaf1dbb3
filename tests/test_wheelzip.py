"""The METADATA member of a wheel read from its central directory (index/wheelzip.py): the
same bytes `zipfile` reads, for every layout a wheel can have; damaged zips refused with the
reason; over HTTP, a directory larger than the fetched tail costs one request more."""

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
            lambda d: _damaged(d, d.rindex(b"PK\x01\x02"), b"XX"),
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


def test_a_directory_beyond_the_tail_costs_one_more_request(
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
    assert index_server.paths_requested() == [f"/files/{whl.name}"] * 3
