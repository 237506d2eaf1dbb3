"""The `*.dist-info/METADATA` member of a wheel, read from the zip's central directory by
offsets: the end record (zip64 too), the directory, then that one member, inflated.

Ours rather than `zipfile`: `zipfile.ZipFile` builds a `ZipInfo` (names decoded, extra fields
parsed) for every entry of the directory, and torch's and the nvidia wheels list tens of
thousands; that was 27% of a cold lock's CPU (py-spy, the seed stack, PyPI without PEP 658
files). Here the directory is searched for METADATA names, only their entries are decoded
(with `struct`), and only the chosen member is read; the other entries are not looked at, as
nothing of theirs is used (an install reads the whole archive, checked against its hash). What
a wheel holds is covered: members stored or deflated, zip64 sizes, offsets and end record,
bytes before the archive; anything else (another compression, encryption, a damaged entry or
directory, a CRC that does not match) is refused as a `BadWheel` naming what is wrong.

Pure: bytes come from a `Read` (range requests, or a whole downloaded file), no I/O here.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

Read = Callable[[int, int], bytes]  # bytes [start, end) of the file

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_LOCATOR64 = struct.Struct("<4sLQL")  # zip64 end of central directory locator
_END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record
_ENTRY = struct.Struct("<4s4B4HL2L5H2L")  # central directory file header
_LOCAL = struct.Struct("<4s2B4HL2L2H")  # local file header
_FULL = 0xFFFFFFFF
_METADATA = re.compile(rb"[^/]+\.dist-info/METADATA")
_SUFFIX = b".dist-info/METADATA"
_NAME_MAX = 1024  # the longest METADATA name looked for (a dist-info folder's name is short)
_SLACK = 256  # bytes read past the entry's sizes, for a local extra field longer than its own


class BadWheel(Exception):
    """The file is not a zip this reader can take the member from; `str` says why."""


@dataclass(frozen=True, kw_only=True, slots=True)
class _Member:
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int  # of its local header, in the file
    extra: int  # the length of its extra field in the directory


def metadata_members(read: Read, size: int, tail: bytes) -> tuple[list[_Member], int]:
    """The METADATA members of the zip of `size` bytes whose last bytes are `tail`, and where
    the directory starts (in the file).

    The directory is searched for the names, not walked entry by entry: torch's lists ~12,000
    members and unsloth's ~5,000, and a walk in Python was 14% of a cold lock's GIL time
    (py-spy --gil, the seed stack). Each hit is taken only when an entry header right before
    it says so (its signature, and a name length ending at the hit), then read in full; a hit
    that no header explains, with no member found otherwise, is a damaged directory."""
    start, length, shift = _directory(read, size, tail)
    directory = read(start, start + length)
    found: list[_Member] = []
    unexplained = False
    at = 0
    while (at := directory.find(_SUFFIX, at)) >= 0:
        at += len(_SUFFIX)
        member = _entry_ending_at(directory, at, shift)
        unexplained = unexplained or member is None
        if member is not None and _METADATA.fullmatch(member.raw_name):
            found.append(member)
    if unexplained and not found:
        raise BadWheel("bad central directory entry")
    return found, start


def _entry_ending_at(directory: bytes, name_end: int, shift: int) -> _Member | None:
    """The directory entry whose name ends at `name_end`, if its header is right before the
    name (the nearest signature, with a name length that fits)."""
    head = directory.rfind(b"PK\x01\x02", max(0, name_end - _ENTRY.size - _NAME_MAX), name_end)
    if head < 0 or head + _ENTRY.size > len(directory):
        return None
    entry = _ENTRY.unpack_from(directory, head)
    flags, method, crc, compressed, usize = entry[5], entry[6], entry[9], entry[10], entry[11]
    name_len, extra_len, offset = entry[12], entry[13], entry[18]
    name_at = head + _ENTRY.size
    if name_at + name_len != name_end:
        return None
    if _FULL in (compressed, usize, offset):
        extra = directory[name_end : name_end + extra_len]
        usize, compressed, offset = _zip64(extra, usize, compressed, offset)
    name = directory[name_at:name_end]
    return _Member(
        name=name.decode("utf-8" if flags & 0x800 else "cp437"),
        raw_name=name,
        flags=flags,
        method=method,
        crc=crc,
        compressed=compressed,
        size=usize,
        offset=offset + shift,
        extra=extra_len,
    )


def member_bytes(read: Read, member: _Member, directory: int) -> bytes:
    """The uncompressed bytes of `member`, which ends before the `directory` starts: read
    with one request, sized by the directory's entry (a local header whose extra field is
    longer than the entry's, rare, costs a second)."""
    guess = _LOCAL.size + len(member.raw_name) + member.extra + _SLACK + member.compressed
    span = read(member.offset, min(directory, member.offset + guess))
    if span[:4] != b"PK\x03\x04" or len(span) < _LOCAL.size:
        raise BadWheel(f"bad local header for {member.name}")
    local = _LOCAL.unpack_from(span)
    start = _LOCAL.size + local[10] + local[11]
    if span[_LOCAL.size : _LOCAL.size + local[10]] != member.raw_name:
        raise BadWheel(f"file name in directory {member.name!r} and header differ")
    if start + member.compressed > len(span) and member.offset + start + member.compressed <= (
        directory
    ):
        span = read(member.offset, member.offset + start + member.compressed)
    data = span[start : start + member.compressed]
    if len(data) != member.compressed:
        raise BadWheel(f"truncated member {member.name}")
    if member.flags & 0x1:
        raise BadWheel(f"{member.name} is encrypted")
    if member.method == 8:
        try:
            data = zlib.decompressobj(-15).decompress(data)
        except zlib.error as exc:
            raise BadWheel(f"{member.name}: {exc}") from None
    elif member.method != 0:
        raise BadWheel(f"{member.name}: compression method {member.method} is not supported")
    if len(data) != member.size or zlib.crc32(data) != member.crc:
        raise BadWheel(f"bad CRC-32 for {member.name}")
    return data


def _end_record(tail: bytes) -> tuple[int, tuple[int, ...]]:
    """The end record in `tail` (the file's last bytes): the last signature whose comment
    ends the file, else (bytes after the comment, as zipfile tolerates) the last one."""
    at, last = len(tail), None
    while (at := tail.rfind(b"PK\x05\x06", 0, at)) >= 0:
        if at + _END.size <= len(tail):
            end = _END.unpack_from(tail, at)
            if at + _END.size + end[7] == len(tail):
                return at, end
            last = last or (at, end)
    if last is None:
        raise BadWheel("File is not a zip file")
    return last


def _directory(read: Read, size: int, tail: bytes) -> tuple[int, int, int]:
    """(start, length) of the central directory in the file, and how far bytes before the
    archive shift the offsets it records (zipfile's `concat`)."""
    at, end = _end_record(tail)
    here, length, recorded = size - len(tail) + at, end[5], end[6]
    zip64 = _zip64_end(read, here)
    if zip64 is not None:
        here, length, recorded = zip64
    if length > here:
        raise BadWheel("bad central directory size")
    return here - length, length, here - length - recorded


def _zip64_end(read: Read, at: int) -> tuple[int, int, int] | None:
    """Where the zip64 end record is, and the directory's length and recorded offset, when
    the archive has one: right before its locator, right before the end record at `at` (as
    zipfile assumes)."""
    if at < _LOCATOR64.size + _END64.size:
        return None
    block = read(at - _LOCATOR64.size - _END64.size, at)
    locator = _LOCATOR64.unpack_from(block, _END64.size)
    if locator[0] != b"PK\x06\x07":
        return None
    if locator[1] != 0 or locator[3] > 1:
        raise BadWheel("zipfiles that span multiple disks are not supported")
    record = _END64.unpack_from(block)
    if record[0] != b"PK\x06\x06":
        return None
    return at - _LOCATOR64.size - _END64.size, record[8], record[9]


def _zip64(extra: bytes, usize: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """The 64-bit sizes and offset from an entry's zip64 extra field (id 1), which holds the
    ones whose 32-bit fields are full, in this order."""
    pos = 0
    while pos + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, pos)
        if kind == 1:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, pos + 4))
            try:
                usize = next(values) if usize == _FULL else usize
                compressed = next(values) if compressed == _FULL else compressed
                offset = next(values) if offset == _FULL else offset
            except StopIteration:
                raise BadWheel("corrupt zip64 extra field") from None
            return usize, compressed, offset
        pos += 4 + length
    raise BadWheel("missing zip64 extra field")
